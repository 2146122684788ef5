"""The environment variables every function reads (tts_common.settings), built in one place."""

from __future__ import annotations

from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs

from infra import constants
from infra.config import DeploymentConfig
from tts_common.settings import KeyStoreSettings

# The key table's variable, as the authorizer's settings read it.
KEY_TABLE_ENV = str(KeyStoreSettings.model_fields["key_table_name"].validation_alias)


def service_environment(
    config: DeploymentConfig,
    *,
    table_name: str,
    bucket_name: str,
    jobs_queue: sqs.IQueue,
    topic: sns.ITopic,
) -> dict[str, str]:
    return {
        "TASKS_TABLE_NAME": table_name,
        "AUDIO_BUCKET_NAME": bucket_name,
        "JOBS_QUEUE_URL": jobs_queue.queue_url,
        "EVENTS_TOPIC_ARN": topic.topic_arn,
        "TTS_LANGUAGES": ",".join(config.served_languages.codes),
        "TTS_MODEL_TEMPLATE": config.model_template,
        "TTS_MODEL_OVERRIDES": ",".join(config.model_overrides),
        "TASK_TTL_DAYS": str(config.retention_days),
        "POWERTOOLS_SERVICE_NAME": config.service_name,
        "POWERTOOLS_METRICS_NAMESPACE": config.metrics_namespace,
        "POWERTOOLS_LOG_LEVEL": config.log_level,
    }


def authorizer_environment(config: DeploymentConfig, *, key_table_name: str) -> dict[str, str]:
    """The authorizer reads the key table only: none of the service's queues, buckets or task table."""
    return {
        KEY_TABLE_ENV: key_table_name,
        "POWERTOOLS_SERVICE_NAME": config.service_name,
        "POWERTOOLS_LOG_LEVEL": config.log_level,
    }


def worker_environment(config: DeploymentConfig, *, device: str) -> dict[str, str]:
    """What the worker adds, in both modes. MAX_RECEIVE_COUNT is the jobs queue's redrive count, by
    construction.

    Which model a job is spoken with is the job's own (its voice's model_id, fixed by the API at submit).
    """
    return {
        "TTS_DEVICE": device,
        "TTS_DTYPE": config.tts_dtype,
        "TTS_MAX_BATCH": str(config.tts_max_batch),
        "TTS_MAX_WAIT_MS": str(config.tts_max_wait_ms),
        "MAX_RECEIVE_COUNT": str(config.max_receive_count),
        "VISIBILITY_TIMEOUT_S": str(config.jobs_visibility_timeout_s),
        "HF_HUB_OFFLINE": "1",
        "TTS_CACHE_DIR": constants.WORKER_CACHE_DIR,
        "TTS_IMAGE_MODELS_DIR": constants.IMAGE_MODELS_DIR,
        "TTS_MODEL_STORE_PREFIX": config.model_store_prefix,
        # The default language's model is loaded and warmed at start; the others on their first job.
        "TTS_PRELOAD_MODELS": config.served_languages.model_id(config.served_languages.default),
        **(
            {"TTS_MAX_RESIDENT_MODELS": str(config.max_resident_models)}
            if config.max_resident_models is not None
            else {}
        ),
    }
