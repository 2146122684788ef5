"""Lambda entry point: SQS batch in, partial batch failures out. Wiring only; the work is in the core."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from tts_common.exceptions import TransientJobError
from tts_common.settings import WorkerSettings, cached_settings
from tts_worker.core import WorkerCore
from tts_worker.ports import QueueMessage
from tts_worker.runtime import build_core

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ServerlessTTS"))
# With one record per invocation (the deployed batch size) an unsettled record is "the entire batch failed":
# Powertools would raise, turning every ordinary retry into a Lambda error (and the WorkerErrors alarm).
# The record goes back to the queue through batchItemFailures either way.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class JobNotSettled(TransientJobError):
    """Marks a record Lambda must not delete: it goes back to the queue (or on to the DLQ)."""


@lru_cache(maxsize=1)
def worker_core() -> WorkerCore:
    """The model loads once per execution environment, on the first invocation."""
    copy_config_to_registered_loggers(source_logger=logger, include={"tts_worker", "tts_common"})
    return build_core(cached_settings(WorkerSettings), metrics=metrics)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    records = [SQSRecord(raw) for raw in event["Records"]]
    outcomes = {
        outcome.message_id: outcome
        for outcome in worker_core().process_batch(
            [
                QueueMessage(
                    message_id=r.message_id,
                    body=r.body,
                    receive_count=int(r.attributes.approximate_receive_count),
                )
                for r in records
            ]
        )
    }

    def settle(record: SQSRecord) -> str:
        outcome = outcomes[record.message_id]
        if not outcome.settled:
            raise JobNotSettled(f"task {outcome.task_id}: {outcome.disposition}")
        return str(outcome.disposition)

    return process_partial_response(event=event, record_handler=settle, processor=processor, context=context)
