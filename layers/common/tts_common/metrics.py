"""Custom metrics the functions emit (Powertools), declared once for the emitters and the dashboard."""

from __future__ import annotations

from enum import StrEnum

# Defaults for POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_SERVICE_NAME (the `service` dimension of every
# metric): the CDK app sets them, and the dashboard reads the metrics under them.
DEFAULT_NAMESPACE = "ServerlessTTS"
DEFAULT_SERVICE_NAME = "serverless-tts"

# The dimension TaskTransitions carries: the lifecycle status a task moved to (a TaskStatus value).
STATUS_DIMENSION = "status"


class Metric(StrEnum):
    # API: tasks created, and submissions answered by an existing task (same dedupe key).
    TASKS_SUBMITTED = "TasksSubmitted"
    DEDUPE_HITS = "DedupeHits"
    # Worker: outcomes, and seconds spent synthesizing vs seconds of audio produced.
    TASKS_COMPLETED = "TasksCompleted"
    TASKS_FAILED = "TasksFailed"
    SYNTHESIS_SECONDS = "SynthesisSeconds"
    AUDIO_SECONDS = "AudioSeconds"
    # Task events: one per lifecycle message applied, dimensioned by STATUS_DIMENSION.
    TASK_TRANSITIONS = "TaskTransitions"
    # Sweeper: what one sweep did.
    TASKS_REQUEUED = "TasksRequeued"
    TASKS_TIMED_OUT = "TasksTimedOut"
    TASKS_FINISHED_BY_SWEEP = "TasksFinishedBySweep"
    # Jobs DLQ consumer: tasks failed because their job used up its deliveries.
    TASKS_DEAD_LETTERED = "TasksDeadLettered"
    # ... of which fan-out parts (the parts DLQ): each also failed its parent's plan.
    PARTS_DEAD_LETTERED = "PartsDeadLettered"
    # Notifier: webhooks delivered, attempts that failed and were scheduled again, and those given up.
    WEBHOOKS_DELIVERED = "WebhooksDelivered"
    WEBHOOKS_RETRIED = "WebhooksRetried"
    WEBHOOKS_UNDELIVERABLE = "WebhooksUndeliverable"
    # Worker model registry: models loaded (image, store or hub), lookups served by a resident model, and
    # the seconds each load took (fetch, from_pretrained, decoder export check).
    MODEL_LOADS = "ModelLoads"
    MODEL_HITS = "ModelHits"
    MODEL_LOAD_SECONDS = "ModelLoadSeconds"
