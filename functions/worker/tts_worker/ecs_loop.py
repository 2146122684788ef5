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
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from tts_common.adapters.aws import client
from tts_common.adapters.sqs import JobQueue, ReceivedMessage
from tts_common.exceptions import ConfigurationError, ModelLoadError
from tts_common.settings import WorkerSettings, load_settings
from tts_common.wiring import job_queue_from
from tts_worker.core import WorkerCore
from tts_worker.failures import Disposition
from tts_worker.runtime import build_core

# Named, not __name__: run as `python -m tts_worker.ecs_loop` it would be `__main__`, which the entry point
# never configures, and its start and stop lines would be lost.
logger = logging.getLogger("tts_worker.ecs_loop")

_RECEIVE_ERROR_BACKOFF_S = 5.0
_SQS_MAX_MESSAGES = 10
_EMPTY_SHORT_POLL_PAUSE_S = 0.05


class JobSource(Protocol):
    """What the loop needs of the jobs queue (the SQS adapter's JobQueue fits)."""

    def receive(self, *, max_messages: int = 10, wait_s: int = 20) -> list[ReceivedMessage]: ...
    def delete_many(self, receipt_handles: list[str]) -> None: ...
    def change_visibility(self, receipt_handles: list[str], *, timeout_s: int) -> None: ...


class VisibilityHeartbeat:
    """While a batch is in work, every `interval_s` push its messages' visibility timeout `timeout_s` out
    again, so a long job (a 100,000-character text on a CPU) is not redelivered to another worker mid-way.
    A worker that dies stops beating, and the queue redelivers after at most `timeout_s`."""

    def __init__(
        self, queue: JobSource, receipt_handles: list[str], *, timeout_s: int, interval_s: float
    ) -> None:
        self._queue = queue
        self._handles = receipt_handles
        self._timeout_s = timeout_s
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="visibility-heartbeat", daemon=True)
        self.beats = 0

    def __enter__(self) -> VisibilityHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._queue.change_visibility(self._handles, timeout_s=self._timeout_s)
                self.beats += 1
            except Exception:
                logger.exception("could not extend the batch's visibility; it may be redelivered")


@dataclass(slots=True)
class LoopStats:
    polls: int = 0
    receives: int = 0
    received: int = 0
    deleted: int = 0
    left_for_retry: int = 0
    left_for_dlq: int = 0
    batch_sizes: list[int] = field(default_factory=list)


