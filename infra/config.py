"""The deployment's settings: every CDK context key, its default, and the checks it must pass.

`app.py` reads context once and builds a `DeploymentConfig`; stacks and constructs take it as a parameter and
never read context or the environment themselves. A bad value fails synthesis, naming the key.

A key that reaches the functions as a setting takes its default and its bounds from that setting
(tts_common.settings), so the deployment and the code it runs cannot disagree on either.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_type_hints

from pydantic import TypeAdapter, ValidationError
from pydantic_settings import BaseSettings

from tts_common.languages import ServedLanguages
from tts_common.metrics import DEFAULT_NAMESPACE, DEFAULT_SERVICE_NAME
from tts_common.settings import (
    ApiSettings,
    Dtype,
    ServiceSettings,
    TaskEventsSettings,
    WorkerSettings,
    check_languages,
    parse_languages,
    parse_model_overrides,
)

WorkerMode = Literal["lambda", "ecs"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

# SQS's own bounds for a queue's visibility timeout (seconds).
SQS_MAX_VISIBILITY_S = 43_200
# A Lambda function runs at most 15 minutes.
LAMBDA_MAX_TIMEOUT_S = 900
# AWS's guidance for an SQS-triggered function: a visibility timeout of at least 6x the function's timeout.
VISIBILITY_PER_WORKER_TIMEOUT = 6

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,30}$")
_STAGE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
DEV_STAGE = "dev"

# Field metadata: the (settings class, field) a context key is handed to the functions as.
_SETTING = "setting"


def runtime_setting(settings: type[BaseSettings], name: str, *, default: Any = None) -> Any:
    """A context key the functions read as `settings.name`: its type and bounds are that field's (`validate`
    checks them, the default included), and so is its default unless the deployment deliberately differs."""
    value = settings.model_fields[name].default if default is None else default
    return dataclasses.field(default=value, metadata={_SETTING: (settings, name)})


def _setting_problem(settings: type[BaseSettings], name: str, value: Any) -> str | None:
    """Why the functions would refuse `value` for `settings.name` at start, or None."""
    info = settings.model_fields[name]
    try:
        TypeAdapter(info.rebuild_annotation()).validate_python(value, strict=True)
    except ValidationError as exc:
        env = info.validation_alias if isinstance(info.validation_alias, str) else name.upper()
        return f"{exc.errors()[0]['msg']} (the functions' {env})"
    return None


class ConfigError(ValueError):
    """A context value is missing its shape or its bounds; the message names the key."""


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    """One deployment of the service. Field names are the CDK context keys (`cdk deploy -c key=value`)."""

    # Identity
    project: str = "ServerlessTts"
    # A deployment name (stack names, API stage). Only the stage named `dev` lets its buckets be destroyed.
    stage: str = "prod"
    worker: WorkerMode = "lambda"
    # How the Lambda layer gets its pip dependencies: local pip, Docker, or not at all (template checks only).
    layer_bundling: Literal["local", "docker", "skip"] = "local"

    # Languages served (ISO 639 codes, the first the default) and their models: override, else template.
    languages: tuple[str, ...] = runtime_setting(ServiceSettings, "tts_languages")
    model_template: str = runtime_setting(ServiceSettings, "tts_model_template")
    # `language=model` items (`-c model_overrides=fin=/opt/model,eng=org/model`).
    model_overrides: tuple[str, ...] = runtime_setting(ServiceSettings, "tts_model_overrides")
    # Task records' TTL and the audio's expiry.
    retention_days: int = runtime_setting(ServiceSettings, "task_ttl_days")
    service_name: str = DEFAULT_SERVICE_NAME
    metrics_namespace: str = DEFAULT_NAMESPACE
    log_level: LogLevel = "INFO"
    log_retention_days: int = 30
    service_version: str = runtime_setting(ApiSettings, "service_version")

    # API
    api_memory_mb: int = 1024
    api_throttle_rate: float = 10.0
    api_throttle_burst: int = 20
    api_quota_per_day: int = 10_000
    cors_origins: tuple[str, ...] = ()
    max_text_chars: int = runtime_setting(ApiSettings, "max_text_chars")
    presign_expiry_s: int = runtime_setting(ApiSettings, "presign_expiry_s")

    # Jobs queue and worker (both modes)
    max_receive_count: int = runtime_setting(WorkerSettings, "max_receive_count")
    worker_timeout_s: int = 900
    # Deliberately above the worker's own defaults (16, 50 ms: a CPU and `make run`): on ECS a GPU runs one
    # padded forward pass over many jobs' pieces. On Lambda the event source's batch (worker_batch_size)
    # limits the jobs, so this only caps pieces per call.
    tts_max_batch: int = runtime_setting(WorkerSettings, "tts_max_batch", default=64)
    tts_max_wait_ms: int = runtime_setting(WorkerSettings, "tts_max_wait_ms", default=250)
    tts_dtype: Dtype = runtime_setting(WorkerSettings, "tts_dtype")  # noqa: RUF009 (returns a dataclasses.field)
    # Languages whose models are baked into the worker image (empty: every served language); the others come
    # from the model store (`make models LANGUAGES=...` fills it) on their first job.
    image_languages: tuple[str, ...] = ()
    model_store_prefix: str = runtime_setting(WorkerSettings, "tts_model_store_prefix")
    # Models a worker keeps loaded at once (unset: the worker's default per device, 3 on a CPU, 32 on CUDA).
    max_resident_models: int | None = runtime_setting(WorkerSettings, "tts_max_resident_models")

    # worker=lambda
    worker_memory_mb: int = 3008
    worker_reserved_concurrency: int | None = None
    worker_max_concurrency: int = 5
    worker_batch_size: int = 1
    worker_batch_window_s: int = 1
    # /tmp holds the models downloaded from the store, with their ONNX exports (~300 MB each).
    worker_ephemeral_storage_mb: int = 4096

    # worker=ecs
    ecs_instance_type: str = "g5.xlarge"
    ecs_max_tasks: int = 2
    ecs_backlog_per_task: int = 20
    ecs_task_memory_mib: int = 14_336
    ecs_root_volume_gib: int = 100

    # Task events consumer and sweeper
    requeue_after_s: int = runtime_setting(TaskEventsSettings, "requeue_after_s")
    stale_after_s: int = runtime_setting(TaskEventsSettings, "stale_after_s")

    # Monitoring
    alarm_email: str | None = None
    oldest_message_alarm_s: int = 900

    @property
    def jobs_visibility_timeout_s(self) -> int:
        return VISIBILITY_PER_WORKER_TIMEOUT * self.worker_timeout_s

    @property
    def served_languages(self) -> ServedLanguages:
        """The languages as the functions read them (canonical codes); valid once `validate` passed."""
        codes = parse_languages(self.languages)
        return ServedLanguages(
            codes=codes,
            default=codes[0],
            template=self.model_template,
            overrides=dict(parse_model_overrides(self.model_overrides)),
        )

    @property
    def image_model_ids(self) -> tuple[str, ...]:
        """The model ids baked into the worker image (Dockerfile.inference's TTS_MODELS)."""
        served = self.served_languages
        languages = parse_languages(self.image_languages) if self.image_languages else served.codes
        return tuple(served.model_id(code) for code in languages)

    @property
    def is_dev(self) -> bool:
        return self.stage == DEV_STAGE

    @classmethod
    def context_keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> DeploymentConfig:
        """Build from a context getter (`app.node.try_get_context`); absent keys keep their defaults.

        The CLI passes `-c key=value` as strings; cdk.json and tests may pass typed values. Both are accepted.
        """
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for name in cls.context_keys():
            raw = get(name)
            if raw is None:
                continue
            values[name] = _coerce(name, raw, hints[name])
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        problems: list[str] = []

        def check(ok: bool, key: str, message: str) -> None:
            if not ok:
                problems.append(f"{key}: {message}")

        check(bool(_NAME.match(self.project)), "project", "letters, digits and '-', starting with a letter")
        check(bool(_STAGE.match(self.stage)), "stage", "lower-case letters and digits, from a letter")
        for field in dataclasses.fields(self):
            if _SETTING in field.metadata:
                settings, name = field.metadata[_SETTING]
                problem = _setting_problem(settings, name, getattr(self, field.name))
                check(problem is None, field.name, str(problem))
        if not any(p.startswith(("languages:", "model_overrides:")) for p in problems):
            try:
                check_languages(
                    parse_languages(self.languages),
                    default=None,
                    overrides=parse_model_overrides(self.model_overrides),
                )
            except ValueError as exc:
                check(False, "model_overrides", str(exc))
        check(
            self.log_retention_days in _LOG_RETENTION_DAYS,
            "log_retention_days",
            f"one of CloudWatch's values {sorted(_LOG_RETENTION_DAYS)}",
        )
        check(128 <= self.api_memory_mb <= 10_240, "api_memory_mb", "between 128 and 10240")
        check(self.api_throttle_rate > 0, "api_throttle_rate", "must be positive")
        check(self.api_throttle_burst >= 1, "api_throttle_burst", "at least 1")
        check(self.api_quota_per_day >= 1, "api_quota_per_day", "at least 1")
        check(
            all(o == "*" or o.startswith(("https://", "http://")) for o in self.cors_origins),
            "cors_origins",
            "each origin is '*' or starts with https:// or http://",
        )
        check(
            1 <= self.worker_timeout_s <= LAMBDA_MAX_TIMEOUT_S,
            "worker_timeout_s",
            f"between 1 and {LAMBDA_MAX_TIMEOUT_S}",
        )
        check(
            self.jobs_visibility_timeout_s <= SQS_MAX_VISIBILITY_S,
            "worker_timeout_s",
            f"{VISIBILITY_PER_WORKER_TIMEOUT}x it must fit SQS's {SQS_MAX_VISIBILITY_S} s visibility limit",
        )
        check(128 <= self.worker_memory_mb <= 10_240, "worker_memory_mb", "between 128 and 10240")
        check(
            self.worker_reserved_concurrency is None or self.worker_reserved_concurrency >= 1,
            "worker_reserved_concurrency",
            "at least 1, or unset",
        )
        check(2 <= self.worker_max_concurrency <= 1000, "worker_max_concurrency", "between 2 and 1000")
        check(
            self.worker_reserved_concurrency is None
            or self.worker_max_concurrency <= self.worker_reserved_concurrency,
            "worker_max_concurrency",
            "at most worker_reserved_concurrency: throttled invocations count as receives and end in the DLQ",
        )
        check(1 <= self.worker_batch_size <= 10_000, "worker_batch_size", "between 1 and 10000")
        check(0 <= self.worker_batch_window_s <= 300, "worker_batch_window_s", "between 0 and 300")
        check(
            512 <= self.worker_ephemeral_storage_mb <= 10_240,
            "worker_ephemeral_storage_mb",
            "between 512 and 10240 (Lambda's /tmp limits)",
        )
        if self.image_languages and not any(
            p.startswith(("languages:", "model_overrides:")) for p in problems
        ):
            try:
                extra = set(parse_languages(self.image_languages)) - set(parse_languages(self.languages))
            except ValueError as exc:
                check(False, "image_languages", str(exc))
            else:
                check(not extra, "image_languages", f"not served (languages): {', '.join(sorted(extra))}")
        check(
            self.worker_batch_size <= 10 or self.worker_batch_window_s > 0,
            "worker_batch_window_s",
            "must be > 0 when worker_batch_size > 10 (an SQS event source rule)",
        )
        check(
            bool(re.match(r"^[a-z0-9]+\.[a-z0-9]+$", self.ecs_instance_type)),
            "ecs_instance_type",
            "an EC2 instance type such as g5.xlarge",
        )
        check(1 <= self.ecs_max_tasks <= 100, "ecs_max_tasks", "between 1 and 100")
        check(self.ecs_backlog_per_task >= 1, "ecs_backlog_per_task", "at least 1")
        check(self.ecs_task_memory_mib >= 512, "ecs_task_memory_mib", "at least 512")
        check(30 <= self.ecs_root_volume_gib <= 16_384, "ecs_root_volume_gib", "between 30 and 16384")
        check(
            self.stale_after_s > self.jobs_visibility_timeout_s * self.max_receive_count,
            "stale_after_s",
            "must exceed visibility timeout x max_receive_count, or a task still being retried is failed",
        )
        check(
            self.alarm_email is None or bool(_EMAIL.match(self.alarm_email)),
            "alarm_email",
            "an e-mail address",
        )
        check(self.oldest_message_alarm_s >= 60, "oldest_message_alarm_s", "at least 60")
        if problems:
            raise ConfigError("invalid CDK context: " + "; ".join(problems))


# Values CloudWatch Logs accepts for a log group's retention (infra.capabilities.service_function maps them).
_LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)


