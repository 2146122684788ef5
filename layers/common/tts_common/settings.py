"""Typed settings, read from the environment once at start. A bad value fails loudly, naming the variable."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import AfterValidator, AliasChoices, BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tts_common.domain import MODEL_STORE_PREFIX
from tts_common.exceptions import ConfigurationError
from tts_common.languages import (
    DEFAULT_MODEL_TEMPLATE,
    TEMPLATE_FIELD,
    ServedLanguages,
    canonical_code,
    model_id_for,
)
from tts_common.polly import POLLY_SYNC_MAX_CHARS
from tts_common.voice import (
    DEFAULT_MAX_PIECE_CHARS,
    DEFAULT_NOISE_SCALE,
    DEFAULT_NOISE_SCALE_DURATION,
    MAX_PIECE_CHARS,
    MIN_PIECE_CHARS,
    NOISE_MAX,
    SPEED_MAX,
    SPEED_MIN,
    AudioFormat,
)

DEFAULT_LANGUAGES = ("fin",)
# The default language's model under the default template (prefetch's default).
DEFAULT_MODEL = model_id_for(DEFAULT_LANGUAGES[0], template=DEFAULT_MODEL_TEMPLATE, overrides={})
# How long the jobs queue keeps a message: SQS's default, which the CDK app's queues keep too.
JOBS_QUEUE_RETENTION_S = 4 * 24 * 3600

# What TTS_DEVICE, TTS_DTYPE and TTS_DECODER_RUNTIME may be; the worker's synthesizer takes the same types.
Device = Literal["auto", "cpu", "cuda"]
Dtype = Literal["auto", "float32", "float16", "bfloat16"]
DecoderRuntime = Literal["auto", "torch", "onnxruntime"]
# TTS_CPU_GRAPH: where a CPU item's text encoder, duration predictor and flow run (the decoder follows
# TTS_DECODER_RUNTIME). onnx = ONNX Runtime as well (tts_worker.synthesizer.onnx_graph); auto = onnx on a CPU
# whose decoder is on ONNX Runtime, torch if its export fails its check; CUDA always runs torch.
CpuGraph = Literal["auto", "torch", "onnx"]


def _items(value: Any) -> list[str]:
    """A comma-separated string (the environment) or a sequence of strings (the CDK app), items trimmed."""
    raw = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, Sequence) else None
    if raw is None or not all(isinstance(item, str) for item in raw):
        raise ValueError("a comma-separated list")
    return [item.strip() for item in raw if item.strip()]


def _language(value: str) -> str:
    code = canonical_code(value)
    if code is None:
        raise ValueError(f"{value!r} is not an ISO 639 language code (e.g. fin, eng, swh)")
    return code


def parse_languages(value: Any) -> tuple[str, ...]:
    """TTS_LANGUAGES: a comma list (or sequence) of ISO 639 codes into distinct canonical 639-3 codes."""
    codes = [_language(item) for item in _items(value)]
    if not codes:
        raise ValueError("at least one language")
    if len(set(codes)) != len(codes):
        raise ValueError(f"a language is listed twice: {', '.join(codes)}")
    return tuple(codes)


def _optional_language(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError("a language code")
    return _language(value)


def parse_model_overrides(value: Any) -> tuple[tuple[str, str], ...]:
    """TTS_MODEL_OVERRIDES: `fin=/opt/models/fin,eng=org/model` (or its items, or pairs) into pairs."""
    pairs_given = isinstance(value, Sequence) and not isinstance(value, str)
    if pairs_given and all(isinstance(p, tuple) for p in value):
        items = [f"{a}={b}" for a, b in value]
    else:
        items = _items(value)
    pairs: dict[str, str] = {}
    for item in items:
        code, sep, model = item.partition("=")
        if not sep or not model.strip():
            raise ValueError(f"{item!r} is not language=model")
        pairs[_language(code)] = model.strip()
    return tuple(pairs.items())


def _template(value: str) -> str:
    if TEMPLATE_FIELD not in value:
        raise ValueError(f"must contain {TEMPLATE_FIELD}, e.g. {DEFAULT_MODEL_TEMPLATE}")
    return value


def check_languages(
    codes: tuple[str, ...], *, default: str | None, overrides: tuple[tuple[str, str], ...]
) -> None:
    """What the served languages, the default and the overrides must agree on (the CDK app checks it too)."""
    if default is not None and default not in codes:
        raise ValueError(f"TTS_DEFAULT_LANGUAGE: {default} is not in TTS_LANGUAGES ({', '.join(codes)})")
    unserved = [code for code, _ in overrides if code not in codes]
    if unserved:
        raise ValueError(f"TTS_MODEL_OVERRIDES: {', '.join(unserved)} not in TTS_LANGUAGES")


def parse_voice_aliases(value: Any) -> tuple[tuple[str, str], ...]:
    """TTS_VOICE_ALIASES: `alloy=eng,nova=fin` (or its items, or pairs) into (lower-case alias, 639-3)."""
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and all(isinstance(p, tuple) for p in value)
    ):
        items = [f"{a}={b}" for a, b in value]
    else:
        items = _items(value)
    pairs: dict[str, str] = {}
    for item in items:
        alias, sep, code = item.partition("=")
        if not sep or not alias.strip():
            raise ValueError(f"{item!r} is not alias=language")
        pairs[alias.strip().lower()] = _language(code.strip())
    return tuple(pairs.items())


def _items_tuple(value: Any) -> tuple[str, ...]:
    return tuple(_items(value))


def parse_polly_voices(value: Any) -> tuple[tuple[str, str], ...]:
    """TTS_POLLY_VOICES: `Suvi=fin,Joanna=eng` into (voice name as written, 639-3 code); names match in any
    case (tts_common.polly), and DescribeVoices shows them as written."""
    sequence = isinstance(value, Sequence) and not isinstance(value, str)
    pairs = sequence and all(isinstance(p, tuple) for p in value)
    given = [name for name, _ in value] if pairs else [item.partition("=")[0] for item in _items(value)]
    names = {name.strip().lower(): name.strip() for name in given}
    return tuple((names[alias], code) for alias, code in parse_voice_aliases(value))


# Fan-out defaults (WorkerSettings.tts_part_chars, tts_fanout_min_chars), checked by `make bench`
# (docs/BENCHMARKS.md, long texts).
DEFAULT_PART_CHARS = 8000
DEFAULT_FANOUT_MIN_CHARS = 12_000
# A fanned-out task processing with no lifecycle message for this long has a lost part or join: the sweeper
# re-sends its parent job (the plan step re-sends what is missing), at most FANOUT_MAX_RESENDS times.
FANOUT_STALE_AFTER_S = 1800
FANOUT_MAX_RESENDS = 3

# See ApiSettings.sync_wait_s and inline_audio_max_bytes.
SYNC_WAIT_S = 20.0
INLINE_AUDIO_MAX_BYTES = 4_000_000
# OpenAI's speech models; OPENAI_MODELS replaces the list.
OPENAI_DEFAULT_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")

VoiceAliases = Annotated[tuple[tuple[str, str], ...], NoDecode, BeforeValidator(parse_voice_aliases)]
PollyVoices = Annotated[tuple[tuple[str, str], ...], NoDecode, BeforeValidator(parse_polly_voices)]
# A served language's ISO 639-3 code; 639-1 (`fi`) and 639-2/B (`fre`) forms are accepted and canonicalized.
LanguageList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(parse_languages)]
OptionalLanguage = Annotated[str | None, BeforeValidator(_optional_language)]
ModelOverrides = Annotated[tuple[tuple[str, str], ...], NoDecode, BeforeValidator(parse_model_overrides)]
ModelTemplate = Annotated[str, AfterValidator(_template)]


# The bounds of every AWS call, declared once; each settings class below picks defaults that fit its deadline.
def _connect_timeout(default: float) -> Any:
    return Field(default=default, validation_alias="AWS_CONNECT_TIMEOUT_S", gt=0, le=60)


def _read_timeout(default: float) -> Any:
    return Field(default=default, validation_alias="AWS_READ_TIMEOUT_S", gt=0, le=900)


def _max_attempts(default: int) -> Any:
    return Field(default=default, validation_alias="AWS_MAX_ATTEMPTS", ge=1, le=10)


class AwsSettings(BaseSettings):
    """Where AWS is and how long a call into it may take: what every boto3 client is built from."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", frozen=True)

    aws_region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    # Set for the local stack (moto server); unset on AWS.
    aws_endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")
    aws_connect_timeout_s: float = _connect_timeout(2.0)
    aws_read_timeout_s: float = _read_timeout(5.0)
    aws_max_attempts: int = _max_attempts(3)


