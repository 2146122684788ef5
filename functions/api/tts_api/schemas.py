"""Request and response bodies of the HTTP API, kept apart from the domain types and converted explicitly.

The schema checks what holds for every deployment (types, hard size caps, filename shape, the voice's
bounds). Limits that depend on settings (MAX_TEXT_CHARS, MAX_BATCH_TEXTS, the served languages, a format and
rate pair once the default format is known) are checked in `service`, which raises the same 422 body.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tts_common.domain import MAX_FILENAME_CHARS, MarksFormat, TaskStatus, validate_custom_filename
from tts_common.exceptions import InvalidInput
from tts_common.languages import ServedLanguages
from tts_common.task import Task, TaskStats, WebhookState
from tts_common.voice import FORMATS, SAMPLE_RATES, SPEED_MAX, SPEED_MIN, AudioFormat, rates_for
from tts_common.webhooks import MAX_URL_CHARS

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
        description="A plain file name: no '/', backslash, '..' or control characters. The download gets "
        "the format's extension (an audio extension of another format is replaced).",
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
        description="ISO 639-3 code as MMS names its models (`fin`, `eng`, `swh`); the ISO 639-1 (`fi`) and "
        "639-2/B (`fre`) forms are accepted too, in any case. Default: the deployment's default language; "
        "one it does not serve is 422 `unsupported_language` (`details.supported`).",
        examples=["fin"],
    ),
]
Speed = Annotated[
    float,
    Field(
        ge=SPEED_MIN,
        le=SPEED_MAX,
        allow_inf_nan=False,
        description=f"Speaking rate, {SPEED_MIN}..{SPEED_MAX}: 2.0 speaks twice as fast. Default: the "
        "deployment's (TTS_SPEED, 1.0).",
        examples=[1.0],
    ),
]
Format = Annotated[
    AudioFormat,
    Field(
        description="Audio format: wav (PCM 16-bit), flac, ogg_opus, ogg_vorbis, mp3, pcm (raw s16le, no "
        "header). Default: the deployment's (TTS_FORMAT, wav).",
    ),
]


def _offered_rate(value: int | None) -> int | None:
    if value is not None and value not in SAMPLE_RATES:
        raise ValueError(f"sample_rate must be one of {', '.join(str(r) for r in SAMPLE_RATES)}")
    return value


SampleRate = Annotated[
    int,
    Field(
        description="Output sample rate in Hz, resampled from the model's native rate (16000 for MMS). "
        "Default: the native rate (for ogg_opus, which cannot hold every rate, the nearest it holds). "
        "A rate the format cannot hold is 422 (Opus: 8000, 16000, 24000, 48000 of these).",
        json_schema_extra={"enum": list(SAMPLE_RATES)},
    ),
    AfterValidator(_offered_rate),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _VoiceFields(_Request):
    """What a request may choose of its voice; the rest (noise scales, piece length) is the deployment's."""

    language: Language | None = None
    speed: Speed | None = None
    format: Format | None = None
    sample_rate: SampleRate | None = None


CallbackUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_CHARS,
        description="Where to POST the signed notification when the conversion ends done or failed "
        "(`X-TTS-Signature`, README: Webhooks). https only; a host resolving to a private, loopback, "
        "link-local or metadata address is refused (400 `invalid_callback_url`, `details.reason`). "
        "Not in the dedupe key: on a dedupe hit the first submission's callback_url stands (answered in "
        "`callback_url`), as `custom_filename` does. The tenant needs a webhook secret "
        "(`tts-admin webhooks secret`), else the notification is recorded undeliverable.",
        examples=["https://example.com/hooks/tts"],
    ),
]


class _CallbackField(_Request):
    callback_url: CallbackUrl | None = None


class ConvertRequest(_VoiceFields, _CallbackField):
    text: InputText
    custom_filename: CustomFilename | None = None


class ConvertMultipleRequest(_VoiceFields, _CallbackField):
    texts: Annotated[
        list[InputText],
        Field(
            min_length=1,
            max_length=MAX_RAW_BATCH_TEXTS,
            description="1..MAX_BATCH_TEXTS texts (100 by default); one conversion each, in order, all in "
            "the same voice.",
        ),
    ]


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
    callback_url: str | None = Field(
        default=None,
        description="The callback the conversion notifies. On a dedupe hit the first submission's stands: "
        "compare it with the one sent.",
    )

    @classmethod
    def from_task(cls, task: Task, *, deduplicated: bool) -> ConversionAccepted:
        return cls(
            conversion_id=task.task_id,
            status=task.status,
            submitted_at=task.submitted_at,
            deduplicated=deduplicated,
            custom_filename=task.custom_filename,
            callback_url=task.callback_url,
        )


