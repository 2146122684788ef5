"""The Task domain type: what a conversion is, independent of storage and HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tts_common.domain import TaskStatus
from tts_common.lifecycle import LifecycleState
from tts_common.voice import VoiceSpec


@dataclass(frozen=True, slots=True)
class Task:
    task_id: str
    dedupe_key: str
    # How the text is spoken and delivered: built once at submit, carried in every job for the task.
    voice: VoiceSpec
    text_chars: int
    submitted_at: datetime
    custom_filename: str | None = None
    # The input text: inline when small, else a key in the bucket (exactly one is set).
    text: str | None = None
    text_key: str | None = None
    lifecycle: LifecycleState = field(default_factory=LifecycleState)
    dedupe_hits: int = 0
    # When the record (and its audio) expire; None for a task not yet stored.
    expires_at: datetime | None = None

    @property
    def status(self) -> TaskStatus:
        return self.lifecycle.status


@dataclass(frozen=True, slots=True)
class TaskPage:
    items: list[Task]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class TaskStats:
    counts: dict[TaskStatus, int]
    submitted: int
    dedupe_hits: int
    average_processing_s: float | None
