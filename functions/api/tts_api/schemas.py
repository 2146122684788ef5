"""Request and response bodies of the HTTP API, kept apart from the domain types and converted explicitly.

The schema checks what holds for every deployment (types, hard size caps, filename shape). Limits that depend
on settings (MAX_TEXT_CHARS, MAX_BATCH_TEXTS, the served languages) are checked in `service`, which raises the
same 422 body.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tts_common.domain import MAX_FILENAME_CHARS, TaskStatus, validate_custom_filename
from tts_common.exceptions import InvalidInput
from tts_common.task import Task, TaskStats

# A hard cap on the raw text before normalization (settings cap the normalized length at 100 000 at most);
# it keeps a request from making the API normalize megabytes.
MAX_RAW_TEXT_CHARS = 1_000_000
# The settings allow MAX_BATCH_TEXTS up to 1000; the deployment's own limit is checked in `service`.
MAX_RAW_BATCH_TEXTS = 1000
MAX_LANGUAGE_CHARS = 35


def _plain_filename(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validate_custom_filename(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None  # pydantic reports a ValueError as a 422 entry


CustomFilename = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_FILENAME_CHARS,
        description="A plain file name: no '/', backslash, '..' or control characters; '.wav' is added "
        "if missing.",
        examples=["greeting.wav"],
    ),
    AfterValidator(_plain_filename),
]
InputText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_RAW_TEXT_CHARS,
        description="Text to speak: 1..MAX_TEXT_CHARS characters after trimming and collapsing whitespace.",
        examples=["Hyvää huomenta!"],
    ),
]
Language = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_LANGUAGE_CHARS,
        description="Language code, default the deployment's own; must be one the deployment serves.",
        examples=["fi"],
    ),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConvertRequest(_Request):
    text: InputText
    custom_filename: CustomFilename | None = None
    language: Language | None = None


class ConvertMultipleRequest(_Request):
    texts: Annotated[
        list[InputText],
        Field(
            min_length=1,
            max_length=MAX_RAW_BATCH_TEXTS,
            description="1..MAX_BATCH_TEXTS texts (100 by default); one conversion each, in order.",
        ),
    ]
    language: Language | None = None


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class ConversionAccepted(_Response):
    conversion_id: str
    status: TaskStatus
    submitted_at: datetime
    deduplicated: bool = Field(description="True when the same text was already converted or queued.")
    custom_filename: str | None = Field(
        description="The filename the conversion downloads under. On a dedupe hit the first submission's "
        "name stands; a different name can be asked for at download time (`?filename=`)."
    )

    @classmethod
    def from_task(cls, task: Task, *, deduplicated: bool) -> ConversionAccepted:
        return cls(
            conversion_id=task.task_id,
            status=task.status,
            submitted_at=task.submitted_at,
            deduplicated=deduplicated,
            custom_filename=task.custom_filename,
        )


class BatchAccepted(_Response):
    items: list[ConversionAccepted]


class TaskError(_Response):
    code: str
    message: str


class Progress(_Response):
    pieces_done: int
    pieces_total: int


class Conversion(_Response):
    conversion_id: str
    status: TaskStatus
    text_hash: str = Field(description="The dedupe key: SHA-256 of the normalized text and synthesis params.")
    submitted_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    error: TaskError | None
    file_size: int | None
    sampling_rate: int | None
    duration_s: float | None
    device: str | None
    custom_filename: str | None
    progress: Progress | None
    attempts: int

    @classmethod
    def from_task(cls, task: Task) -> Conversion:
        lc = task.lifecycle
        audio = lc.audio
        finished = task.status in (TaskStatus.COMPLETED, TaskStatus.DONE)
        # A redriven job that succeeded after all is done: its earlier failure is history, not its state.
        error = lc.error if lc.error is not None and task.status is TaskStatus.FAILED else None
        return cls(
            conversion_id=task.task_id,
            status=task.status,
            text_hash=task.dedupe_key,
            submitted_at=task.submitted_at,
            started_at=lc.started_at,
            completed_at=lc.completed_at,
            failed_at=lc.failed_at if error else None,
            error=TaskError(code=error.code, message=error.message) if error else None,
            file_size=audio.file_size if audio else None,
            sampling_rate=audio.sampling_rate if audio else None,
            duration_s=audio.duration_s if audio else None,
            device=audio.device if audio else None,
            custom_filename=task.custom_filename,
            progress=Progress(
                pieces_done=lc.pieces_total if finished else lc.pieces_done, pieces_total=lc.pieces_total
            )
            if lc.pieces_total
            else None,
            attempts=lc.attempts,
        )


class ConversionPage(_Response):
    items: list[Conversion]
    next_token: str | None = Field(description="Pass as `next_token` for the next page; null on the last.")


class Download(_Response):
    url: str = Field(description="A presigned GET URL; its Content-Disposition carries the filename.")
    expires_at: datetime
    filename: str


class Stats(_Response):
    counts: dict[TaskStatus, int]
    submitted: int
    dedupe_hits: int
    average_processing_s: float | None

    @classmethod
    def from_stats(cls, stats: TaskStats) -> Stats:
        return cls(
            counts={status: stats.counts.get(status, 0) for status in TaskStatus},
            submitted=stats.submitted,
            dedupe_hits=stats.dedupe_hits,
            average_processing_s=stats.average_processing_s,
        )


class ServiceInfo(_Response):
    name: str
    version: str
    timestamp: datetime


class HealthChecks(_Response):
    table: bool
    bucket: bool
    queue: bool


class HealthReport(ServiceInfo):
    checks: HealthChecks


class ErrorBody(_Response):
    code: str = Field(description="Stable machine-readable code, e.g. `validation_error`, `task_not_found`.")
    message: str
    details: dict[str, Any] | None = Field(default=None, description="Present when there is more to say.")


class ErrorResponse(_Response):
    """The one error body every route returns."""

    error: ErrorBody
