"""The Task domain type: what a conversion is, independent of storage and HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from tts_common.domain import MarksFormat, TaskStatus
from tts_common.lifecycle import LifecycleState
from tts_common.voice import VoiceSpec


class WebhookState(StrEnum):
    """Where a task's callback stands (tts_notifier): retrying, done, or given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    # Not delivered within WEBHOOK_RETRY_WINDOW_S, or no attempt could ever succeed (no tenant secret).
    UNDELIVERABLE = "undeliverable"
    # The receiver answered 410 Gone: it asked not to be called again for this task.
    GONE = "gone"


FINAL_WEBHOOK_STATES = frozenset({WebhookState.DELIVERED, WebhookState.UNDELIVERABLE, WebhookState.GONE})


@dataclass(frozen=True, slots=True)
class Webhook:
    """The notification of one terminal status (`event`: done or failed) to the task's callback_url."""

    state: WebhookState
    event: TaskStatus
    attempts: int
    updated_at: datetime
    last_status: int | None = None  # the receiver's last HTTP status; None: no answer
    last_error: str | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Task:
    task_id: str
    # Whose conversion it is (tts_common.tenancy): every API read is scoped by it; part of the dedupe key.
    tenant_id: str
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
    # The fields of a compatibility API's request that its answers echo (tts_common.polly: `{"api": "polly",
    # "OutputFormat", ...}`); None for a task submitted on /api/v1/tts. Part of the dedupe key.
    client_request: Mapping[str, Any] | None = None
    # Where the notifier POSTs the signed done/failed notification (checked at submit); on a dedupe hit the
    # first submission's stands, as custom_filename does.
    callback_url: str | None = None
    webhook: Webhook | None = None

    @property
    def status(self) -> TaskStatus:
        return self.lifecycle.status

    @property
    def marks(self) -> tuple[MarksFormat, ...]:
        """The speech marks and subtitle formats stored beside the audio (none before it is written)."""
        audio = self.lifecycle.audio
        return audio.marks if audio is not None else ()


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