# The API key table (tts_common.tenancy.ApiKeyStore).
def _key_table(*, required: bool) -> Any:
    if required:
        return Field(validation_alias="TTS_KEY_TABLE", min_length=1)
    return Field(default=None, validation_alias="TTS_KEY_TABLE", min_length=1)


class KeyStoreSettings(AwsSettings):
    """The Lambda authorizer's settings: only the key table. A hung call answers within the authorizer's
    deadline: 2 x (0.5 + 1.0) + 1 s backoff = 4 s."""

    key_table_name: str = _key_table(required=True)
    aws_connect_timeout_s: float = _connect_timeout(0.5)
    aws_read_timeout_s: float = _read_timeout(1.0)
    aws_max_attempts: int = _max_attempts(2)


# WEBHOOK_ALLOW_LOOPBACK: callbacks to loopback addresses, over http too (tts_common.webhooks.check_url), for
# the local stack's own tests only. Off unless set; the CDK app never sets it (a synth test checks).
def _allow_loopback() -> Any:
    return Field(default=False, validation_alias="WEBHOOK_ALLOW_LOOPBACK")


class ServiceSettings(AwsSettings):
    """What every function needs: where the shared resources are and what the deployment synthesizes."""

    table_name: str = Field(validation_alias="TASKS_TABLE_NAME", min_length=1)
    bucket_name: str = Field(validation_alias="AUDIO_BUCKET_NAME", min_length=1)
    jobs_queue_url: str = Field(validation_alias="JOBS_QUEUE_URL", min_length=1)
    events_topic_arn: str = Field(validation_alias="EVENTS_TOPIC_ARN", min_length=1)

    # The languages served (TTS_LANGUAGES), and which model speaks each: its override, else the template.
    tts_languages: LanguageList = Field(default=DEFAULT_LANGUAGES, validation_alias="TTS_LANGUAGES")
    # Unset: the first served language.
    tts_default_language: OptionalLanguage = Field(default=None, validation_alias="TTS_DEFAULT_LANGUAGE")
    tts_model_template: ModelTemplate = Field(
        default=DEFAULT_MODEL_TEMPLATE, validation_alias="TTS_MODEL_TEMPLATE", min_length=1, max_length=256
    )
    tts_model_overrides: ModelOverrides = Field(default=(), validation_alias="TTS_MODEL_OVERRIDES")
    # How long task records (and, in the CDK app, audio objects) are kept.
    task_ttl_days: int = Field(default=30, validation_alias="TASK_TTL_DAYS", ge=1, le=3650)

    @model_validator(mode="after")
    def _languages_agree(self) -> Self:
        check_languages(
            self.tts_languages, default=self.tts_default_language, overrides=self.tts_model_overrides
        )
        return self

    @property
    def languages(self) -> ServedLanguages:
        return ServedLanguages(
            codes=self.tts_languages,
            default=self.tts_default_language or self.tts_languages[0],
            template=self.tts_model_template,
            overrides=dict(self.tts_model_overrides),
        )

    # Bounds on every AWS call (boto3 and PynamoDB): each attempt waits at most connect + read seconds, for at
    # most AWS_MAX_ATTEMPTS attempts (the first included); worst case attempts x (connect + read) + backoff
    # (tts_common.adapters.aws.ClientTimeouts). Each function overrides the defaults to fit its deadline:
    # here 3 x (2 + 5) + 3 = 24 s, inside API Gateway's 29 s.
    aws_connect_timeout_s: float = _connect_timeout(2.0)
    aws_read_timeout_s: float = _read_timeout(5.0)
    aws_max_attempts: int = _max_attempts(3)


