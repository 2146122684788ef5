"""Names other code and the tests rely on: stack ids, output keys, container targets, code locations."""

from __future__ import annotations

from tts_common import tenancy, webhook_secrets

# Stack ids are `<project>-<stage>-<suffix>`.
STATEFUL_STACK_SUFFIX = "Stateful"
SERVICE_STACK_SUFFIX = "Service"

# CloudFormation output keys (logical ids of the CfnOutputs). `tts-admin --stack` reads the tenancy ones from
# the service stack: where keys are stored, the usage plan they join, and the API.
OUTPUT_API_URL = tenancy.OUTPUT_API_URL
OUTPUT_USAGE_PLAN_ID = tenancy.OUTPUT_USAGE_PLAN
OUTPUT_KEY_TABLE_NAME = tenancy.OUTPUT_KEY_TABLE
OUTPUT_KEY_TABLE_ARN = "ApiKeyTableArn"
# The credentials KMS key (stateful stack): tts-admin encrypts tenants' webhook secrets with it.
OUTPUT_CREDENTIALS_KEY_ARN = webhook_secrets.OUTPUT_CREDENTIALS_KEY
OUTPUT_BUCKET_NAME = "AudioBucketName"
OUTPUT_TABLE_NAME = "TasksTableName"
OUTPUT_TABLE_ARN = "TasksTableArn"
OUTPUT_BUCKET_ARN = "AudioBucketArn"
OUTPUT_JOBS_QUEUE_URL = "JobsQueueUrl"
OUTPUT_JOBS_DLQ_URL = "JobsDeadLetterQueueUrl"
OUTPUT_EVENTS_QUEUE_URL = "EventsQueueUrl"
OUTPUT_EVENTS_DLQ_URL = "EventsDeadLetterQueueUrl"
OUTPUT_EVENTS_TOPIC_ARN = "EventsTopicArn"
OUTPUT_NOTIFICATIONS_QUEUE_URL = "NotificationsQueueUrl"
OUTPUT_NOTIFICATIONS_DLQ_URL = "NotificationsDeadLetterQueueUrl"
OUTPUT_DASHBOARD_NAME = "DashboardName"
OUTPUT_ALARM_TOPIC_ARN = "AlarmTopicArn"
OUTPUT_ECS_CLUSTER_NAME = "WorkerClusterName"
OUTPUT_WORKER_FUNCTION_NAME = "WorkerFunctionName"

# The service stack reads these by name (Fn::GetStackOutput): the stateful stack never waits on its consumers.
STATEFUL_OUTPUTS = (
    OUTPUT_BUCKET_NAME,
    OUTPUT_BUCKET_ARN,
    OUTPUT_TABLE_NAME,
    OUTPUT_TABLE_ARN,
    OUTPUT_KEY_TABLE_NAME,
    OUTPUT_KEY_TABLE_ARN,
    OUTPUT_CREDENTIALS_KEY_ARN,
)
SERVICE_OUTPUTS = (
    OUTPUT_API_URL,
    OUTPUT_USAGE_PLAN_ID,
    OUTPUT_KEY_TABLE_NAME,
    OUTPUT_JOBS_QUEUE_URL,
    OUTPUT_JOBS_DLQ_URL,
    OUTPUT_EVENTS_QUEUE_URL,
    OUTPUT_EVENTS_DLQ_URL,
    OUTPUT_EVENTS_TOPIC_ARN,
    OUTPUT_DASHBOARD_NAME,
)

# Dockerfile.inference and its build targets.
INFERENCE_DOCKERFILE = "Dockerfile.inference"
LAMBDA_IMAGE_TARGET = "lambda-cpu"
ECS_IMAGE_TARGET = "ecs-gpu"
# Where the image keeps the models it saved at build time, one directory per model
# (Dockerfile.inference's MODELS_DIR; the worker's TTS_IMAGE_MODELS_DIR).
IMAGE_MODELS_DIR = "/opt/models"
# Writable in both modes (Lambda: only /tmp): decoder exports the image lacks are written here at start-up.
WORKER_CACHE_DIR = "/tmp/serverless-tts"

# Code locations (relative to the repository root) and entry points.
API_CODE_DIR = "functions/api"
TASK_EVENTS_CODE_DIR = "functions/task_events"
NOTIFIER_CODE_DIR = "functions/notifier"
AUTHORIZER_CODE_DIR = "functions/authorizer"
COMMON_LAYER_DIR = "layers/common"
API_HANDLER = "tts_api.handler.handler"
AUTHORIZER_HANDLER = "tts_authorizer.handler.handler"
TASK_EVENTS_HANDLER = "tts_task_events.handler.handler"
SWEEP_HANDLER = "tts_task_events.handler.sweep_handler"
DEAD_LETTER_HANDLER = "tts_task_events.handler.dead_letter_handler"
NOTIFIER_HANDLER = "tts_notifier.handler.handler"
WORKER_LAMBDA_HANDLER = "tts_worker.lambda_handler.handler"
WORKER_ECS_MODULE = "tts_worker.ecs_loop"

# Declared in tts_common, where the functions use them: S3 key prefixes (tts_common.domain.AUDIO_PREFIX,
# INPUTS_PREFIX), lifecycle statuses (tts_common.domain.TaskStatus), metric names (tts_common.metrics.Metric).

# How often the sweeper runs.
SWEEP_EVERY_MINUTES = 5
