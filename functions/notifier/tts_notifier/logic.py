"""One notifications-queue message in, at most one signed POST out.

The queue holds two kinds of message: the channel's terminal lifecycle events (SNS → SQS, filtered on
`status`), and this notifier's own retries (`WebhookDelivery`, re-sent with DelaySeconds). Either one leads to
the same step: read the task (consistent), and if it has a callback_url and is terminal, POST the signed
notification of its status, then record the outcome on the task.

- A terminal event can arrive before the lifecycle consumer has folded it into the record: the message is
  re-sent with a short delay until the record says so (never delivering a status the record does not hold).
- At least once: a failed attempt (no answer, a non-2xx status, a refused address) re-sends the message with
  the backoff of tts_common.webhooks.backoff_delay, until WEBHOOK_RETRY_WINDOW_S after the first attempt;
  then the task's webhook is recorded `undeliverable`. A copy of a message (SQS delivers at least once) may
  POST twice; receivers dedupe on `X-TTS-Event-Id`.
- 410 Gone stops retries (`gone`); a tenant without a webhook secret is `undeliverable` at once (nothing
  could sign it). A final state of an event is never overwritten (TaskRepository.record_webhook).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from tts_common.adapters.s3 import AudioStore
from tts_common.domain import TERMINAL_STATUSES, TaskStatus, download_filename
from tts_common.exceptions import InvalidCallbackUrl, TaskNotFound
from tts_common.messages import LifecycleEvent, TaskId
from tts_common.storage.repository import TaskRepository
from tts_common.task import FINAL_WEBHOOK_STATES, Task, Webhook, WebhookState
from tts_common.voice import FORMATS
from tts_common.webhooks import (
    ATTEMPT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    USER_AGENT,
    Resolver,
    Response,
    Target,
    backoff_delay,
    check_url,
    post,
    signature_header,
)

# How long to wait for the lifecycle consumer to fold a terminal event into the record.
RECORD_LAG_DELAY_S = 2
NO_SECRET_ERROR = "the tenant has no webhook secret (tts-admin webhooks secret --tenant ...)"


class WebhookDelivery(BaseModel):
    """A retry (or a wait for the record), re-sent by the notifier onto its own queue."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["webhook_delivery"] = "webhook_delivery"
    task_id: TaskId
    # The attempt this message makes, from 1.
    attempt: Annotated[int, Field(ge=1, le=10_000)]
    first_attempt_at: AwareDatetime


class Outcome(StrEnum):
    SKIPPED = "skipped"  # not terminal, no callback, unknown task, or already final
    WAITING = "waiting"  # the record is not terminal yet: re-sent shortly
    DELIVERED = "delivered"
    RETRYING = "retrying"
    UNDELIVERABLE = "undeliverable"
    GONE = "gone"


Poster = Callable[[Target, bytes, dict[str, str]], Response]
Resend = Callable[[str, int], None]  # (message body, delay in seconds)
SecretsFor = Callable[[str, datetime], list[str]]


@dataclass(frozen=True)
class Policy:
    allow_loopback: bool = False
    retry_window_s: int = 6 * 3600
    backoff_scale: float = 1.0
    presign_expiry_s: int = 3600
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0