def _coerce(name: str, raw: Any, hint: Any) -> Any:
    """Turn a context value (often a CLI string) into the field's type, or fail naming the key."""
    args = get_args(hint)
    optional = type(None) in args
    inner = [a for a in args if a is not type(None)]
    base = inner[0] if optional and len(inner) == 1 else hint
    if optional and isinstance(raw, str) and raw.strip().lower() in {"", "none", "null"}:
        return None
    try:
        if base is bool:
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(raw)
            return lowered in {"true", "1", "yes"}
        if base is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(str(raw).strip()) if isinstance(raw, str) else int(raw)
        if base is float:
            return float(raw)
        if base is str:
            return str(raw).strip()
        if base == tuple[str, ...]:
            return _string_list(raw)
        if getattr(base, "__origin__", None) is Literal:
            allowed = get_args(base)
            value = str(raw).strip()
            if value not in allowed:
                raise ValueError(f"one of {', '.join(allowed)}")
            return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid CDK context: {name}: cannot use {raw!r} ({exc})") from exc
    raise ConfigError(f"invalid CDK context: {name}: unsupported type {hint}")  # pragma: no cover


def _string_list(raw: Any) -> tuple[str, ...]:
    """A list from cdk.json, a JSON list string, or a comma-separated string from the CLI."""
    if isinstance(raw, (list, tuple)):
        items = [str(x) for x in raw]
    else:
        text = str(raw).strip()
        items = [str(x) for x in json.loads(text)] if text.startswith("[") else text.split(",")
    return tuple(item.strip() for item in items if item.strip())
