"""TaskRepository: every read and write of task records, dedupe claims and stats counters."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from tts_common.domain import TaskStatus
from tts_common.exceptions import ConcurrentUpdate, DependencyUnavailable, InvalidPageToken, TaskNotFound
from tts_common.lifecycle import LifecycleState, apply_event
from tts_common.messages import AudioInfo, ErrorInfo, LifecycleEvent
from tts_common.storage import schema
from tts_common.storage.models import LIST_PK_VALUE, STATS_PK, Records, claim_pk, task_pk
from tts_common.task import Task, TaskPage, TaskStats

_CREATE_ATTEMPTS = 5
_APPLY_ATTEMPTS = 10


def sort_key(submitted_at: datetime, task_id: str) -> str:
    """Lexicographic order equals time order: fixed-width UTC timestamp, then the id as tie-breaker."""
    return f"{submitted_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{task_id}"


def _is_conditional_failure(exc: TransactWriteError) -> bool:
    if exc.cause_response_code != "TransactionCanceledException":
        return False
    return any(r is not None and r.code == "ConditionalCheckFailed" for r in exc.cancellation_reasons)


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
        for _ in range(_CREATE_ATTEMPTS):
            expires = task.submitted_at + self._ttl
            claim = self._r.claim(pk=claim_pk(task.dedupe_key), task_id=task.task_id, expires_at=expires)
            record = self._to_record(task, expires)
            try:
                with TransactWrite(connection=self._r.connection) as tx:
                    tx.save(claim, condition=self._r.claim.pk.does_not_exist())
                    tx.save(record, condition=self._r.task.pk.does_not_exist())
                    tx.update(
                        self._r.stats(pk=STATS_PK),
                        actions=[self._r.stats.submitted.add(1), self._r.stats.count_queued.add(1)],
                    )
                return task, True
            except TransactWriteError as exc:
                if not _is_conditional_failure(exc):
                    raise DependencyUnavailable("the task table did not accept the write") from exc
            existing = self._owner_of(task.dedupe_key)
            if existing is not None:
                self._record_dedupe_hit(existing.task_id)
                return replace(existing, dedupe_hits=existing.dedupe_hits + 1), False
        raise ConcurrentUpdate("could not settle the dedupe claim; try again")

    def _owner_of(self, key: str) -> Task | None:
        """The live task holding a dedupe claim; a claim whose task is gone is removed."""
        try:
            claim = self._r.claim.get(claim_pk(key), consistent_read=True)
        except DoesNotExist:
            return None  # released between our write and this read (its task failed): try again
        try:
            return self.get(claim.task_id, consistent=True)
        except TaskNotFound:
            with contextlib.suppress(PynamoDBException):
                claim.delete(condition=self._r.claim.task_id == claim.task_id)
            return None

    def _record_dedupe_hit(self, task_id: str) -> None:
        self._r.stats(pk=STATS_PK).update(actions=[self._r.stats.dedupe_hits.add(1)])
        # Through the table connection: a model update would reset the version attribute of a bare instance.
        self._r.task._get_connection().update_item(
            task_pk(task_id),
            actions=[self._r.task.dedupe_hits.add(1)],
            condition=self._r.task.pk.exists(),
        )

    # -- reads -----------------------------------------------------------------------------------------

    def get(self, task_id: str, *, consistent: bool = False) -> Task:
        try:
            record = self._r.task.get(task_pk(task_id), consistent_read=consistent)
        except DoesNotExist:
            raise TaskNotFound(task_id) from None
        return self._from_record(record)

    def list_tasks(self, *, status: TaskStatus | None, limit: int, next_token: str | None) -> TaskPage:
        """Newest first, through a GSI query (never a scan). The token is bound to the filter."""
        start_key = _decode_token(next_token, status) if next_token else None
        if status is None:
            results = self._r.task.by_submitted.query(
                LIST_PK_VALUE,
                scan_index_forward=False,
                limit=limit,
                page_size=limit,
                last_evaluated_key=start_key,
            )
        else:
            results = self._r.task.by_status.query(
                str(status),
                scan_index_forward=False,
                limit=limit,
                page_size=limit,
                last_evaluated_key=start_key,
            )
        items = [self._from_record(r) for r in results]
        last = results.last_evaluated_key
        return TaskPage(items=items, next_token=_encode_token(last, status) if last and items else None)

    def tasks_submitted_before(self, status: TaskStatus, cutoff: datetime, *, limit: int = 100) -> list[Task]:
        """Tasks in one status submitted before the cutoff, oldest first (for the sweeper)."""
        results = self._r.task.by_status.query(
            str(status),
            self._r.task.submitted_sk < sort_key(cutoff, ""),
            scan_index_forward=True,
            limit=limit,
        )
        return [self._from_record(r) for r in results]

    def stats(self) -> TaskStats:
        try:
            s = self._r.stats.get(STATS_PK, consistent_read=True)
        except DoesNotExist:
            s = self._r.stats(pk=STATS_PK)
        counts = {status: max(0, int(getattr(s, f"count_{status}") or 0)) for status in TaskStatus}
        count = int(s.processing_count or 0)
        average = (float(s.processing_ms_total or 0) / count / 1000.0) if count else None
        return TaskStats(
            counts=counts,
            submitted=int(s.submitted or 0),
            dedupe_hits=int(s.dedupe_hits or 0),
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
                    tx.update(record, actions=self._lifecycle_actions(task.lifecycle, after))
                    stats_actions = self._stats_actions(task.lifecycle, after)
                    if stats_actions:
                        tx.update(self._r.stats(pk=STATS_PK), actions=stats_actions)
                    if after.status is TaskStatus.FAILED and task.status is not TaskStatus.FAILED:
                        self._release_claim(tx, task)
                return replace(task, lifecycle=after)
            except TransactWriteError as exc:
                if not _is_conditional_failure(exc):
                    raise DependencyUnavailable("the task table did not accept the update") from exc
                time.sleep(min(0.2, 0.005 * 2**attempt))
        raise ConcurrentUpdate(f"task {task_id} is updated too often to apply events; will retry")

    def _release_claim(self, tx: TransactWrite, task: Task) -> None:
        try:
            claim = self._r.claim.get(claim_pk(task.dedupe_key), consistent_read=True)
        except DoesNotExist:
            return
        if claim.task_id == task.task_id:
            tx.delete(claim, condition=self._r.claim.task_id == task.task_id)

    def _lifecycle_actions(self, before: LifecycleState, after: LifecycleState) -> list[Any]:
        t = self._r.task
        actions: list[Any] = []
        if after.status != before.status:
            actions.append(t.status.set(str(after.status)))
        for name in (
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
                t.sampling_rate.set(a.sampling_rate),
                t.duration_s.set(a.duration_s),
                t.device.set(a.device),
            ]
        if after.error != before.error and after.error is not None:
            actions += [t.error_code.set(after.error.code), t.error_message.set(after.error.message)]
        return actions

    def _stats_actions(self, before: LifecycleState, after: LifecycleState) -> list[Any]:
        s = self._r.stats
        actions: list[Any] = []
        if after.status != before.status:
            actions.append(getattr(s, f"count_{before.status}").add(-1))
            actions.append(getattr(s, f"count_{after.status}").add(1))
        had_timing = before.started_at is not None and before.completed_at is not None
        if not had_timing and after.started_at is not None and after.completed_at is not None:
            elapsed_ms = max(0, int((after.completed_at - after.started_at).total_seconds() * 1000))
            actions += [s.processing_ms_total.add(elapsed_ms), s.processing_count.add(1)]
        return actions

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
            status=str(lc.status),
            dedupe_key=task.dedupe_key,
            language=task.language,
            model_id=task.model_id,
            text_chars=task.text_chars,
            text=task.text,
            text_key=task.text_key,
            custom_filename=task.custom_filename,
            submitted_at=task.submitted_at,
            list_pk=LIST_PK_VALUE,
            submitted_sk=sort_key(task.submitted_at, task.task_id),
            expires_at=expires,
            dedupe_hits=task.dedupe_hits,
        )

    @staticmethod
    def _from_record(r: Any) -> Task:
        audio = None
        if r.audio_key is not None and r.file_size is not None:
            audio = AudioInfo(
                audio_key=r.audio_key,
                file_size=int(r.file_size),
                sampling_rate=int(r.sampling_rate or 0),
                duration_s=float(r.duration_s or 0.0),
                device=r.device or "",
            )
        error = None
        if r.error_code is not None:
            error = ErrorInfo(code=r.error_code, message=r.error_message or "")
        lifecycle = LifecycleState(
            status=TaskStatus(r.status),
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
            dedupe_key=r.dedupe_key,
            language=r.language,
            model_id=r.model_id,
            text_chars=int(r.text_chars),
            submitted_at=r.submitted_at,
            custom_filename=r.custom_filename,
            text=r.text,
            text_key=r.text_key,
            lifecycle=lifecycle,
            dedupe_hits=int(r.dedupe_hits or 0),
        )


# -- page tokens: the index's last key, bound to the filter it was issued for --------------------------

_TOKEN_KEYS = {schema.PARTITION_KEY, schema.LIST_INDEX_PK, schema.LIST_INDEX_SK, schema.STATUS_INDEX_PK}


def _encode_token(last_key: dict[str, Any], status: TaskStatus | None) -> str:
    payload = {"k": last_key, "s": str(status) if status else None}
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, status: TaskStatus | None) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidPageToken() from None
    if not isinstance(payload, dict) or payload.get("s") != (str(status) if status else None):
        raise InvalidPageToken()
    key = payload.get("k")
    if not isinstance(key, dict) or not key or not set(key) <= _TOKEN_KEYS:
        raise InvalidPageToken()
    for value in key.values():
        if not (isinstance(value, dict) and set(value) == {"S"} and isinstance(value["S"], str)):
            raise InvalidPageToken()
    return key


def create_table(records: Records) -> None:
    """Create the table with its indexes (local stack and tests; the CDK app owns it on AWS)."""
    if not records.task.exists():
        records.task.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