class ApiSettings(ServiceSettings):
    service_version: str = Field(default="0.1.0", validation_alias="SERVICE_VERSION")
    # Where a request's key is resolved when no authorizer has done it (the local stack, or an event without
    # authorizer context); unset, only the authorizer's context identifies a caller.
    key_table_name: str | None = _key_table(required=False)
    # Comma-separated origins allowed to call the API from a browser; empty: no CORS headers.
    cors_allow_origins: str = Field(default="", validation_alias="CORS_ALLOW_ORIGINS")
    max_text_chars: int = Field(default=100_000, validation_alias="MAX_TEXT_CHARS", ge=1, le=100_000)
    max_batch_texts: int = Field(default=100, validation_alias="MAX_BATCH_TEXTS", ge=1, le=1000)
    presign_expiry_s: int = Field(default=3600, validation_alias="PRESIGN_EXPIRY_S", ge=60, le=604_800)
    # A request body larger than this is refused with 413 before it is parsed. Behind API Gateway a Lambda
    # takes at most 6 MB, so the default stays below that; a 100,000-character text is well under 1 MiB.
    max_request_bytes: int = Field(
        default=5 * 1024 * 1024, validation_alias="MAX_REQUEST_BYTES", ge=1024, le=6 * 1024 * 1024
    )
    # Texts whose UTF-8 body is larger than this go to the bucket instead of riding in the SQS message.
    inline_text_max_bytes: int = Field(
        default=65_536, validation_alias="INLINE_TEXT_MAX_BYTES", ge=1024, le=200_000
    )
    # Defaults of a request's voice (tts_common.voice.VoiceSpec), read only here: the voice is built at submit
    # and stored with the task, so the worker and the sweeper need none of them. A request may choose speed
    # and format.
    tts_speed: float = Field(default=1.0, validation_alias="TTS_SPEED", ge=SPEED_MIN, le=SPEED_MAX)
    tts_noise_scale: float = Field(
        default=DEFAULT_NOISE_SCALE, validation_alias="TTS_NOISE_SCALE", ge=0, le=NOISE_MAX
    )
    tts_noise_scale_duration: float = Field(
        default=DEFAULT_NOISE_SCALE_DURATION, validation_alias="TTS_NOISE_SCALE_DURATION", ge=0, le=NOISE_MAX
    )
    # Long texts are spoken in pieces of at most this many characters; it shapes the audio, so it is part of
    # the voice stored with each task.
    tts_max_piece_chars: int = Field(
        default=DEFAULT_MAX_PIECE_CHARS,
        validation_alias="TTS_MAX_PIECE_CHARS",
        ge=MIN_PIECE_CHARS,
        le=MAX_PIECE_CHARS,
    )
    tts_format: AudioFormat = Field(default=AudioFormat.WAV, validation_alias="TTS_FORMAT")
    # Checked at submit: a callback_url the notifier would refuse is a 400 now, not undeliverable later.
    webhook_allow_loopback: bool = _allow_loopback()
    # Synchronous answers (OpenAI's /v1/audio/speech, Polly's SynthesizeSpeech) wait at most this long for the
    # task to end before a typed 503 the client retries onto the same task (dedupe). API Gateway REST cuts an
    # integration at 29 s and the API Lambda at 28 s: submit (<= 4 s) + wait (20 s) + read the audio and
    # base64 it (<= 2 s) = 26 s. tts_api.service.sync_deadline also caps it by the Lambda's remaining time.
    sync_wait_s: float = Field(default=SYNC_WAIT_S, validation_alias="SYNC_WAIT_S", ge=1, le=24)
    # A synchronous answer carries audio up to this size in its body; larger audio is a 303 to a presigned
    # URL. Lambda answers at most 6 MB, and base64 (binary through API Gateway) grows a body by 4/3.
    inline_audio_max_bytes: int = Field(
        default=INLINE_AUDIO_MAX_BYTES, validation_alias="INLINE_AUDIO_MAX_BYTES", ge=1, le=4_400_000
    )
    # OpenAI compatibility (tts_api.routes.openai_speech): `voice` aliases (`alloy=eng,nova=fin`, each target
    # a served language) and the `model` values accepted (a value starting with `gpt-4o-mini-tts-` is a dated
    # snapshot and accepted too). Neither changes what the language's model sounds like.
    tts_voice_aliases: VoiceAliases = Field(default=(), validation_alias="TTS_VOICE_ALIASES")
    openai_models: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_items_tuple)] = Field(
        default=OPENAI_DEFAULT_MODELS, validation_alias="OPENAI_MODELS"
    )
    # Amazon Polly compatibility (tts_api.routes.polly, rules in tts_common.polly): extra voice names
    # (`Suvi=fin,Joanna=eng`, each target served), SynthesizeSpeech's text limit (Polly's 3,000 characters),
    # and the KMS key the SigV4 secrets are sealed with (decrypt only; unset: any key the grant allows).
    tts_polly_voices: PollyVoices = Field(default=(), validation_alias="TTS_POLLY_VOICES")
    polly_sync_max_chars: int = Field(
        default=POLLY_SYNC_MAX_CHARS, validation_alias="POLLY_SYNC_MAX_CHARS", ge=1, le=100_000
    )
    credentials_kms_key_id: str | None = Field(
        default=None, validation_alias="CREDENTIALS_KMS_KEY_ID", min_length=1
    )
    # Where the Polly routes read SigV4 credentials (the key table); unset: TTS_KEY_TABLE. On AWS only this is
    # set, so the API never resolves API keys itself (the authorizer does) but can verify signatures.
    credentials_table_name: str | None = Field(
        default=None, validation_alias="TTS_CREDENTIALS_TABLE", min_length=1
    )

    @model_validator(mode="after")
    def _aliases_served(self) -> Self:
        unserved = [
            f"{alias}={code}" for alias, code in self.tts_voice_aliases if code not in self.tts_languages
        ]
        if unserved:
            served = ", ".join(self.tts_languages)
            raise ValueError(f"TTS_VOICE_ALIASES: {', '.join(unserved)} not in TTS_LANGUAGES ({served})")
        unserved = [f"{n}={code}" for n, code in self.tts_polly_voices if code not in self.tts_languages]
        if unserved:
            served = ", ".join(self.tts_languages)
            raise ValueError(f"TTS_POLLY_VOICES: {', '.join(unserved)} not in TTS_LANGUAGES ({served})")
        return self

    @property
    def voice_aliases(self) -> dict[str, str]:
        return dict(self.tts_voice_aliases)

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.cors_allow_origins.split(",") if o.strip()]

    # A typed 503 within 5 s when the backend hangs: 2 x (0.5 + 1.0) + 1 s backoff = 4 s for the one call that
    # fails (the first), leaving 1 s for the rest; DynamoDB, S3 and SQS answer in milliseconds.
    aws_connect_timeout_s: float = _connect_timeout(0.5)
    aws_read_timeout_s: float = _read_timeout(1.0)
    aws_max_attempts: int = _max_attempts(2)


