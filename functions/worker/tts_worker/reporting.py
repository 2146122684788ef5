"""What the core reports: lifecycle events, metrics, and the outcome of each message (retry-or-fail)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tts_common.domain import TaskStatus
from tts_common.exceptions import MalformedJob, TTSError
from tts_common.messages import AudioInfo, ErrorInfo, LifecycleEvent, Progress
from tts_common.metrics import Metric
from tts_worker.failures import Disposition, decide, error_detail, error_info
from tts_worker.job_input import recover_task_id
from tts_worker.ports import EventPort, JobMessage, MetricsSink

logger = logging.getLogger("tts_worker.core")


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    message_id: str
    disposition: Disposition
    task_id: str | None = None
    error: ErrorInfo | None = None

    @property
    def settled(self) -> bool:
        """Delete the message from the queue (done, or failed for good)."""
        return self.disposition.settled


class Reporter:
    """Publishes a task's lifecycle and decides, by error type and receive count, what becomes of its message.
    Safe to call from several threads (the ports' clients are)."""

    def __init__(
        self,
        *,
        events: EventPort,
        metrics: MetricsSink | None,
        clock: Callable[[], datetime],
        max_receive_count: int,
    ) -> None:
        self._events = events
        self._metrics = metrics
        self._clock = clock
        self._max_receive_count = max_receive_count

    def malformed(self, message: JobMessage, exc: MalformedJob) -> MessageOutcome:
        task_id = recover_task_id(message.body)
        if task_id is None:
            # Nothing to report to: drop it (retrying cannot fix it), but leave a trace.
            logger.error(
                "malformed job without a task id; dropped",
                extra={
                    "message_id": message.message_id,
                    "reason": exc.message,
                    "body_head": message.body[:200],
                },
            )
            return MessageOutcome(
                message.message_id, Disposition.FAILED, None, error_info(exc, Disposition.FAILED, attempts=1)
            )
        return self.failed(message, task_id, exc)

    def failed(
        self, message: JobMessage, task_id: str, exc: Exception, *, context: str | None = None
    ) -> MessageOutcome:
        """`context` leads the error's message (a long text's part: `part 3 of 13`)."""
        attempts = message.receive_count
        disposition = decide(exc, receive_count=attempts, max_receive_count=self._max_receive_count)
        error = error_info(exc, disposition, attempts=attempts)
        if context:
            error = error.model_copy(update={"message": f"{context}: {error.message}"[:2000]})
        log_extra = {
            "task_id": task_id,
            "attempt": attempts,
            "error_code": error.code,
            "error_detail": error_detail(exc),
            "disposition": str(disposition),
        }
        # A traceback helps only for errors nobody raised on purpose.
        trace = None if isinstance(exc, TTSError) else exc
        if disposition is Disposition.RETRY:
            logger.warning("job failed; will be retried: %s", error.message, extra=log_extra, exc_info=trace)
            return MessageOutcome(message.message_id, disposition, task_id, error)
        logger.error("job failed for good: %s", error.message, extra=log_extra, exc_info=trace)
        try:
            self.publish(task_id, TaskStatus.FAILED, attempt=attempts, error=error)
        except Exception as publish_exc:
            again = decide(publish_exc, receive_count=attempts, max_receive_count=self._max_receive_count)
            logger.error(
                "could not publish failed event",
                extra={**log_extra, "disposition": str(again)},
                exc_info=publish_exc,
            )
            return MessageOutcome(message.message_id, again, task_id, error)
        self.metric(Metric.TASKS_FAILED, "Count", 1)
        return MessageOutcome(message.message_id, disposition, task_id, error)

    def publish_finished(
        self, task_id: str, audio: AudioInfo, *, attempt: int, progress: Progress | None
    ) -> None:
        # Both carry the audio, so either one alone finishes the record whatever order they arrive in.
        self.publish(task_id, TaskStatus.COMPLETED, attempt=attempt, progress=progress, audio=audio)
        self.publish(task_id, TaskStatus.DONE, attempt=attempt, progress=progress, audio=audio)

    def publish(
        self,
        task_id: str,
        status: TaskStatus,
        *,
        attempt: int,
        progress: Progress | None = None,
        audio: AudioInfo | None = None,
        error: ErrorInfo | None = None,
    ) -> None:
        self._events.publish(
            LifecycleEvent(
                task_id=task_id,
                status=status,
                at=self._clock(),
                attempt=max(attempt, 0),
                progress=progress,
                audio=audio,
                error=error,
            )
        )

    def metric(self, name: Metric, unit: str, value: float) -> None:
        if self._metrics is not None:
            self._metrics.add_metric(name=name, unit=unit, value=value)
