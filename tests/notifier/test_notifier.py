"""The notifier on moto: a terminal task's signed POST, retries with backoff, the undeliverable record, the
address checked again at delivery, and the webhook state the task's GET shows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.support import aws_client, fail_task, finish_task
from tts_common.domain import TaskStatus
from tts_common.messages import LifecycleEvent
from tts_common.task import Task, WebhookState
from tts_common.voice import AudioFormat, VoiceSpec, dedupe_key
from tts_common.webhooks import Response, Target, verify
from tts_notifier.logic import Notifier, Outcome, Policy, WebhookDelivery

SECRET = "whsec_" + "s" * 43
URL = "https://hooks.example/tts"
PUBLIC = "93.184.216.34"
VOICE = VoiceSpec(
    language="fin",
    model_id="facebook/mms-tts-fin",
    speed=1.0,
    noise_scale=0.667,
    noise_scale_duration=0.8,
    format=AudioFormat.WAV,
    sample_rate=None,
    max_piece_chars=400,
)


@dataclass
class Receiver:
    """Stands in for the network: answers each POST with the next status (None: no answer)."""

    statuses: list[int | None] = field(default_factory=lambda: [200])
    posts: list[tuple[Target, bytes, dict[str, str]]] = field(default_factory=list)

    def __call__(self, target: Target, body: bytes, headers: dict[str, str]) -> Response:
        self.posts.append((target, body, headers))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if status is None:
            raise ConnectionRefusedError("connection refused")
        return Response(status=status)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def _task(repository, *, callback_url: str | None = URL, text: str = "Hyvää huomenta") -> Task:
    now = datetime.now(UTC)
    task_id = f"{abs(hash((text, now))) % 16**32:032x}"
    task = Task(
        task_id=task_id,
        tenant_id="acme",
        dedupe_key=dedupe_key(text, VOICE, tenant_id="acme"),
        voice=VOICE,
        text_chars=len(text),
        submitted_at=now,
        text=text,
        callback_url=callback_url,
    )
    stored, _ = repository.create_or_get(task)
    return stored


def _terminal_event(task_id: str, status: TaskStatus = TaskStatus.DONE) -> str:
    # The notifier reads the record, not the event's payload: the status is what the filter and parse need.
    from tts_common.messages import AudioInfo, ErrorInfo

    at = datetime.now(UTC)
    if status is TaskStatus.DONE:
        audio = AudioInfo(
            audio_key=f"audio/{task_id}.wav",
            file_size=1,
            format=AudioFormat.WAV,
            sampling_rate=16000,
            duration_s=1.0,
            device="cpu",
        )
        return LifecycleEvent(task_id=task_id, status=status, at=at, audio=audio).model_dump_json()
    error = ErrorInfo(code="x", message="y")
    return LifecycleEvent(task_id=task_id, status=status, at=at, error=error).model_dump_json()


@pytest.fixture
def sent():
    return []


@pytest.fixture
def receiver():
    return Receiver()


@pytest.fixture
def clock():
    return Clock(datetime.now(UTC))


@pytest.fixture
def notifier(repository, resources, sent, receiver, clock):
    from tts_common.adapters.s3 import AudioStore

    return Notifier(
        repository=repository,
        audio_store=AudioStore(s3_client=aws_client("s3"), bucket=resources.bucket_name),
        secrets_for=lambda tenant, now: [SECRET] if tenant == "acme" else [],
        resend=lambda body, delay: sent.append((json.loads(body), delay)),
        policy=Policy(retry_window_s=3600),
        poster=receiver,
        resolver=lambda host, port: [PUBLIC],
        clock=clock,
    )


def test_a_done_task_is_posted_signed_with_a_download_link_and_recorded_delivered(
    notifier, repository, resources, receiver, clock
):
    # Given
    task = _task(repository)
    finish_task(repository, resources, task.task_id)

    # When
    outcome = notifier.handle(_terminal_event(task.task_id))

    # Then
    assert outcome is Outcome.DELIVERED
    [(target, body, headers)] = receiver.posts
    assert (target.host, target.address, target.scheme) == ("hooks.example", PUBLIC, "https")
    assert verify(body, headers["X-TTS-Signature"], SECRET, now=clock.now.timestamp())
    assert headers["X-TTS-Event-Id"] == f"evt_{task.task_id}_done"
    assert headers["X-TTS-Delivery-Attempt"] == "1"
    payload = json.loads(body)
    assert payload["id"] == f"evt_{task.task_id}_done"
    assert payload["type"] == "conversion.done"
    data = payload["data"]
    assert (data["conversion_id"], data["status"], data["error"]) == (task.task_id, "done", None)
    assert data["download"]["filename"] == f"tts-{task.task_id}.wav"
    assert "X-Amz-Signature" in data["download"]["url"] or "Signature" in data["download"]["url"]
    webhook = repository.get(task.task_id, tenant_id=None, consistent=True).webhook
    assert (webhook.state, webhook.event, webhook.attempts, webhook.last_status) == (
        WebhookState.DELIVERED,
        TaskStatus.DONE,
        1,
        200,
    )


def test_a_failed_task_carries_its_error_and_no_link(notifier, repository, receiver):
    task = _task(repository)
    fail_task(repository, task.task_id)

    assert notifier.handle(_terminal_event(task.task_id, TaskStatus.FAILED)) is Outcome.DELIVERED
    data = json.loads(receiver.posts[0][1])["data"]
    assert data["status"] == "failed"
    assert data["error"] == {"code": "empty_tokenization", "message": "nothing to say"}
    assert data["download"] is None


def test_a_failed_attempt_is_resent_with_backoff_and_recorded_pending(
    notifier, repository, resources, receiver, sent
):
    # Given: the receiver answers 503, then 200
    receiver.statuses = [503, 200]
    task = _task(repository)
    finish_task(repository, resources, task.task_id)

    # When
    first = notifier.handle(_terminal_event(task.task_id))

    # Then: re-sent as attempt 2 after about 10 s
    assert first is Outcome.RETRYING
    [(message, delay)] = sent
    assert message["attempt"] == 2
    assert message["task_id"] == task.task_id
    assert 8 <= delay <= 12
    pending = repository.get(task.task_id, tenant_id=None, consistent=True).webhook
    assert (pending.state, pending.attempts, pending.last_status, pending.last_error) == (
        WebhookState.PENDING,
        1,
        503,
        "HTTP 503",
    )

    # When: the retry comes back
    assert notifier.handle(json.dumps(message)) is Outcome.DELIVERED
    assert receiver.posts[1][2]["X-TTS-Delivery-Attempt"] == "2"
    # The same event id on every attempt: what receivers dedupe on.
    assert receiver.posts[0][2]["X-TTS-Event-Id"] == receiver.posts[1][2]["X-TTS-Event-Id"]
    assert (
        repository.get(task.task_id, tenant_id=None, consistent=True).webhook.state is WebhookState.DELIVERED
    )


def test_retries_stop_at_the_window_and_the_task_says_undeliverable(
    notifier, repository, resources, receiver, sent, clock
):
    receiver.statuses = [None]  # never answers
    task = _task(repository)
    finish_task(repository, resources, task.task_id)
    first_at = clock.now
    message = WebhookDelivery(task_id=task.task_id, attempt=1, first_attempt_at=first_at).model_dump_json()
    delays = []
    while True:
        outcome = notifier.handle(message)
        if outcome is not Outcome.RETRYING:
            break
        body, delay = sent.pop()
        delays.append(delay)
        clock.now += timedelta(seconds=delay)
        message = json.dumps(body)

    assert outcome is Outcome.UNDELIVERABLE
    assert delays == sorted(delays) or max(delays) <= 900
    assert clock.now - first_at <= timedelta(seconds=3600 + 1)
    assert clock.now - first_at >= timedelta(seconds=3600)
    webhook = repository.get(task.task_id, tenant_id=None, consistent=True).webhook
    assert webhook.state is WebhookState.UNDELIVERABLE
    assert webhook.attempts == len(delays) + 1
    assert "ConnectionRefusedError" in webhook.last_error
    # A late copy of a retry does not deliver again.
    receiver.statuses = [200]
    assert notifier.handle(message) is Outcome.SKIPPED


def test_a_record_not_yet_terminal_waits_for_the_lifecycle_consumer(notifier, repository, resources, sent):
    task = _task(repository)

    assert notifier.handle(_terminal_event(task.task_id)) is Outcome.WAITING
    [(message, delay)] = sent
    assert (message["attempt"], delay) == (1, 2)

    finish_task(repository, resources, task.task_id)
    assert notifier.handle(json.dumps(message)) is Outcome.DELIVERED


def test_a_duplicate_terminal_event_after_delivery_is_skipped(notifier, repository, resources, receiver):
    task = _task(repository)
    finish_task(repository, resources, task.task_id)
    assert notifier.handle(_terminal_event(task.task_id)) is Outcome.DELIVERED
    assert notifier.handle(_terminal_event(task.task_id)) is Outcome.SKIPPED
    assert len(receiver.posts) == 1


def test_410_gone_stops_retries(notifier, repository, resources, receiver, sent):
    receiver.statuses = [410]
    task = _task(repository)
    finish_task(repository, resources, task.task_id)
    assert notifier.handle(_terminal_event(task.task_id)) is Outcome.GONE
    assert sent == []
    assert repository.get(task.task_id, tenant_id=None, consistent=True).webhook.state is WebhookState.GONE


def test_a_tenant_without_a_secret_is_undeliverable_at_once(notifier, repository, resources, receiver):
    from dataclasses import replace

    task = _task(repository)
    finish_task(repository, resources, task.task_id)
    no_secret = replace(notifier, secrets_for=lambda tenant, now: [])
    assert no_secret.handle(_terminal_event(task.task_id)) is Outcome.UNDELIVERABLE
    assert receiver.posts == []
    webhook = repository.get(task.task_id, tenant_id=None, consistent=True).webhook
    assert "webhook secret" in webhook.last_error


def test_a_name_rebound_to_a_private_address_is_refused_at_delivery(
    notifier, repository, resources, receiver, sent
):
    from dataclasses import replace

    task = _task(repository)
    finish_task(repository, resources, task.task_id)
    rebound = replace(notifier, resolver=lambda host, port: ["10.0.0.7"])

    assert rebound.handle(_terminal_event(task.task_id)) is Outcome.RETRYING
    assert receiver.posts == []  # never dialled
    webhook = repository.get(task.task_id, tenant_id=None, consistent=True).webhook
    assert "10.0.0.7" in webhook.last_error
    assert webhook.last_status is None


@pytest.mark.parametrize("body", ["not json", "[]", '{"task_id": "x"}'])
def test_unreadable_messages_are_dropped(notifier, body):
    assert notifier.handle(body) is Outcome.SKIPPED


def test_non_terminal_events_and_tasks_without_callback_are_skipped(
    notifier, repository, resources, receiver
):
    task = _task(repository, callback_url=None)
    finish_task(repository, resources, task.task_id)
    queued = LifecycleEvent(task_id=task.task_id, status=TaskStatus.QUEUED, at=datetime.now(UTC))
    assert notifier.handle(queued.model_dump_json()) is Outcome.SKIPPED
    assert notifier.handle(_terminal_event(task.task_id)) is Outcome.SKIPPED
    assert receiver.posts == []


def test_the_subscription_delivers_terminal_events_only(resources):
    """The notifications queue's SNS filter: done and failed reach it, queued and processing do not."""
    from tests.api.support import drain
    from tts_common.adapters.events import EventPublisher

    publisher = EventPublisher(sns_client=aws_client("sns"), topic_arn=resources.events_topic_arn)
    at = datetime.now(UTC)
    publisher.publish(LifecycleEvent(task_id="a" * 32, status=TaskStatus.QUEUED, at=at))
    publisher.publish(LifecycleEvent(task_id="a" * 32, status=TaskStatus.PROCESSING, at=at))
    for status in (TaskStatus.DONE, TaskStatus.FAILED):
        publisher.publish(LifecycleEvent.model_validate_json(_terminal_event("a" * 32, status)))
    got = [json.loads(b)["status"] for b in drain(resources.notifications_queue_url)]
    assert sorted(got) == ["done", "failed"]
    assert len(drain(resources.events_queue_url)) == 4  # the other subscriber still sees everything