class WorkerSettings(ServiceSettings):
    tts_device: Device = Field(default="auto", validation_alias="TTS_DEVICE")
    tts_dtype: Dtype = Field(default="auto", validation_alias="TTS_DTYPE")
    tts_num_threads: int | None = Field(default=None, validation_alias="TTS_NUM_THREADS", ge=1, le=256)
    # Where a CPU item's HiFi-GAN decoder runs: auto = ONNX Runtime on the CPU when installed, torch on CUDA.
    tts_decoder_runtime: DecoderRuntime = Field(default="auto", validation_alias="TTS_DECODER_RUNTIME")
    tts_cpu_graph: CpuGraph = Field(default="auto", validation_alias="TTS_CPU_GRAPH")
    tts_max_batch: int = Field(default=16, validation_alias="TTS_MAX_BATCH", ge=1, le=512)
    tts_max_wait_ms: int = Field(default=50, validation_alias="TTS_MAX_WAIT_MS", ge=0, le=20_000)
    # Must equal the jobs queue's redrive maxReceiveCount: the last attempt publishes `failed`.
    max_receive_count: int = Field(default=3, validation_alias="MAX_RECEIVE_COUNT", ge=1, le=1000)
    poll_wait_s: int = Field(default=20, validation_alias="POLL_WAIT_S", ge=0, le=20)
    visibility_timeout_s: int = Field(default=900, validation_alias="VISIBILITY_TIMEOUT_S", ge=1, le=43_200)
    # Where generated models (TTS_MODEL=tiny-random, mms-random) and decoder exports the model directory lacks
    # are written; ~/.cache/serverless-tts if unset.
    tts_cache_dir: Path | None = Field(default=None, validation_alias="TTS_CACHE_DIR")
    # The read timeout must outlast the SQS long poll (POLL_WAIT_S, at most 20 s): 3 x (2 + 25) + 3 s backoff
    # = 84 s at worst per call, well inside the jobs' visibility timeout (and a heartbeat's third of it).
    aws_connect_timeout_s: float = _connect_timeout(2.0)
    aws_read_timeout_s: float = _read_timeout(25.0)
    aws_max_attempts: int = _max_attempts(3)

    # -- Which models a worker serves, and where their weights come from (tts_worker.synthesizer.registry).
    # A job's model is loaded on its first use from, in order: the image (TTS_IMAGE_MODELS_DIR), the model
    # store (TTS_MODEL_STORE_BUCKET/TTS_MODEL_STORE_PREFIX, downloaded into TTS_CACHE_DIR), the hub (only
    # with TTS_ALLOW_HUB=true); found nowhere, the job fails as model_not_available.
    # Saved model directories baked into the image, one per model, named by model_dir_name(model_id) as
    # `python -m tts_worker.prefetch --languages ...` writes them (/opt/models in the image).
    tts_image_models_dir: Path | None = Field(default=None, validation_alias="TTS_IMAGE_MODELS_DIR")
    # The model store: the same saved directories under a prefix of an S3 bucket (unset: the audio bucket).
    tts_model_store_bucket: str | None = Field(default=None, validation_alias="TTS_MODEL_STORE_BUCKET")
    tts_model_store_prefix: str = Field(
        default=MODEL_STORE_PREFIX, validation_alias="TTS_MODEL_STORE_PREFIX", pattern=r"^([^/].*/)?$"
    )
    tts_allow_hub: bool = Field(default=False, validation_alias="TTS_ALLOW_HUB")
    # Models kept loaded at once, the least recently used evicted; unset: 3 on a CPU, 32 on CUDA (a model is
    # ~145 MB of float32 weights plus its activations; see tts_worker.runtime.default_max_resident_models).
    tts_max_resident_models: int | None = Field(
        default=None, validation_alias="TTS_MAX_RESIDENT_MODELS", ge=1, le=1024
    )
    # Comma-separated model ids loaded and warmed up at start (the image's languages); empty: none.
    tts_preload_models: str = Field(default="", validation_alias="TTS_PRELOAD_MODELS")

    # -- Fan-out (tts_worker.fanout): a text of at least TTS_FANOUT_MIN_CHARS characters is split (at piece
    # boundaries) into parts of about TTS_PART_CHARS, synthesized from the parts queue by any worker and
    # joined in S3. Off without PARTS_QUEUE_URL or with TTS_FANOUT=false. Defaults measured by make bench
    # (docs/BENCHMARKS.md, long texts): 8000 characters is ~6 min at 21.7 chars/s (1 vCPU; the longest part,
    # 10,000, about half of Lambda's 15 min) and ~17 MB of 16 kHz PCM (over S3's 5 MiB copy minimum); the
    # per-part overhead is ~0.2 s (under 0.2% of a part), a cold start 8.5 s (~2% at that rate).
    parts_queue_url: str | None = Field(default=None, validation_alias="PARTS_QUEUE_URL", min_length=1)
    tts_fanout: bool = Field(default=True, validation_alias="TTS_FANOUT")
    tts_part_chars: int = Field(
        default=DEFAULT_PART_CHARS, validation_alias="TTS_PART_CHARS", ge=MIN_PIECE_CHARS, le=100_000
    )
    tts_fanout_min_chars: int = Field(
        default=DEFAULT_FANOUT_MIN_CHARS, validation_alias="TTS_FANOUT_MIN_CHARS", ge=MIN_PIECE_CHARS
    )
    # While a part is in hand, an ECS/local worker looks at the jobs queue this often (between pieces) and
    # serves what it finds first, so a long text's parts never keep a short task waiting.
    tts_yield_every_s: float = Field(default=1.0, validation_alias="TTS_YIELD_EVERY_S", ge=0, le=600)

    @property
    def fanout_enabled(self) -> bool:
        return self.tts_fanout and self.parts_queue_url is not None

    @property
    def model_store_bucket(self) -> str:
        return self.tts_model_store_bucket or self.bucket_name

    @property
    def preload_models(self) -> list[str]:
        return [m.strip() for m in self.tts_preload_models.split(",") if m.strip()]


