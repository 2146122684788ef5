"""The order-free merge of lifecycle events into a task record.

SQS delivers at least once and in any order. `apply_event` is commutative, associative and idempotent
over one task's events, so every order and every duplication of them folds to the same record.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from tts_common.domain import TaskStatus, later_status
from tts_common.messages import AudioInfo, ErrorInfo, LifecycleEvent


@dataclass(frozen=True, slots=True)
class LifecycleState:
    """The part of a task record that lifecycle events decide."""

    status: TaskStatus = TaskStatus.QUEUED
    # The newest event's time: the sweeper measures inactivity from it.
    last_event_at: datetime | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    attempts: int = 0
    pieces_done: int = 0
    pieces_total: int = 0
    audio: AudioInfo | None = None
    error: ErrorInfo | None = None


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < current else current


def _audio_order(at: datetime, audio: AudioInfo) -> tuple[datetime, str]:
    return (at, audio.model_dump_json())


def _error_order(at: datetime, error: ErrorInfo) -> tuple[datetime, str, str]:
    return (at, error.code, error.message)


def apply_event(state: LifecycleState, event: LifecycleEvent) -> LifecycleState:
    """Fold one event into the state. Each field has its own order-free rule (min, max or a fixed pick)."""
    new = replace(
        state,
        status=later_status(state.status, event.status),
        attempts=max(state.attempts, event.attempt),
        last_event_at=event.at if state.last_event_at is None else max(state.last_event_at, event.at),
    )
    if event.progress is not None:
        new = replace(
            new,
            pieces_total=max(new.pieces_total, event.progress.pieces_total),
            pieces_done=max(new.pieces_done, event.progress.pieces_done),
        )
    match event.status:
        case TaskStatus.QUEUED:
            new = replace(new, enqueued_at=_earliest(new.enqueued_at, event.at))
        case TaskStatus.PROCESSING:
            new = replace(new, started_at=_earliest(new.started_at, event.at))
        case TaskStatus.COMPLETED | TaskStatus.DONE:
            assert event.audio is not None  # guaranteed by LifecycleEvent's validator
            # The earliest audio report wins; ties broken by content, so the pick never depends on order.
            if (
                new.completed_at is None
                or new.audio is None
                or _audio_order(event.at, event.audio) < _audio_order(new.completed_at, new.audio)
            ):
                new = replace(new, completed_at=event.at, audio=event.audio)
        case TaskStatus.FAILED:
            assert event.error is not None
            if (
                new.failed_at is None
                or new.error is None
                or _error_order(event.at, event.error) < _error_order(new.failed_at, new.error)
            ):
                new = replace(new, failed_at=event.at, error=event.error)
    return new
