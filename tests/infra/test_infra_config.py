"""The deployment's context keys: defaults, CLI strings, and the checks that fail synthesis early."""

from __future__ import annotations

import pytest
from infra_helpers import REPO_ROOT

from infra.capabilities.ecs_worker import backlog_capacity_steps
from infra.config import ConfigError, DeploymentConfig
from infra.layer_bundling import layer_requirements, pip_install_args, with_tracer_extra
from tts_common.settings import ApiSettings, ServiceSettings, TaskEventsSettings, WorkerSettings

pytestmark = pytest.mark.infra


def config_from(values: dict[str, object]) -> DeploymentConfig:
    return DeploymentConfig.from_context(values.get)


def test_defaults_need_no_context() -> None:
    # Given no context at all / When the config is built / Then every default is usable
    config = config_from({})
    assert config.worker == "lambda"
    assert config.stage == "prod"
    assert config.ecs_instance_type == "g5.xlarge"
    assert config.jobs_visibility_timeout_s == 6 * config.worker_timeout_s


def test_cli_strings_are_coerced_to_their_types() -> None:
    # Given the strings `cdk deploy -c key=value` passes
    config = config_from(
        {
            "worker": "ecs",
            "worker_timeout_s": "120",
            "api_throttle_rate": "2.5",
            "worker_reserved_concurrency": "3",
            "worker_max_concurrency": "3",
            "cors_origins": "https://a.example.com, https://b.example.com",
            "alarm_email": "ops@example.com",
        }
    )
    # Then each lands typed
    assert config.worker == "ecs"
    assert config.worker_timeout_s == 120
    assert config.api_throttle_rate == 2.5
    assert config.worker_reserved_concurrency == 3
    assert config.cors_origins == ("https://a.example.com", "https://b.example.com")
    assert config.jobs_visibility_timeout_s == 720


def test_cdk_json_lists_are_accepted() -> None:
    assert config_from({"cors_origins": ["https://a.example.com"]}).cors_origins == ("https://a.example.com",)
    assert config_from({"cors_origins": '["*"]'}).cors_origins == ("*",)


@pytest.mark.parametrize(
    ("context", "named_key"),
    [
        ({"worker": "fargate"}, "worker"),
        ({"stage": "Stage 1"}, "stage"),
        ({"worker_timeout_s": "901"}, "worker_timeout_s"),
        ({"worker_timeout_s": "ten"}, "worker_timeout_s"),
        ({"max_receive_count": "0"}, "max_receive_count"),
        ({"log_retention_days": "10"}, "log_retention_days"),
        ({"alarm_email": "not-an-address"}, "alarm_email"),
        ({"cors_origins": "app.example.com"}, "cors_origins"),
        ({"ecs_instance_type": "G5 XL"}, "ecs_instance_type"),
        ({"worker_batch_size": "50", "worker_batch_window_s": "0"}, "worker_batch_window_s"),
        ({"worker_reserved_concurrency": "3", "worker_max_concurrency": "5"}, "worker_max_concurrency"),
    ],
)
def test_a_bad_value_fails_naming_its_key(context: dict[str, object], named_key: str) -> None:
    with pytest.raises(ConfigError, match=named_key):
        config_from(context)


def test_stale_tasks_are_not_failed_while_still_being_retried() -> None:
    # Given a worker timeout whose retries (6x visibility x 3 receives) outlast the stale limit
    with pytest.raises(ConfigError, match="stale_after_s"):
        config_from({"worker_timeout_s": "900", "stale_after_s": "3600"})


@pytest.mark.parametrize(
    ("key", "settings", "field"),
    [
        ("languages", ServiceSettings, "tts_languages"),
        ("model_template", ServiceSettings, "tts_model_template"),
        ("model_overrides", ServiceSettings, "tts_model_overrides"),
        ("retention_days", ServiceSettings, "task_ttl_days"),
        ("service_version", ApiSettings, "service_version"),
        ("max_text_chars", ApiSettings, "max_text_chars"),
        ("presign_expiry_s", ApiSettings, "presign_expiry_s"),
        ("max_receive_count", WorkerSettings, "max_receive_count"),
        ("tts_dtype", WorkerSettings, "tts_dtype"),
        ("requeue_after_s", TaskEventsSettings, "requeue_after_s"),
        ("stale_after_s", TaskEventsSettings, "stale_after_s"),
    ],
)
def test_keys_the_functions_read_default_to_the_functions_own_defaults(
    key: str, settings: type[ServiceSettings], field: str
) -> None:
    # Given no context / Then the deployment hands each function what it would assume anyway
    assert getattr(config_from({}), key) == settings.model_fields[field].default