class TaskEventsSettings(ServiceSettings):
    # A task queued this long without the API's `queued` event is re-enqueued (the API died mid-submit).
    requeue_after_s: int = Field(default=120, validation_alias="REQUEUE_AFTER_S", ge=10)
    # A task processing (or completed) with no lifecycle message for this long is failed as `timed_out`
    # (a completed one with audio is finished as done instead). It must outlast every retry of a job
    # (visibility timeout x max receives: 6 x 900 s x 3 = 16200 s in the CDK app's defaults), hence 6 h.
    stale_after_s: int = Field(default=6 * 3600, validation_alias="STALE_AFTER_S", ge=60)
    # A queued task older than this lost its job: SQS dropped it (keep equal to the queue's retention).
    queued_stale_after_s: int = Field(
        default=JOBS_QUEUE_RETENTION_S, validation_alias="QUEUED_STALE_AFTER_S", ge=60
    )
    fanout_stale_after_s: int = Field(
        default=FANOUT_STALE_AFTER_S, validation_alias="FANOUT_STALE_AFTER_S", ge=60
    )
    # The most tasks one sweep acts on per rule; the next sweep goes on where this one stopped.
    sweep_limit: int = Field(default=500, validation_alias="SWEEP_LIMIT", ge=1, le=10_000)
    # A hung call fails inside the consumer Lambda's 30 s: 3 x (1 + 3) + 3 s backoff = 15 s at worst.
    aws_connect_timeout_s: float = _connect_timeout(1.0)
    aws_read_timeout_s: float = _read_timeout(3.0)
    aws_max_attempts: int = _max_attempts(3)