class BatchAccepted(_Response):
    items: list[ConversionAccepted]


class TaskError(_Response):
    code: str
    message: str


class Progress(_Response):
    pieces_done: int
    pieces_total: int


class WebhookInfo(_Response):
    url: str
    state: WebhookState | None = Field(
        description="pending (retrying), delivered, undeliverable (retries ran out, or the tenant has no "
        "webhook secret), gone (the receiver answered 410); null until the conversion ends."
    )
    event: TaskStatus | None = Field(description="The status notified (done or failed).")
    attempts: int
    last_status: int | None = Field(description="The receiver's last HTTP status; null: no answer.")
    last_error: str | None
    delivered_at: datetime | None

    @classmethod
    def from_task(cls, task: Task) -> WebhookInfo | None:
        if task.callback_url is None:
            return None
        w = task.webhook
        return cls(
            url=task.callback_url,
            state=w.state if w else None,
            event=w.event if w else None,
            attempts=w.attempts if w else 0,
            last_status=w.last_status if w else None,
            last_error=w.last_error if w else None,
            delivered_at=w.delivered_at if w else None,
        )


class Conversion(_Response):
    conversion_id: str
    status: TaskStatus
    text_hash: str = Field(description="The dedupe key: SHA-256 of the normalized text and the voice.")
    language: str = Field(description="The ISO 639-3 code the text is spoken in.")
    speed: float
    format: AudioFormat
    sample_rate: int | None = Field(
        description="The rate asked for; null: the model's native rate (`sampling_rate`: the delivered one)."
    )
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
    marks: list[MarksFormat] = Field(
        default_factory=list,
        description="The speech marks and subtitle formats stored with the audio "
        "(`GET /api/v1/tts/{conversion_id}/marks?format=...`); empty until done.",
    )
    webhook: WebhookInfo | None = Field(
        default=None,
        description="The callback and how its notification stands; null without callback_url. The "
        "list view leaves it null (its index does not carry it): read the conversion itself.",
    )

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
            language=task.voice.language,
            speed=task.voice.speed,
            format=task.voice.format,
            sample_rate=task.voice.sample_rate,
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
            marks=list(task.marks),
            webhook=WebhookInfo.from_task(task),
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


class VoiceLanguage(_Response):
    code: str = Field(description="ISO 639-3 code, as a request's `language` takes it.", examples=["fin"])
    name: str = Field(description="English name (ISO 639-3, from pycountry).", examples=["Finnish"])
    model_id: str = Field(description="The model that speaks it.", examples=["facebook/mms-tts-fin"])
    native_sample_rate: int | None = Field(
        description="The model's own rate; null: not known to the API (the worker learns it on loading the "
        "model; MMS models speak at 16000 Hz)."
    )
    romanized: bool | None = Field(
        description="Whether the text is romanized (uroman) before tokenizing; null: not known to the API "
        "(the worker follows the model's tokenizer, `is_uroman`)."
    )


class FormatInfo(_Response):
    format: AudioFormat
    extension: str = Field(description="The extension of the audio's key and of its download filename.")
    content_type: str = Field(description="The Content-Type the download is served with.")
    sample_rates: list[int] = Field(description="The `sample_rate` values this format accepts.")


class Voices(_Response):
    languages: list[VoiceLanguage] = Field(description="The languages this deployment serves, in order.")
    default_language: str
    default_format: AudioFormat
    default_speed: float
    speed_min: float
    speed_max: float
    formats: list[FormatInfo]
    sample_rates: list[int] = Field(description="Every `sample_rate` a request may ask for.")

    @classmethod
    def build(
        cls, *, languages: ServedLanguages, default_format: AudioFormat, default_speed: float
    ) -> Voices:
        return cls(
            languages=[
                VoiceLanguage(
                    code=v.code, name=v.name, model_id=v.model_id, native_sample_rate=None, romanized=None
                )
                for v in languages.voices()
            ],
            default_language=languages.default,
            default_format=default_format,
            default_speed=default_speed,
            speed_min=SPEED_MIN,
            speed_max=SPEED_MAX,
            formats=[
                FormatInfo(
                    format=f,
                    extension=facts.extension,
                    content_type=facts.content_type,
                    sample_rates=list(rates_for(f)),
                )
                for f, facts in FORMATS.items()
            ],
            sample_rates=list(SAMPLE_RATES),
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
