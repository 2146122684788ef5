"""TaskRepository: every read and write of task records, dedupe claims and stats counters."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException, QueryError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from tts_common.domain import TERMINAL_STATUSES, MarksFormat, TaskStatus
from tts_common.exceptions import ConcurrentUpdate, DependencyUnavailable, InvalidPageToken, TaskNotFound
from tts_common.lifecycle import LifecycleState, apply_event
from tts_common.messages import AudioInfo, ErrorInfo, LifecycleEvent
from tts_common.storage import schema
from tts_common.storage.models import (
    Records,
    claim_pk,
    list_pk,
    open_pk,
    open_shard_for,
    stats_pk,
    stats_shard_for,
    status_pk,
    task_pk,
)
from tts_common.task import FINAL_WEBHOOK_STATES, Task, TaskPage, TaskStats, Webhook, WebhookState
from tts_common.voice import AudioFormat, VoiceSpec

logger = logging.getLogger(__name__)

_CREATE_ATTEMPTS = 8
_APPLY_ATTEMPTS = 10
# A dedupe owner that expires sooner than this is treated as gone: a new task replaces it, so that an id
# handed out by a dedupe hit (and its download links) stays good for at least this long.
_EXPIRY_GRACE = timedelta(days=1)
_SORT_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z#([0-9a-f]{32})$")


def sort_key(submitted_at: datetime, task_id: str) -> str:
    """Lexicographic order equals time order: fixed-width UTC timestamp, then the id as tie-breaker."""
    return f"{submitted_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{task_id}"


def _response_code(exc: PynamoDBException) -> str | None:
    """DynamoDB's error code behind a PynamoDB error; None when no answer came (a timeout, a reset).

    PynamoDB's `cause_response_code` reads `cause.response`, which botocore's timeouts set to None.
    """
    try:
        return exc.cause_response_code
    except AttributeError:
        return None


def _cancel_reasons(exc: TransactWriteError) -> set[str]:
    if _response_code(exc) != "TransactionCanceledException":
        return set()
    return {r.code for r in exc.cancellation_reasons if r is not None and r.code}


def _lost_a_race(exc: TransactWriteError) -> bool:
    """A condition failed, or another transaction on the same item was in flight (DynamoDB cancels both)."""
    return bool(_cancel_reasons(exc) & {"ConditionalCheckFailed", "TransactionConflict"})


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.25, 0.01 * 2**attempt)))


class TaskRepository:
    def __init__(
        self,
        records: Records,
        *,
        ttl_days: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._r = records
        self._ttl = timedelta(days=ttl_days)
        self._clock = clock

    # -- submission ------------------------------------------------------------------------------------

    def create_or_get(self, task: Task) -> tuple[Task, bool]:
        """Create the task unless its dedupe key is claimed by a live task; return (task, created).

        A conditional put of the claim decides the race: never read-then-write.
        """
        expires = task.submitted_at + self._ttl
        task = replace(task, expires_at=expires)
        for attempt in range(_CREATE_ATTEMPTS):
            claim = self._r.claim(pk=claim_pk(task.dedupe_key), task_id=task.task_id, expires_at=expires)
            record = self._to_record(task, expires)
            # botocore resends a timed-out call: DynamoDB applies resends with the same token once. A new
            # token per attempt of this loop, which only follows a definite cancellation.
            token = f"{task.task_id}-{attempt}"
            try:
                with TransactWrite(connection=self._r.connection, client_request_token=token) as tx:
                    tx.save(claim, condition=self._r.claim.pk.does_not_exist())
                    tx.save(record, condition=self._r.task.pk.does_not_exist())
                    tx.update(
                        self._stats_item(task.tenant_id, task.task_id),
                        actions=[self._r.stats.submitted.add(1), self._r.stats.count_queued.add(1)],
                    )
                return task, True
            except TransactWriteError as exc:
                if not _lost_a_race(exc):
                    raise DependencyUnavailable("the task table did not accept the write") from exc
                if "ConditionalCheckFailed" not in _cancel_reasons(exc):
                    _backoff(attempt)  # a conflict, not a verdict: write again
                    continue
            held = self._claim_on(task.dedupe_key)
            if held is not None and held.task_id == task.task_id:
                # Our own claim: a resend found what the first send wrote before its answer was lost.
                return task, True
            existing = self._owner_of(held) if held is not None else None
            if existing is not None:
                self._record_dedupe_hit(existing)
                return replace(existing, dedupe_hits=existing.dedupe_hits + 1), False
            _backoff(attempt)
        raise ConcurrentUpdate("could not settle the dedupe claim; try again")

    def _claim_on(self, key: str) -> Any | None:
        try:
            return self._r.claim.get(claim_pk(key), consistent_read=True)
        except DoesNotExist:
            return None  # released between our write and this read (its task failed): try again

    def _owner_of(self, claim: Any) -> Task | None:
        """The live task holding a dedupe claim; a claim whose task is gone is removed."""
        try:
            owner = self.get(
                claim.task_id, tenant_id=None, consistent=True, now=self._clock() + _EXPIRY_GRACE
            )
        except TaskNotFound:
            # Its task is gone or about to expire: free the key for a new task (only if still its claim).
            with contextlib.suppress(PynamoDBException):
                claim.delete(condition=self._r.claim.task_id == claim.task_id)
            return None
        return owner

    def _stats_item(self, tenant_id: str, task_id: str) -> Any:
        """The tenant's counter shard a task's transitions count on."""
        return self._r.stats(pk=stats_pk(tenant_id, stats_shard_for(task_id)))

    def _record_dedupe_hit(self, owner: Task) -> None:
        """Count the hit; a counter that loses a race is not worth failing the request for."""
        task_id = owner.task_id
        try:
            self._stats_item(owner.tenant_id, task_id).update(actions=[self._r.stats.dedupe_hits.add(1)])
            # Through the table connection: a model update would reset the version of a bare instance.
            self._r.task._get_connection().update_item(
                task_pk(task_id),
                actions=[self._r.task.dedupe_hits.add(1)],
                condition=self._r.task.pk.exists(),
            )
        except PynamoDBException:
            logger.warning("dedupe hit not counted", extra={"task_id": task_id})

    def mark_enqueued(self, task_id: str, *, at: datetime) -> None:
        """Record that the task's job is on the queue, right where it was sent (the API, the sweeper).

        The sweeper re-enqueues only tasks without this mark, so a lagging lifecycle consumer can never make
        a healthy task look lost. The earliest mark stays (a `queued` event applied first may have set it).
        """
        t = self._r.task
        try:
            t._get_connection().update_item(
                task_pk(task_id),
                actions=[t.enqueued_at.set(t.enqueued_at | at)],
                condition=t.pk.exists(),
            )
        except UpdateError as exc:
            if _response_code(exc) == "ConditionalCheckFailedException":
                return  # the task is gone (expired): nothing to mark
            raise

    # -- reads -----------------------------------------------------------------------------------------

    def get(
        self, task_id: str, *, tenant_id: str | None, consistent: bool = False, now: datetime | None = None
    ) -> Task:
        """The task, unless absent, expired (DynamoDB's TTL deletes expired items only eventually) or, with a
        tenant, another tenant's: that is TaskNotFound too, after the same one read (no existence oracle).
        `tenant_id=None` is for the service's own consumers (lifecycle, sweeper), never for a request."""
        try:
            record = self._r.task.get(task_pk(task_id), consistent_read=consistent)
        except DoesNotExist:
            raise TaskNotFound(task_id) from None
        task = self._from_record(record)
        if tenant_id is not None and task.tenant_id != tenant_id:
            raise TaskNotFound(task_id)
        if task.expires_at is not None and task.expires_at <= (now or self._clock()):
            raise TaskNotFound(task_id)
        return task

    def exists(self, task_id: str) -> bool:
        """Whether a live task has this id (a consistent read: a task is written before its job is sent)."""
        try:
            self.get(task_id, tenant_id=None, consistent=True)
        except TaskNotFound:
            return False
        return True

    def list_tasks(
        self, *, tenant_id: str, status: TaskStatus | None, limit: int, next_token: str | None
    ) -> TaskPage:
        """The tenant's tasks newest first, through a query of the tenant's index partition (never a scan).
        The token is bound to the tenant and the filter: any other is InvalidPageToken."""
        start_key = _decode_token(next_token, tenant_id=tenant_id, status=status) if next_token else None
        index = self._r.task.by_submitted if status is None else self._r.task.by_status
        results = index.query(
            _index_partition(tenant_id, status),
            filter_condition=self._live(),
            scan_index_forward=False,
            limit=limit,
            page_size=limit,
            last_evaluated_key=start_key,
        )
        try:
            items = [self._from_record(r) for r in results]
        except QueryError as exc:
            if start_key is not None and _response_code(exc) == "ValidationException":
                raise InvalidPageToken() from exc
            raise
        last = results.last_evaluated_key
        return TaskPage(items=items, next_token=_encode_token(last, status) if last and items else None)

    def _live(self) -> Any:
        return self._r.task.expires_at.does_not_exist() | (self._r.task.expires_at > self._clock())

    def stalled(self, status: TaskStatus, *, inactive_since: datetime, limit: int) -> list[Task]:
        """Live tasks of every tenant in one unfinished status with no lifecycle message since the cutoff,
        oldest first (the sweeper). The sparse index of unfinished tasks is read shard by shard; the sort
        key bounds each query (submitted before the cutoff), the filter drops recent activity."""
        t = self._r.task
        quiet = t.last_event_at.does_not_exist() | (t.last_event_at < inactive_since)
        return self._open(status, submitted_before=inactive_since, filter_condition=quiet, limit=limit)

    def unannounced(self, *, submitted_before: datetime, limit: int) -> list[Task]:
        """Queued tasks never marked as enqueued: their job may never have reached the queue (the sweeper)."""
        t = self._r.task
        return self._open(
            TaskStatus.QUEUED,
            submitted_before=submitted_before,
            filter_condition=t.enqueued_at.does_not_exist(),
            limit=limit,
        )

    def _open(
        self, status: TaskStatus, *, submitted_before: datetime, filter_condition: Any, limit: int
    ) -> list[Task]:
        """The oldest `limit` matches over every shard of the open index for one status."""
        t = self._r.task
        found: list[Any] = []
        for shard in range(schema.OPEN_SHARDS):
            found += t.by_open.query(
                open_pk(str(status), shard),
                t.submitted_sk < sort_key(submitted_before, ""),
                filter_condition=filter_condition & self._live(),
                scan_index_forward=True,
                limit=limit,
            )
        found.sort(key=lambda r: str(r.submitted_sk))
        return [self._from_record(r) for r in found[:limit]]

    def stats(self, *, tenant_id: str) -> TaskStats:
        """The tenant's counters, summed over their shards (one batch read, never a scan)."""
        keys = [stats_pk(tenant_id, n) for n in range(schema.STATS_SHARDS)]
        shards = list(self._r.stats.batch_get(keys))

        def total(name: str) -> int:
            return sum(int(getattr(shard, name) or 0) for shard in shards)

        counts = {status: max(0, total(f"count_{status}")) for status in TaskStatus}
        count = total("processing_count")
        average = total("processing_ms_total") / count / 1000.0 if count else None
        return TaskStats(
            counts=counts,
            submitted=total("submitted"),
            dedupe_hits=total("dedupe_hits"),
            average_processing_s=average,
        )

    # -- lifecycle -------------------------------------------------------------------------------------

    def apply_events(self, task_id: str, events: Iterable[LifecycleEvent]) -> Task | None:
        """Fold lifecycle events into the record with an optimistic (versioned) conditional write.

        Returns the new task, or None when no such task exists (an event for an expired task is dropped).
        Moving to `failed` releases the dedupe claim, so the same text can be submitted again.
        """
        events = list(events)
        for attempt in range(_APPLY_ATTEMPTS):
            try:
                record = self._r.task.get(task_pk(task_id), consistent_read=True)
            except DoesNotExist:
                return None
            task = self._from_record(record)
            after = reduce(apply_event, events, task.lifecycle)
            if after == task.lifecycle:
                return task
            try:
                with TransactWrite(connection=self._r.connection) as tx:
                    tx.update(record, actions=self._lifecycle_actions(task, after))
                    stats_actions = self._stats_actions(task.lifecycle, after)
                    if stats_actions:
                        tx.update(self._stats_item(task.tenant_id, task_id), actions=stats_actions)
                    if after.status is TaskStatus.FAILED and task.status is not TaskStatus.FAILED:
                        self._release_claim(tx, task)
                return replace(task, lifecycle=after)
            except TransactWriteError as exc:
                if not _lost_a_race(exc):
                    raise DependencyUnavailable("the task table did not accept the update") from exc
                _backoff(attempt)
        raise ConcurrentUpdate(f"task {task_id} is updated too often to apply events; will retry")

    def _release_claim(self, tx: TransactWrite, task: Task) -> None:
        try:
            claim = self._r.claim.get(claim_pk(task.dedupe_key), consistent_read=True)
        except DoesNotExist:
            return
        if claim.task_id == task.task_id:
            tx.delete(claim, condition=self._r.claim.task_id == task.task_id)

    def _lifecycle_actions(self, task: Task, after: LifecycleState) -> list[Any]:
        t = self._r.task
        before = task.lifecycle
        actions: list[Any] = []
        if after.status != before.status:
            actions += [
                t.status.set(str(after.status)),
                t.status_pk.set(status_pk(task.tenant_id, str(after.status))),
                _open_action(t, task.task_id, after.status),
            ]
        for name in (
            "last_event_at",
            "enqueued_at",
            "started_at",
            "completed_at",
            "failed_at",
            "attempts",
            "pieces_done",
            "pieces_total",
        ):
            value = getattr(after, name)
            if value != getattr(before, name) and value is not None:
                actions.append(getattr(t, name).set(value))
        if after.audio != before.audio and after.audio is not None:
            a = after.audio
            actions += [
                t.audio_key.set(a.audio_key),
                t.file_size.set(a.file_size),
                t.audio_format.set(str(a.format)),
                t.sampling_rate.set(a.sampling_rate),
                t.duration_s.set(a.duration_s),
                t.device.set(a.device),
            ]
            if a.marks:
                actions.append(t.marks.set(",".join(str(m) for m in a.marks)))
        if after.error != before.error and after.error is not None:
            actions += [t.error_code.set(after.error.code), t.error_message.set(after.error.message)]
        return actions

    def _stats_actions(self, before: LifecycleState, after: LifecycleState) -> list[Any]:
        s = self._r.stats
        actions: list[Any] = []
        if after.status != before.status:
            actions.append(getattr(s, f"count_{before.status}").add(-1))
            actions.append(getattr(s, f"count_{after.status}").add(1))
        # Add the change in this task's processing time, so the total telescopes to the final value
        # whatever order the events arrived in.
        before_ms, after_ms = _processing_ms(before), _processing_ms(after)
        if after_ms is not None and after_ms != before_ms:
            actions.append(s.processing_ms_total.add(after_ms - (before_ms or 0)))
            if before_ms is None:
                actions.append(s.processing_count.add(1))
        return actions

    # -- webhooks --------------------------------------------------------------------------------------

    def record_webhook(self, task_id: str, webhook: Webhook) -> bool:
        """Write where the task's notification stands (tts_notifier); False when the task is gone or its
        notification of the same event is already final (a duplicate delivery never downgrades it)."""
        t = self._r.task
        actions = [
            t.webhook_state.set(str(webhook.state)),
            t.webhook_event.set(str(webhook.event)),
            t.webhook_attempts.set(webhook.attempts),
            t.webhook_updated_at.set(webhook.updated_at),
        ]
        for attribute, value in (
            (t.webhook_last_status, webhook.last_status),
            (t.webhook_last_error, webhook.last_error[:2000] if webhook.last_error else None),
            (t.webhook_delivered_at, webhook.delivered_at),
        ):
            actions.append(attribute.set(value) if value is not None else attribute.remove())
        # Pending or final, a write never replaces a final state of the same event.
        final = [str(s) for s in FINAL_WEBHOOK_STATES]
        condition = t.pk.exists() & (
            t.webhook_state.does_not_exist()
            | ~t.webhook_state.is_in(*final)
            | (t.webhook_event != str(webhook.event))
        )
        try:
            t._get_connection().update_item(task_pk(task_id), actions=actions, condition=condition)
        except UpdateError as exc:
            if _response_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # -- health and setup ------------------------------------------------------------------------------

    def ping(self) -> bool:
        try:
            self._r.connection.describe_table(self._r.task.Meta.table_name)
        except PynamoDBException:
            return False
        return True

    # -- conversion ------------------------------------------------------------------------------------

    def _to_record(self, task: Task, expires: datetime) -> Any:
        lc = task.lifecycle
        return self._r.task(
            pk=task_pk(task.task_id),
            task_id=task.task_id,
            tenant_id=task.tenant_id,
            status=str(lc.status),
            dedupe_key=task.dedupe_key,
            voice=task.voice.model_dump_json(),
            text_chars=task.text_chars,
            text=task.text,
            text_key=task.text_key,
            custom_filename=task.custom_filename,
            submitted_at=task.submitted_at,
            list_pk=list_pk(task.tenant_id),
            status_pk=status_pk(task.tenant_id, str(lc.status)),
            open_pk=None if lc.status in TERMINAL_STATUSES else _open_value(task.task_id, lc.status),
            submitted_sk=sort_key(task.submitted_at, task.task_id),
            expires_at=expires,
            dedupe_hits=task.dedupe_hits,
            client_request=json.dumps(task.client_request) if task.client_request else None,
            callback_url=task.callback_url,
        )

    @staticmethod
    def _from_record(r: Any) -> Task:
        voice = VoiceSpec.model_validate_json(r.voice)
        audio = None
        if r.audio_key is not None and r.file_size is not None:
            audio = AudioInfo(
                audio_key=r.audio_key,
                file_size=int(r.file_size),
                format=AudioFormat(r.audio_format) if r.audio_format else voice.format,
                sampling_rate=int(r.sampling_rate or 0),
                duration_s=float(r.duration_s or 0.0),
                device=r.device or "",
                marks=tuple(MarksFormat(m) for m in (r.marks or "").split(",") if m),
            )
        error = None
        if r.error_code is not None:
            error = ErrorInfo(code=r.error_code, message=r.error_message or "")
        lifecycle = LifecycleState(
            status=TaskStatus(r.status),
            last_event_at=r.last_event_at,
            enqueued_at=r.enqueued_at,
            started_at=r.started_at,
            completed_at=r.completed_at,
            failed_at=r.failed_at,
            attempts=int(r.attempts or 0),
            pieces_done=int(r.pieces_done or 0),
            pieces_total=int(r.pieces_total or 0),
            audio=audio,
            error=error,
        )
        return Task(
            task_id=r.task_id,
            # A record from before tenants has none: it matches no tenant, so no request ever sees it.
            tenant_id=r.tenant_id or "",
            dedupe_key=r.dedupe_key,
            voice=voice,
            text_chars=int(r.text_chars),
            submitted_at=r.submitted_at,
            custom_filename=r.custom_filename,
            text=r.text,
            text_key=r.text_key,
            lifecycle=lifecycle,
            dedupe_hits=int(r.dedupe_hits or 0),
            expires_at=r.expires_at,
            client_request=json.loads(r.client_request) if r.client_request else None,
            callback_url=r.callback_url,
            webhook=_webhook_of(r),
        )


def _webhook_of(r: Any) -> Webhook | None:
    if r.webhook_state is None or r.webhook_event is None:
        return None
    return Webhook(
        state=WebhookState(r.webhook_state),
        event=TaskStatus(r.webhook_event),
        attempts=int(r.webhook_attempts or 0),
        updated_at=r.webhook_updated_at or r.submitted_at,
        last_status=int(r.webhook_last_status) if r.webhook_last_status is not None else None,
        last_error=r.webhook_last_error,
        delivered_at=r.webhook_delivered_at,
    )


# -- page tokens: the index's last key, bound to the filter it was issued for --------------------------


def _processing_ms(state: LifecycleState) -> int | None:
    if state.started_at is None or state.completed_at is None:
        return None
    return max(0, int((state.completed_at - state.started_at).total_seconds() * 1000))


def _index_partition(tenant_id: str, status: TaskStatus | None) -> str:
    return list_pk(tenant_id) if status is None else status_pk(tenant_id, str(status))


def _open_value(task_id: str, status: TaskStatus) -> str:
    return open_pk(str(status), open_shard_for(task_id))


def _open_action(t: Any, task_id: str, status: TaskStatus) -> Any:
    """A finished task leaves the sweeper's index; an unfinished one moves to its status's shard."""
    if status in TERMINAL_STATUSES:
        return t.open_pk.remove()
    return t.open_pk.set(_open_value(task_id, status))


def _encode_token(last_key: dict[str, Any], status: TaskStatus | None) -> str:
    payload = {"k": last_key, "s": str(status) if status else None}
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, *, tenant_id: str, status: TaskStatus | None) -> dict[str, Any]:
    """The index key a token carries, checked against exactly what this API issues for this tenant and
    filter: a token issued to another tenant names another partition, and is refused."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidPageToken() from None
    if not isinstance(payload, dict) or payload.get("s") != (str(status) if status else None):
        raise InvalidPageToken()
    key = payload.get("k")
    index_pk = schema.LIST_INDEX_PK if status is None else schema.STATUS_INDEX_PK
    expected = {schema.PARTITION_KEY, index_pk, schema.LIST_INDEX_SK}
    if not isinstance(key, dict) or set(key) != expected:
        raise InvalidPageToken()
    values: dict[str, str] = {}
    for name, value in key.items():
        if not (isinstance(value, dict) and set(value) == {"S"} and isinstance(value["S"], str)):
            raise InvalidPageToken()
        values[name] = value["S"]
    sort = _SORT_KEY.match(values[schema.LIST_INDEX_SK])
    if (
        values[index_pk] != _index_partition(tenant_id, status)
        or sort is None
        or values[schema.PARTITION_KEY] != task_pk(sort.group(1))
    ):
        raise InvalidPageToken()
    return key


def create_table(records: Records) -> None:
    """Create the table with its indexes (local stack and tests; the CDK app owns it on AWS)."""
    if not records.task.exists():
        records.task.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
