"""Message bodies that cross a queue or the event channel. Pydantic validates both ends."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from tts_common.domain import MarksFormat, TaskStatus
from tts_common.voice import AudioFormat, VoiceSpec

SCHEMA_VERSION = 1


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SynthesisJob(_Message):
    """One task's work order on the jobs queue.

    The text rides inline when small; a large text is stored in the bucket and `text_key` points to it
    (SQS bodies are limited in size). The voice is the task's own, as stored at submit: whoever sends the job
    (the API, the sweeper) copies it, never rebuilds it from its own settings.
    """

    schema_version: int = SCHEMA_VERSION
    task_id: Annotated[str, Field(min_length=1, max_length=64)]
    dedupe_key: Annotated[str, Field(min_length=64, max_length=64)]
    voice: VoiceSpec
    text: str | None = None
    text_key: str | None = None
    audio_key: str
    submitted_at: AwareDatetime

    @model_validator(mode="after")
    def _exactly_one_text_source(self) -> Self:
        if (self.text is None) == (self.text_key is None):
            raise ValueError("a job carries exactly one of text or text_key")
        return self


class PartPiece(_Message):
    """One piece of a part: its index in split_text (its seed), its position among the text's speakable
    pieces (where the pauses go), and its text."""

    index: Annotated[int, Field(ge=0, le=100_000)]
    position: Annotated[int, Field(ge=0, le=100_000)]
    text: Annotated[str, Field(min_length=1, max_length=2000)]


class PartJob(_Message):
    """One part of a long text (fan-out, tts_worker.fanout), on the parts queue: consecutive pieces, each
    with its own seed and place, so the joined audio is the one a single worker would make."""

    kind: Literal["part"] = "part"
    schema_version: int = SCHEMA_VERSION
    task_id: Annotated[str, Field(min_length=1, max_length=64)]
    dedupe_key: Annotated[str, Field(min_length=64, max_length=64)]
    voice: VoiceSpec
    audio_key: str
    submitted_at: AwareDatetime
    seed_key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    part: Annotated[int, Field(ge=0, le=9_999)]
    parts_total: Annotated[int, Field(ge=2, le=10_000)]
    pieces_total: Annotated[int, Field(ge=1, le=100_000)]
    pieces: Annotated[tuple[PartPiece, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _consecutive(self) -> Self:
        first = self.pieces[0].position
        if any(p.position != first + i for i, p in enumerate(self.pieces)) or self.part >= self.parts_total:
            raise ValueError("a part holds consecutive positions and is one of parts_total")
        if self.pieces[-1].position >= self.pieces_total:
            raise ValueError("a part's positions lie within pieces_total")
        return self


class JoinJob(_Message):
    """Join a fanned-out task's stored parts into its audio (and marks), on the jobs queue. It carries the
    parent job's text source: the marks need the text."""

    kind: Literal["join"] = "join"
    schema_version: int = SCHEMA_VERSION
    task_id: Annotated[str, Field(min_length=1, max_length=64)]
    dedupe_key: Annotated[str, Field(min_length=64, max_length=64)]
    voice: VoiceSpec
    text: str | None = None
    text_key: str | None = None
    audio_key: str
    submitted_at: AwareDatetime
    parts_total: Annotated[int, Field(ge=2, le=10_000)]
    pieces_total: Annotated[int, Field(ge=1, le=100_000)]


# Bounds on what a message may say. The channel is trusted no more than a request: a forged or corrupt message
# must not write an absurd number into a task record (attempts of 10^40, a negative size). Each bound is far
# above what the service produces: texts are at most 100,000 characters, hence at most that many pieces.
MAX_ATTEMPTS = 10_000
MAX_PIECES = 100_000
MAX_AUDIO_BYTES = 5 * 1024**4  # S3's largest object
MAX_DURATION_S = 7 * 24 * 3600.0
MAX_SAMPLING_RATE = 384_000
MAX_KEY_CHARS = 1024  # S3's longest key
MAX_ERROR_CODE_CHARS = 64
MAX_ERROR_MESSAGE_CHARS = 2000
TaskId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class AudioInfo(_Message):
    """What the worker learned about the audio it wrote."""

    audio_key: Annotated[str, Field(min_length=1, max_length=MAX_KEY_CHARS)]
    file_size: Annotated[int, Field(ge=0, le=MAX_AUDIO_BYTES)]
    format: AudioFormat
    # The delivered rate: the asked one, else the model's native one (VoiceSpec.output_rate).
    sampling_rate: Annotated[int, Field(ge=1, le=MAX_SAMPLING_RATE)]
    duration_s: Annotated[float, Field(ge=0, le=MAX_DURATION_S, allow_inf_nan=False)]
    device: Annotated[str, Field(max_length=32)]
    # The timing files stored beside the audio (tts_common.domain.marks_key_for); empty: none.
    marks: tuple[MarksFormat, ...] = ()


class ErrorInfo(_Message):
    code: Annotated[str, Field(min_length=1, max_length=MAX_ERROR_CODE_CHARS)]
    message: Annotated[str, Field(max_length=MAX_ERROR_MESSAGE_CHARS)]


class Progress(_Message):
    pieces_done: Annotated[int, Field(ge=0, le=MAX_PIECES)]
    pieces_total: Annotated[int, Field(ge=1, le=MAX_PIECES)]


class LifecycleEvent(_Message):
    """One step of a task's life, published to the event channel.

    queued (API) → processing (with progress) → completed → done, or failed. `completed` and `done` both
    carry the audio so that either alone is enough to finish the record, whatever order they arrive in.
    """

    schema_version: int = SCHEMA_VERSION
    task_id: TaskId
    status: TaskStatus
    at: AwareDatetime
    attempt: Annotated[int, Field(ge=0, le=MAX_ATTEMPTS)] = 0
    progress: Progress | None = None
    audio: AudioInfo | None = None
    error: ErrorInfo | None = None

    @model_validator(mode="after")
    def _payload_matches_status(self) -> Self:
        if self.status in (TaskStatus.COMPLETED, TaskStatus.DONE) and self.audio is None:
            raise ValueError(f"a {self.status} event carries audio")
        if self.status is TaskStatus.FAILED and self.error is None:
            raise ValueError("a failed event carries an error")
        if self.progress is not None and self.progress.pieces_done > self.progress.pieces_total:
            raise ValueError("progress counts more pieces done than there are")
        return self
