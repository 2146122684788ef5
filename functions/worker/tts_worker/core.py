"""The transport-agnostic worker core: job messages in, audio and lifecycle events out.

The Lambda handler and the ECS loop both hand it a batch of messages and act on the outcomes it returns
(delete, leave for redelivery, leave for the DLQ). It never touches a queue itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from tts_common.domain import TaskStatus, normalize_text, seed_for
from tts_common.exceptions import EmptyTokenization, MalformedJob, TTSError
from tts_common.messages import AudioInfo, ErrorInfo, LifecycleEvent, Progress, SynthesisJob
from tts_common.settings import WorkerSettings

from tts_worker.audio import PIECE_PAUSE_S, encode_wav, join_pieces
from tts_worker.failures import Disposition, decide, error_info
from tts_worker.job_input import parse_job, recover_task_id
from tts_worker.ports import AudioStorePort, EventPort, JobMessage, MetricsSink
from tts_worker.synthesizer.base import SynthesisItem, Synthesizer
from tts_worker.text_split import split_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CoreConfig:
    max_piece_chars: int = 400
    # Must equal the jobs queue's redrive maxReceiveCount: the last attempt publishes `failed`.
    max_receive_count: int = 3
    pause_s: float = PIECE_PAUSE_S
    # Progress events: after every piece for short jobs, otherwise at most one per interval.
    progress_interval_s: float = 2.0
    progress_every_piece_up_to: int = 5

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> CoreConfig:
        return cls(max_piece_chars=settings.tts_max_piece_chars, max_receive_count=settings.max_receive_count)


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


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WorkerCore:
    def __init__(
        self,
        *,
        synthesizer: Synthesizer,
        store: AudioStorePort,
        events: EventPort,
        config: CoreConfig | None = None,
        metrics: MetricsSink | None = None,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._synthesizer = synthesizer
        self._store = store
        self._events = events
        self._config = config or CoreConfig()
        self._metrics = metrics
        self._clock = clock
        self._monotonic = monotonic

    @property
    def synthesizer(self) -> Synthesizer:
        return self._synthesizer

    def process_batch(self, messages: Sequence[JobMessage]) -> list[MessageOutcome]:
        """One outcome per message, in order; one bad job never fails its neighbours.

        Jobs run one after another today; batching several into one forward pass (TTS_MAX_BATCH) belongs here,
        behind the same signature, so the transports do not change.
        """
        return [self.process_message(message) for message in messages]

    def process_message(self, message: JobMessage) -> MessageOutcome:
        try:
            job = parse_job(message.body)
        except MalformedJob as exc:
            return self._malformed(message, exc)
        try:
            self._run(job, attempt=message.receive_count)
        except Exception as exc:
            return self._failed(message, job.task_id, exc)
        return MessageOutcome(message.message_id, Disposition.SUCCEEDED, job.task_id)

    # -- one job -------------------------------------------------------------------------------------------

    def _run(self, job: SynthesisJob, *, attempt: int) -> None:
        existing = self._store.find_audio(job.audio_key)
        if existing is not None:
            # A redelivery of a finished job: report the audio again, do no work.
            logger.info("audio already exists; republishing", extra={"task_id": job.task_id})
            self._publish_finished(job.task_id, existing, attempt=attempt, progress=None)
            return

        text = job.text if job.text is not None else self._store.get_text(job.text_key or "")
        pieces = split_text(normalize_text(text), self._config.max_piece_chars)
        # Seeds follow the piece's place in the text, so skipping an unspeakable piece moves no other seed.
        speakable = [
            (index, piece) for index, piece in enumerate(pieces) if self._synthesizer.is_speakable(piece)
        ]
        if not speakable:
            raise EmptyTokenization("the text has no characters this model can speak")
        total = len(speakable)
        self._publish(
            job.task_id,
            TaskStatus.PROCESSING,
            attempt=attempt,
            progress=Progress(pieces_done=0, pieces_total=total),
        )

        waveforms: list[npt.NDArray[np.float32]] = []
        synthesis_s = 0.0
        last_progress = self._monotonic()
        for done, (index, piece) in enumerate(speakable, start=1):
            started = self._monotonic()
            result = self._synthesizer.synthesize([self._item(job, piece, index)])[0]
            finished = self._monotonic()
            synthesis_s += finished - started
            waveforms.append(result.waveform)
            if done < total and self._progress_due(total, since=finished - last_progress):
                self._publish(
                    job.task_id,
                    TaskStatus.PROCESSING,
                    attempt=attempt,
                    progress=Progress(pieces_done=done, pieces_total=total),
                )
                last_progress = finished

        sampling_rate = self._synthesizer.sampling_rate
        waveform = join_pieces(waveforms, sampling_rate=sampling_rate, pause_s=self._config.pause_s)
        body = encode_wav(waveform, sampling_rate=sampling_rate)
        info = AudioInfo(
            audio_key=job.audio_key,
            file_size=len(body),
            sampling_rate=sampling_rate,
            duration_s=len(waveform) / sampling_rate,
            device=self._synthesizer.device,
        )
        self._store.put_audio(info, body, task_id=job.task_id)
        self._publish_finished(
            job.task_id, info, attempt=attempt, progress=Progress(pieces_done=total, pieces_total=total)
        )
        self._metric("TasksCompleted", "Count", 1)
        self._metric("SynthesisSeconds", "Seconds", synthesis_s)
        self._metric("AudioSeconds", "Seconds", info.duration_s)
        logger.info(
            "task done",
            extra={
                "task_id": job.task_id,
                "pieces": total,
                "audio_s": round(info.duration_s, 3),
                "synthesis_s": round(synthesis_s, 3),
                "device": info.device,
            },
        )

    @staticmethod
    def _item(job: SynthesisJob, piece: str, index: int) -> SynthesisItem:
        return SynthesisItem(
            text=piece,
            seed=seed_for(job.dedupe_key, index),
            speaking_rate=job.speaking_rate,
            noise_scale=job.noise_scale,
            noise_scale_duration=job.noise_scale_duration,
        )

    def _progress_due(self, total: int, *, since: float) -> bool:
        return total <= self._config.progress_every_piece_up_to or since >= self._config.progress_interval_s

    # -- failures ------------------------------------------------------------------------------------------

    def _malformed(self, message: JobMessage, exc: MalformedJob) -> MessageOutcome:
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
        return self._failed(message, task_id, exc)

    def _failed(self, message: JobMessage, task_id: str, exc: Exception) -> MessageOutcome:
        attempts = message.receive_count
        disposition = decide(exc, receive_count=attempts, max_receive_count=self._config.max_receive_count)
        error = error_info(exc, disposition, attempts=attempts)
        log_extra = {
            "task_id": task_id,
            "attempt": attempts,
            "error_code": error.code,
            "disposition": str(disposition),
        }
        # A traceback helps only for errors nobody raised on purpose.
        trace = None if isinstance(exc, TTSError) else exc
        if disposition is Disposition.RETRY:
            logger.warning("job failed; will be retried: %s", error.message, extra=log_extra, exc_info=trace)
            return MessageOutcome(message.message_id, disposition, task_id, error)
        logger.error("job failed for good: %s", error.message, extra=log_extra, exc_info=trace)
        try:
            self._publish(task_id, TaskStatus.FAILED, attempt=attempts, error=error)
        except Exception as publish_exc:
            again = decide(
                publish_exc, receive_count=attempts, max_receive_count=self._config.max_receive_count
            )
            logger.error(
                "could not publish failed event",
                extra={**log_extra, "disposition": str(again)},
                exc_info=publish_exc,
            )
            return MessageOutcome(message.message_id, again, task_id, error)
        self._metric("TasksFailed", "Count", 1)
        return MessageOutcome(message.message_id, disposition, task_id, error)

    # -- events and metrics --------------------------------------------------------------------------------

    def _publish_finished(
        self, task_id: str, audio: AudioInfo, *, attempt: int, progress: Progress | None
    ) -> None:
        # Both carry the audio, so either one alone finishes the record whatever order they arrive in.
        self._publish(task_id, TaskStatus.COMPLETED, attempt=attempt, progress=progress, audio=audio)
        self._publish(task_id, TaskStatus.DONE, attempt=attempt, progress=progress, audio=audio)

    def _publish(
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

    def _metric(self, name: str, unit: str, value: float) -> None:
        if self._metrics is not None:
            self._metrics.add_metric(name=name, unit=unit, value=value)