def gather_batch(
    queue: JobSource,
    *,
    wait_s: int,
    max_batch: int,
    max_wait_s: float,
    stats: LoopStats,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> list[ReceivedMessage]:
    """Long-poll for the first messages, then keep receiving (10 at most per call, as SQS allows) until
    `max_batch` messages are in hand or `max_wait_s` has passed since the first arrived."""
    stats.receives += 1
    batch = queue.receive(max_messages=min(_SQS_MAX_MESSAGES, max_batch), wait_s=wait_s)
    if not batch:
        return batch
    deadline = monotonic() + max_wait_s
    while len(batch) < max_batch:
        remaining = deadline - monotonic()
        if remaining <= 0:
            break
        stats.receives += 1
        try:
            more = queue.receive(
                max_messages=min(_SQS_MAX_MESSAGES, max_batch - len(batch)), wait_s=min(20, int(remaining))
            )
        except Exception:
            logger.exception("receive failed while gathering; going on with the batch in hand")
            break
        if more:
            batch.extend(more)
        elif remaining < 1:
            # A short poll found nothing: look again a little later, not in a tight loop.
            sleep(min(remaining, _EMPTY_SHORT_POLL_PAUSE_S))
    return batch


# With a parts queue, an idle worker long-polls the jobs queue at most this long before it looks at parts.
IDLE_JOBS_WAIT_S = 2


def run_loop(
    *,
    core: WorkerCore,
    queue: JobSource,
    stop: threading.Event,
    wait_s: int = 20,
    max_batch: int = 10,
    max_wait_s: float = 0.0,
    visibility_timeout_s: int | None = None,
    max_polls: int | None = None,
    after_batch: Callable[[], None] | None = None,
    parts: JobSource | None = None,
    yield_every_s: float = 1.0,
    monotonic: Callable[[], float] = time.monotonic,
) -> LoopStats:
    """Poll until `stop` is set (or `max_polls` polls are done); the batch in hand is always finished.

    Each poll gathers up to `max_batch` messages (TTS_MAX_BATCH), waiting at most `max_wait_s`
    (TTS_MAX_WAIT_MS) after the first for more, and hands them to the core as one batch. With
    `visibility_timeout_s` (the queue's), a heartbeat keeps the batch invisible until it is done.

    With `parts` (a long text's parts, fan-out) the jobs queue always goes first: a part is taken (one at a
    time) only when no job waits, and while a part is in hand the jobs queue is looked at between its
    pieces, at most every `yield_every_s`; what is found there is served at once. A short task submitted
    after a long one therefore waits about one piece, not for the long text.
    """
    stats = LoopStats()

    def handle(
        source: JobSource, messages: list[ReceivedMessage], between: Callable[[], None] | None
    ) -> None:
        stats.batch_sizes.append(len(messages))
        stats.received += len(messages)
        if visibility_timeout_s is None:
            outcomes = core.process_batch(messages, between_groups=between)
        else:
            with VisibilityHeartbeat(
                source,
                [m.receipt_handle for m in messages],
                timeout_s=visibility_timeout_s,
                interval_s=visibility_timeout_s / 3,
            ):
                outcomes = core.process_batch(messages, between_groups=between)
        settled = [m.receipt_handle for m, o in zip(messages, outcomes, strict=True) if o.settled]
        stats.left_for_retry += sum(o.disposition is Disposition.RETRY for o in outcomes)
        stats.left_for_dlq += sum(o.disposition is Disposition.DEAD_LETTER for o in outcomes)
        if settled:
            try:
                source.delete_many(settled)
                stats.deleted += len(settled)
            except Exception:
                logger.exception("delete failed; the messages will be redelivered")
        if after_batch is not None:
            after_batch()

    def probe_jobs() -> Callable[[], None]:
        last = monotonic()

        def probe() -> None:
            nonlocal last
            if monotonic() - last < yield_every_s:
                return
            try:
                stats.receives += 1
                found = queue.receive(max_messages=min(_SQS_MAX_MESSAGES, max_batch), wait_s=0)
            except Exception:
                logger.exception("receive failed while a part is in hand; going on with the part")
                found = []
            if found:
                logger.info("serving jobs between a part's pieces", extra={"jobs": len(found)})
                handle(queue, found, None)
            last = monotonic()

        return probe

    def receive() -> tuple[JobSource, list[ReceivedMessage]]:
        if parts is None:
            return queue, gather_batch(
                queue, wait_s=wait_s, max_batch=max_batch, max_wait_s=max_wait_s, stats=stats
            )
        for jobs_wait in (0, min(wait_s, IDLE_JOBS_WAIT_S)):
            found = gather_batch(
                queue, wait_s=jobs_wait, max_batch=max_batch, max_wait_s=max_wait_s, stats=stats
            )
            if found:
                return queue, found
            stats.receives += 1
            part = parts.receive(max_messages=1, wait_s=0)
            if part:
                return parts, part
        return queue, []

    while not stop.is_set() and (max_polls is None or stats.polls < max_polls):
        stats.polls += 1
        try:
            source, messages = receive()
        except Exception:
            logger.exception("receive failed; backing off")
            stop.wait(_RECEIVE_ERROR_BACKOFF_S)
            continue
        if not messages:
            continue
        handle(source, messages, probe_jobs() if source is parts and parts is not None else None)
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
    synthesizer = core.synthesizer
    logger.info(
        "worker started",
        extra={
            # Models load on their first job; these were preloaded (TTS_PRELOAD_MODELS) and are resident.
            "models_resident": getattr(synthesizer, "resident", [synthesizer.model_id]),
            "max_resident_models": getattr(synthesizer, "max_resident", 1),
            "default_model": synthesizer.model_id,
            "image_models_dir": str(settings.tts_image_models_dir or ""),
            "model_store": f"s3://{settings.model_store_bucket}/{settings.tts_model_store_prefix}",
            "allow_hub": settings.tts_allow_hub,
            "device": synthesizer.device,
            "start_s": round(time.perf_counter() - started, 3),
            "queue": settings.jobs_queue_url,
            "parts_queue": settings.parts_queue_url if settings.fanout_enabled else None,
            "worker_id": os.environ.get("WORKER_ID", ""),
        },
    )

    def flush_metrics() -> None:
        if metrics.metric_set:
            metrics.flush_metrics()

    parts = (
        JobQueue(sqs_client=client("sqs", settings), queue_url=settings.parts_queue_url)
        if settings.fanout_enabled and settings.parts_queue_url
        else None
    )
    stats = run_loop(
        core=core,
        queue=job_queue_from(settings),
        parts=parts,
        yield_every_s=settings.tts_yield_every_s,
        stop=stop,
        wait_s=settings.poll_wait_s,
        max_batch=settings.tts_max_batch,
        max_wait_s=settings.tts_max_wait_ms / 1000,
        visibility_timeout_s=settings.visibility_timeout_s,
        after_batch=flush_metrics,
    )
    logger.info(
        "worker stopped", extra={"polls": stats.polls, "received": stats.received, "deleted": stats.deleted}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
