"""Powertools logger, tracer and metrics: one of each per process, shared by the handler and the routes."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from tts_common.metrics import Metric

# Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE.
logger = Logger()
tracer = Tracer()
metrics = Metrics()


def record_submissions(*, sink: Metrics, created: int, deduplicated: int) -> None:
    """Count new tasks and dedupe hits; the Lambda handler flushes them once per invocation."""
    if created:
        sink.add_metric(name=Metric.TASKS_SUBMITTED, unit=MetricUnit.Count, value=created)
    if deduplicated:
        sink.add_metric(name=Metric.DEDUPE_HITS, unit=MetricUnit.Count, value=deduplicated)