def test_the_deployed_worker_batches_more_than_the_workers_own_default() -> None:
    # The one deliberate difference: the deployed worker is sized for a GPU, the setting's default for a CPU.
    config = config_from({})
    assert config.tts_max_batch > WorkerSettings.model_fields["tts_max_batch"].default
    assert config.tts_max_wait_ms > WorkerSettings.model_fields["tts_max_wait_ms"].default


@pytest.mark.parametrize(
    ("context", "named_key", "variable"),
    [
        ({"languages": "Finnish!"}, "languages", "TTS_LANGUAGES"),
        ({"languages": "fin,xx"}, "languages", "TTS_LANGUAGES"),
        ({"model_template": "facebook/mms-tts-fin"}, "model_template", "TTS_MODEL_TEMPLATE"),
        ({"model_overrides": "fin"}, "model_overrides", "TTS_MODEL_OVERRIDES"),
        ({"model_overrides": "eng=org/model"}, "model_overrides", "TTS_LANGUAGES"),
        ({"retention_days": "0"}, "retention_days", "TASK_TTL_DAYS"),
        ({"max_text_chars": "100001"}, "max_text_chars", "MAX_TEXT_CHARS"),
        ({"presign_expiry_s": "30"}, "presign_expiry_s", "PRESIGN_EXPIRY_S"),
        ({"tts_max_batch": "513"}, "tts_max_batch", "TTS_MAX_BATCH"),
        ({"requeue_after_s": "5"}, "requeue_after_s", "REQUEUE_AFTER_S"),
    ],
)
def test_a_value_the_functions_would_refuse_fails_synthesis(
    context: dict[str, object], named_key: str, variable: str
) -> None:
    # Given a value the function's own settings reject at start / Then synthesis fails first, naming both
    with pytest.raises(ConfigError, match=rf"{named_key}: .*{variable}"):
        config_from(context)


def test_every_context_key_is_documented() -> None:
    deploy_doc = (REPO_ROOT / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
    missing = [key for key in DeploymentConfig.context_keys() if f"`{key}`" not in deploy_doc]
    assert not missing, f"context keys missing from docs/DEPLOY.md: {missing}"


@pytest.mark.parametrize("max_tasks", [1, 2, 10, 11, 37, 100])
def test_backlog_steps_cover_zero_to_max_within_the_step_limit(max_tasks: int) -> None:
    steps = backlog_capacity_steps(max_tasks)
    assert steps[0] == 0
    assert steps[-1] == max_tasks
    assert steps == sorted(set(steps))
    # Two step policies (below and above the middle) of at most 20 adjustments each.
    assert len(steps) <= 40


def test_layer_requirements_come_from_pyproject() -> None:
    requirements = layer_requirements(REPO_ROOT / "pyproject.toml")
    names = " ".join(requirements)
    for needed in ("pydantic", "pydantic-settings", "pynamodb", "fastapi", "mangum", "boto3"):
        assert needed in names
    # Tracing is on for every function, so the X-Ray SDK must be in the layer.
    assert any(r.startswith("aws-lambda-powertools[tracer]") for r in requirements)
    assert not any(r.startswith(("uvicorn", "torch", "transformers")) for r in requirements)


def test_tracer_extra_is_added_once() -> None:
    assert with_tracer_extra("aws-lambda-powertools>=3.37,<4") == "aws-lambda-powertools[tracer]>=3.37,<4"
    assert with_tracer_extra("aws-lambda-powertools[tracer]>=3.37") == "aws-lambda-powertools[tracer]>=3.37"
    assert with_tracer_extra("pydantic>=2") == "pydantic>=2"


def test_layer_wheels_target_lambdas_platform() -> None:
    args = pip_install_args("/out", ("pydantic>=2",))
    assert args[args.index("--platform") + 1] == "manylinux2014_x86_64"
    assert args[args.index("--python-version") + 1] == "3.11"
    assert "--only-binary=:all:" in args
