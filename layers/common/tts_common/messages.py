"""Message bodies that cross a queue or the event channel. Pydantic validates both ends."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from tts_common.domain import DEFAULT_MAX_PIECE_CHARS, TaskStatus

SCHEMA_VERSION = 1


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SynthesisJob(_Message):
    """One task's work order on the jobs queue.

    The text rides inline when small; a large text is stored in the bucket and `text_key` points to it
    (SQS bodies are limited in size).
    """

    schema_version: int = SCHEMA_VERSION
    task_id: Annotated[str, Field(min_length=1, max_length=64)]
    dedupe_key: Annotated[str, Field(min_length=64, max_length=64)]
    language: str
    model_id: str
    speaking_rate: float = 1.0
    noise_scale: float = 0.667
    noise_scale_duration: float = 0.8
    # Jobs sent before this field existed were split at the same default.
    max_piece_chars: Annotated[int, Field(ge=20, le=5000)] = DEFAULT_MAX_PIECE_CHARS
    text: str | None = None
    text_key: str | None = None
    audio_key: str
    submitted_at: AwareDatetime

    @model_validator(mode="after")
    def _exactly_one_text_source(self) -> Self:
        if (self.text is None) == (self.text_key is None):
            raise ValueError("a job carries exactly one of text or text_key")
        return self


class AudioInfo(_Message):
    """What the worker learned about the audio it wrote."""

    audio_key: str
    file_size: int
    sampling_rate: int
    duration_s: float
    device: str


class ErrorInfo(_Message):
    code: str
    message: str


class Progress(_Message):
    pieces_done: Annotated[int, Field(ge=0)]
    pieces_total: Annotated[int, Field(ge=1)]


class LifecycleEvent(_Message):
    """One step of a task's life, published to the event channel.

    queued (API) → processing (with progress) → completed → done, or failed. `completed` and `done` both
    carry the audio so that either alone is enough to finish the record, whatever order they arrive in.
    """

    schema_version: int = SCHEMA_VERSION
    task_id: str
    status: TaskStatus
    at: AwareDatetime
    attempt: Annotated[int, Field(ge=0)] = 0
    progress: Progress | None = None
    audio: AudioInfo | None = None
    error: ErrorInfo | None = None

    @model_validator(mode="after")
    def _payload_matches_status(self) -> Self:
        if self.status in (TaskStatus.COMPLETED, TaskStatus.DONE) and self.audio is None:
            raise ValueError(f"a {self.status} event carries audio")
        if self.status is TaskStatus.FAILED and self.error is None:
            raise ValueError("a failed event carries an error")
        return self
