"""Lambda entry points: the events-queue consumer (partial batch failures), the scheduled sweeper and the
jobs DLQ consumer."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from tts_common.metrics import STATUS_DIMENSION, Metric
from tts_common.settings import TaskEventsSettings, cached_settings
from tts_common.storage.plans import PlanLedger
from tts_common.storage.repository import TaskRepository
from tts_common.wiring import job_queue_from, publisher_from, repository_from
from tts_task_events.dead_letters import fail_dead_lettered
from tts_task_events.logic import apply_message
from tts_task_events.sweeper import ledger_from, policy_from, sweep

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)
# One record per invocation is common on the DLQ: a failure must come back as batchItemFailures, not a raise.
dead_letter_processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@cache
def _repository() -> TaskRepository:
    return repository_from(cached_settings(TaskEventsSettings))


@cache
def _ledger() -> PlanLedger:
    return ledger_from(cached_settings(TaskEventsSettings))


def _record_handler(record: SQSRecord) -> None:
    applied = apply_message(body=record.body, repository=_repository())
    if applied.task is None:
        logger.warning("lifecycle message for an unknown task dropped", task_id=applied.event.task_id)
        return
    # One metric per transition, dimensioned by status, for the dashboard's tasks-per-status widget.
    with single_metric(name=Metric.TASK_TRANSITIONS, unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name=STATUS_DIMENSION, value=str(applied.event.status))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=_record_handler, processor=processor, context=context
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def sweep_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = cached_settings(TaskEventsSettings)
    report = sweep(
        repository=_repository(),
        queue=job_queue_from(settings),
        publisher=publisher_from(settings),
        now=datetime.now(UTC),
        policy=policy_from(settings),
        ledger=ledger_from(settings),
    )
    metrics.add_metric(name=Metric.TASKS_REQUEUED, unit=MetricUnit.Count, value=len(report.requeued))
    metrics.add_metric(name=Metric.TASKS_TIMED_OUT, unit=MetricUnit.Count, value=len(report.timed_out))
    metrics.add_metric(name=Metric.TASKS_FINISHED_BY_SWEEP, unit=MetricUnit.Count, value=len(report.finished))
    logger.info(
        "sweep finished", requeued=report.requeued, timed_out=report.timed_out, finished=report.finished
    )
    return {"requeued": report.requeued, "timed_out": report.timed_out, "finished": report.finished}


def _dead_letter_record(record: SQSRecord) -> None:
    settings = cached_settings(TaskEventsSettings)
    outcome = fail_dead_lettered(
        body=record.body,
        receive_count=int(record.attributes.approximate_receive_count),
        repository=_repository(),
        publisher=publisher_from(settings),
        clock=lambda: datetime.now(UTC),
        ledger=_ledger(),
    )
    if outcome.failed:
        metrics.add_metric(name=Metric.TASKS_DEAD_LETTERED, unit=MetricUnit.Count, value=1)
    if outcome.part:
        metrics.add_metric(name=Metric.PARTS_DEAD_LETTERED, unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def dead_letter_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """The jobs and parts DLQs' event source: each dead-lettered job fails its task at once (dead_lettered);
    a dead-lettered part also fails its parent's plan."""
    return process_partial_response(
        event=event, record_handler=_dead_letter_record, processor=dead_letter_processor, context=context
    )
