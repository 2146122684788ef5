"""ECS entry point: `python -m tts_worker.ecs_loop`, a long-poll loop over the jobs queue.

Deletes what succeeded or failed for good; leaves the rest to the visibility timeout and the DLQ redrive.
SIGTERM or SIGINT stops it after the batch in hand.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from tts_common.adapters.sqs import ReceivedMessage
from tts_common.exceptions import ConfigurationError, ModelLoadError
from tts_common.settings import WorkerSettings, load_settings

from tts_worker.core import WorkerCore
from tts_worker.failures import Disposition
from tts_worker.runtime import build_core, build_queue

logger = logging.getLogger(__name__)

_RECEIVE_ERROR_BACKOFF_S = 5.0


class JobSource(Protocol):
    """What the loop needs of the jobs queue (the SQS adapter's JobQueue fits)."""

    def receive(self, *, max_messages: int = 10, wait_s: int = 20) -> list[ReceivedMessage]: ...
    def delete_many(self, receipt_handles: list[str]) -> None: ...


@dataclass(slots=True)
class LoopStats:
    polls: int = 0
    received: int = 0
    deleted: int = 0
    left_for_retry: int = 0
    left_for_dlq: int = 0


def run_loop(
    *,
    core: WorkerCore,
    queue: JobSource,
    stop: threading.Event,
    wait_s: int = 20,
    max_messages: int = 10,
    max_polls: int | None = None,
    after_batch: Callable[[], None] | None = None,
) -> LoopStats:
    """Poll until `stop` is set (or `max_polls` polls are done); the batch in hand is always finished."""
    stats = LoopStats()
    while not stop.is_set() and (max_polls is None or stats.polls < max_polls):
        stats.polls += 1
        try:
            messages = queue.receive(max_messages=max_messages, wait_s=wait_s)
        except Exception:
            logger.exception("receive failed; backing off")
            stop.wait(_RECEIVE_ERROR_BACKOFF_S)
            continue
        if not messages:
            continue
        stats.received += len(messages)
        outcomes = core.process_batch(messages)
        settled = [m.receipt_handle for m, o in zip(messages, outcomes, strict=True) if o.settled]
        stats.left_for_retry += sum(o.disposition is Disposition.RETRY for o in outcomes)
        stats.left_for_dlq += sum(o.disposition is Disposition.DEAD_LETTER for o in outcomes)
        if settled:
            try:
                queue.delete_many(settled)
                stats.deleted += len(settled)
            except Exception:
                logger.exception("delete failed; the messages will be redelivered")
        if after_batch is not None:
            after_batch()
    return stats


def _install_signal_handlers(stop: threading.Event) -> None:
    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info(
            "stop requested; finishing the current batch", extra={"signal": signal.Signals(signum).name}
        )
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def main() -> int:
    service_logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "tts-worker"))
    copy_config_to_registered_loggers(source_logger=service_logger, include={"tts_worker", "tts_common"})
    metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ServerlessTTS"))
    stop = threading.Event()
    _install_signal_handlers(stop)
    try:
        settings = load_settings(WorkerSettings)
        started = time.perf_counter()
        core = build_core(settings, metrics=metrics)
    except (ConfigurationError, ModelLoadError) as exc:
        logger.error("worker cannot start: %s", exc.message)
        return 2
    logger.info(
        "worker started",
        extra={
            "tts_model": settings.tts_model,
            "device": core.synthesizer.device,
            "start_s": round(time.perf_counter() - started, 3),
            "queue": settings.jobs_queue_url,
        },
    )

    def flush_metrics() -> None:
        if metrics.metric_set:
            metrics.flush_metrics()

    stats = run_loop(
        core=core,
        queue=build_queue(settings),
        stop=stop,
        wait_s=settings.poll_wait_s,
        after_batch=flush_metrics,
    )
    logger.info(
        "worker stopped", extra={"polls": stats.polls, "received": stats.received, "deleted": stats.deleted}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