class NotifierSettings(ServiceSettings):
    """The webhook notifier (tts_notifier): reads tasks, signs download links, decrypts tenants' webhook
    secrets from the key table, and re-sends its own queue's messages with a delay to retry."""

    key_table_name: str = _key_table(required=True)
    notifications_queue_url: str = Field(validation_alias="NOTIFICATIONS_QUEUE_URL", min_length=1)
    presign_expiry_s: int = Field(default=3600, validation_alias="PRESIGN_EXPIRY_S", ge=60, le=604_800)
    webhook_allow_loopback: bool = _allow_loopback()
    # Retries stop this long after the first attempt and the callback is recorded undeliverable. Below the
    # notifications queue's retention (4 days), so a delayed retry is never dropped by SQS first.
    webhook_retry_window_s: int = Field(
        default=6 * 3600, validation_alias="WEBHOOK_RETRY_WINDOW_S", ge=5, le=JOBS_QUEUE_RETENTION_S - 3600
    )
    # Multiplies the backoff schedule (tts_common.webhooks.BACKOFF_S): below 1 for the local tests only.
    webhook_backoff_scale: float = Field(
        default=1.0, validation_alias="WEBHOOK_BACKOFF_SCALE", gt=0, le=1, allow_inf_nan=False
    )
    webhook_connect_timeout_s: float = Field(
        default=2.0, validation_alias="WEBHOOK_CONNECT_TIMEOUT_S", gt=0, le=10
    )
    webhook_read_timeout_s: float = Field(default=5.0, validation_alias="WEBHOOK_READ_TIMEOUT_S", gt=0, le=20)
    # One delivery's AWS calls fail fast: 3 x (1 + 3) + 3 s backoff = 15 s at worst.
    aws_connect_timeout_s: float = _connect_timeout(1.0)
    aws_read_timeout_s: float = _read_timeout(3.0)
    aws_max_attempts: int = _max_attempts(3)


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Build settings from the environment; turn a validation error into one naming each variable."""
    try:
        return cls()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if not err["loc"]:  # a check across fields: its message names the variables
                problems.append(str(err["msg"]).removeprefix("Value error, "))
                continue
            problems.append(f"{_env_name(cls, str(err['loc'][0]))}: {err['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from exc


def _env_name(cls: type[BaseSettings], field: str) -> str:
    info = cls.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field.upper()


@cache
def cached_settings(cls: type[S]) -> S:
    """One settings object per process and class (cold start), for entry points only."""
    return load_settings(cls)
