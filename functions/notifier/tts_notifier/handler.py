"""Lambda entry point: the notifications queue's event source (partial batch failures).

A message whose handling raised (a dependency down, the re-send refused) comes back after the visibility
timeout, and after the queue's maxReceiveCount it moves to the DLQ; a handled one is deleted.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from tts_common.metrics import Metric
from tts_common.settings import NotifierSettings, cached_settings
from tts_notifier.logic import Notifier, Outcome
from tts_notifier.wiring import notifier_from

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

OUTCOME_METRICS = {
    Outcome.DELIVERED: Metric.WEBHOOKS_DELIVERED,
    Outcome.RETRYING: Metric.WEBHOOKS_RETRIED,
    Outcome.UNDELIVERABLE: Metric.WEBHOOKS_UNDELIVERABLE,
}


@cache
def _notifier() -> Notifier:
    return notifier_from(cached_settings(NotifierSettings))


def _record_handler(record: SQSRecord) -> None:
    outcome = _notifier().handle(record.body)
    logger.info("notification handled", outcome=str(outcome), message_id=record.message_id)
    if outcome in OUTCOME_METRICS:
        metrics.add_metric(name=OUTCOME_METRICS[outcome], unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=_record_handler, processor=processor, context=context
    )