@dataclass(frozen=True)
class Notifier:
    repository: TaskRepository
    audio_store: AudioStore
    secrets_for: SecretsFor
    resend: Resend
    policy: Policy = Policy()
    poster: Poster | None = None
    resolver: Resolver | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def handle(self, body: str) -> Outcome:
        now = self.clock()
        delivery = parse(body, now=now)
        if delivery is None:
            return Outcome.SKIPPED
        try:
            task = self.repository.get(delivery.task_id, tenant_id=None, consistent=True)
        except TaskNotFound:
            return Outcome.SKIPPED
        if task.callback_url is None:
            return Outcome.SKIPPED
        if task.status not in TERMINAL_STATUSES:
            if self._window_over(delivery, now):
                return Outcome.SKIPPED  # a terminal event the record never took: nothing true to tell
            self.resend(delivery.model_dump_json(), RECORD_LAG_DELAY_S)
            return Outcome.WAITING
        event = task.status
        if (
            task.webhook is not None
            and task.webhook.event == event
            and task.webhook.state in FINAL_WEBHOOK_STATES
        ):
            return Outcome.SKIPPED
        secrets = self.secrets_for(task.tenant_id, now)
        if not secrets:
            self._record(
                task, event, WebhookState.UNDELIVERABLE, delivery.attempt, now, error=NO_SECRET_ERROR
            )
            return Outcome.UNDELIVERABLE
        payload = notification(task, audio_store=self.audio_store, expiry_s=self.policy.presign_expiry_s)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_ID_HEADER: event_id(task.task_id, event),
            ATTEMPT_HEADER: str(delivery.attempt),
            SIGNATURE_HEADER: signature_header(secrets, int(now.timestamp()), payload),
        }
        status, error = self._attempt(task.callback_url, payload, headers)
        if status is not None and 200 <= status < 300:
            self._record(task, event, WebhookState.DELIVERED, delivery.attempt, now, status=status)
            return Outcome.DELIVERED
        if status == 410:
            self._record(task, event, WebhookState.GONE, delivery.attempt, now, status=status, error=error)
            return Outcome.GONE
        left = delivery.first_attempt_at + timedelta(seconds=self.policy.retry_window_s) - now
        if left.total_seconds() <= 0:
            self._record(
                task, event, WebhookState.UNDELIVERABLE, delivery.attempt, now, status=status, error=error
            )
            return Outcome.UNDELIVERABLE
        delay = backoff_delay(delivery.attempt, scale=self.policy.backoff_scale)
        # The last attempt lands on the window's end rather than past it.
        delay = max(0, min(delay, int(left.total_seconds()) + 1))
        self.resend(replace_attempt(delivery, delivery.attempt + 1).model_dump_json(), delay)
        self._record(task, event, WebhookState.PENDING, delivery.attempt, now, status=status, error=error)
        return Outcome.RETRYING

    def _attempt(self, url: str, payload: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
        """The receiver's status (None: no answer) and what went wrong (None: a 2xx)."""
        try:
            # Checked again now: the name may resolve elsewhere than at submit. The POST dials this address.
            target = check_url(url, allow_loopback=self.policy.allow_loopback, resolver=self.resolver)
            if self.poster is not None:
                answer = self.poster(target, payload, headers)
            else:
                answer = post(
                    target,
                    payload,
                    headers,
                    connect_s=self.policy.connect_timeout_s,
                    read_s=self.policy.read_timeout_s,
                )
        except InvalidCallbackUrl as exc:
            return None, f"refused: {exc.message}"
        except OSError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        ok = 200 <= answer.status < 300
        return answer.status, None if ok else f"HTTP {answer.status}"

    def _window_over(self, delivery: WebhookDelivery, now: datetime) -> bool:
        return now - delivery.first_attempt_at > timedelta(seconds=self.policy.retry_window_s)

    def _record(
        self,
        task: Task,
        event: TaskStatus,
        state: WebhookState,
        attempts: int,
        now: datetime,
        *,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        self.repository.record_webhook(
            task.task_id,
            Webhook(
                state=state,
                event=event,
                attempts=attempts,
                updated_at=now,
                last_status=status,
                last_error=error,
                delivered_at=now if state is WebhookState.DELIVERED else None,
            ),
        )


def replace_attempt(delivery: WebhookDelivery, attempt: int) -> WebhookDelivery:
    return delivery.model_copy(update={"attempt": attempt})


def parse(body: str, *, now: datetime) -> WebhookDelivery | None:
    """The delivery a message asks for; None for a non-terminal event or a body of neither kind (dropped:
    a poison message must not cycle)."""
    try:
        raw: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    try:
        if raw.get("kind") == "webhook_delivery":
            return WebhookDelivery.model_validate(raw)
        event = LifecycleEvent.model_validate(raw)
    except ValidationError:
        return None
    # The subscription's filter passes only these; checked here too (a filter is an optimisation).
    if event.status not in TERMINAL_STATUSES:
        return None
    return WebhookDelivery(task_id=event.task_id, attempt=1, first_attempt_at=now)


def event_id(task_id: str, status: TaskStatus) -> str:
    """The same on every attempt of one notification: what receivers dedupe on."""
    return f"evt_{task_id}_{status}"


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at is not None else None


def notification(task: Task, *, audio_store: AudioStore, expiry_s: int) -> bytes:
    """The body: compact JSON with sorted keys. A done task's download link is minted at each attempt, so
    a late retry still carries a live one."""
    lc = task.lifecycle
    audio = lc.audio
    download = None
    if task.status is TaskStatus.DONE and audio is not None:
        name = download_filename(task.custom_filename, task.task_id, audio.format)
        link = audio_store.presign_download(
            audio.audio_key,
            filename=name,
            content_type=FORMATS[audio.format].content_type,
            expires_in_s=expiry_s,
        )
        download = {"url": link.url, "expires_at": _iso(link.expires_at), "filename": name}
    error = lc.error if task.status is TaskStatus.FAILED else None
    ended = lc.completed_at if task.status is TaskStatus.DONE else lc.failed_at
    body = {
        "id": event_id(task.task_id, task.status),
        "type": f"conversion.{task.status}",
        "created_at": _iso(ended or lc.last_event_at),
        "data": {
            "conversion_id": task.task_id,
            "status": str(task.status),
            "error": {"code": error.code, "message": error.message} if error else None,
            "download": download,
            "language": task.voice.language,
            "format": str(audio.format if audio else task.voice.format),
            "duration_s": audio.duration_s if audio else None,
            "file_size": audio.file_size if audio else None,
            "custom_filename": task.custom_filename,
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
