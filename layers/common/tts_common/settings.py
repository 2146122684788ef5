"""Typed settings, read from the environment once at start. A bad value fails loudly, naming the variable."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tts_common.domain import DEFAULT_MAX_PIECE_CHARS, SynthesisParams
from tts_common.exceptions import ConfigurationError

DEFAULT_MODEL = "facebook/mms-tts-fin"
# A language tag as TTS_LANGUAGE takes it (ISO 639 code, optional subtags); the CDK app checks by it too.
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]+)*$"
# How long the jobs queue keeps a message: SQS's default, which the CDK app's queues keep too.
JOBS_QUEUE_RETENTION_S = 4 * 24 * 3600

# What TTS_DEVICE, TTS_DTYPE and TTS_DECODER_RUNTIME may be; the worker's synthesizer takes the same types.
Device = Literal["auto", "cpu", "cuda"]
Dtype = Literal["auto", "float32", "float16", "bfloat16"]
DecoderRuntime = Literal["auto", "torch", "onnxruntime"]


# The bounds of every AWS call, declared once; each settings class below picks defaults that fit its deadline.
def _connect_timeout(default: float) -> Any:
    return Field(default=default, validation_alias="AWS_CONNECT_TIMEOUT_S", gt=0, le=60)


def _read_timeout(default: float) -> Any:
    return Field(default=default, validation_alias="AWS_READ_TIMEOUT_S", gt=0, le=900)


def _max_attempts(default: int) -> Any:
    return Field(default=default, validation_alias="AWS_MAX_ATTEMPTS", ge=1, le=10)


class ServiceSettings(BaseSettings):
    """What every function needs: where the shared resources are and what the deployment synthesizes."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", frozen=True)

    aws_region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    # Set for the local stack (moto server); unset on AWS.
    aws_endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")

    table_name: str = Field(validation_alias="TASKS_TABLE_NAME", min_length=1)
    bucket_name: str = Field(validation_alias="AUDIO_BUCKET_NAME", min_length=1)
    jobs_queue_url: str = Field(validation_alias="JOBS_QUEUE_URL", min_length=1)
    events_topic_arn: str = Field(validation_alias="EVENTS_TOPIC_ARN", min_length=1)

    tts_model: str = Field(default=DEFAULT_MODEL, validation_alias="TTS_MODEL", min_length=1)
    tts_language: str = Field(default="fi", validation_alias="TTS_LANGUAGE", pattern=LANGUAGE_PATTERN)
    tts_speaking_rate: float = Field(default=1.0, validation_alias="TTS_SPEAKING_RATE", gt=0, le=4)
    tts_noise_scale: float = Field(default=0.667, validation_alias="TTS_NOISE_SCALE", ge=0, le=2)
    tts_noise_scale_duration: float = Field(
        default=0.8, validation_alias="TTS_NOISE_SCALE_DURATION", ge=0, le=2
    )
    # Long texts are spoken in pieces of at most this many characters. It changes the audio, so it is part of
    # the dedupe key, and the API puts it in every job: the worker speaks a job as it was keyed.
    tts_max_piece_chars: int = Field(
        default=DEFAULT_MAX_PIECE_CHARS, validation_alias="TTS_MAX_PIECE_CHARS", ge=20, le=5000
    )
    # How long task records (and, in the CDK app, audio objects) are kept.
    task_ttl_days: int = Field(default=30, validation_alias="TASK_TTL_DAYS", ge=1, le=3650)

    @property
    def synthesis_params(self) -> SynthesisParams:
        return SynthesisParams(
            model_id=self.tts_model,
            language=self.tts_language,
            speaking_rate=self.tts_speaking_rate,
            noise_scale=self.tts_noise_scale,
            noise_scale_duration=self.tts_noise_scale_duration,
            max_piece_chars=self.tts_max_piece_chars,
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
    # The most tasks one sweep acts on per rule; the next sweep goes on where this one stopped.
    sweep_limit: int = Field(default=500, validation_alias="SWEEP_LIMIT", ge=1, le=10_000)
    # A hung call fails inside the consumer Lambda's 30 s: 3 x (1 + 3) + 3 s backoff = 15 s at worst.
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
            field = str(err["loc"][0]) if err["loc"] else "?"
            problems.append(f"{_env_name(cls, field)}: {err['msg']}")
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
