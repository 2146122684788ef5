"""The transport-agnostic worker core: job messages in, audio and lifecycle events out.

The Lambda handler and the ECS loop both hand it a batch of messages and act on the outcomes it returns
(delete, leave for redelivery, leave for the DLQ). It never touches a queue itself.

A batch runs in three steps: start every job (parse, fetch the text, split it, report `processing`); cut
the pieces of all jobs into groups (by length when the synthesizer pads a batch) and synthesize group after
group; finish each job as soon as its last piece is done (audio to the store, `completed` and `done`).

A job's voice (its VoiceSpec, stored with the task at submit) is all the core reads of how to speak it: the
model, speed, noise scales and piece length shape the waveform and its seeds; format and sample rate only
how it is delivered.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tts_common.domain import TaskStatus, normalize_text
from tts_common.exceptions import EmptyTokenization, MalformedJob
from tts_common.messages import AudioInfo, Progress, SynthesisJob
from tts_common.metrics import Metric
from tts_common.settings import WorkerSettings
from tts_common.voice import seed_for, waveform_key
from tts_worker.audio import PIECE_PAUSE_S, AudioAssembler
from tts_worker.batching import Piece, plan_groups
from tts_worker.failures import Disposition
from tts_worker.job_input import parse_job
from tts_worker.ports import AudioStorePort, EventPort, JobMessage, MetricsSink, TaskLookup
from tts_worker.reporting import MessageOutcome, Reporter
from tts_worker.synthesizer.base import SynthesisItem, SynthesisResult, Synthesizer
from tts_worker.text_split import split_text

__all__ = ["CoreConfig", "MessageOutcome", "WorkerCore"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CoreConfig:
    # Must equal the jobs queue's redrive maxReceiveCount: the last attempt publishes `failed`.
    max_receive_count: int = 3
    pause_s: float = PIECE_PAUSE_S
    # Progress events: after every piece for short jobs, otherwise at most one per interval.
    progress_interval_s: float = 2.0
    progress_every_piece_up_to: int = 5
    # Most pieces per synthesize() call (TTS_MAX_BATCH), and a bound on items x longest piece per call,
    # which bounds a padded forward's memory (64 x 400 characters: ~10 GB of activations in float16).
    max_batch: int = 16
    max_group_chars: int = 64 * 400
    # Threads that write audio and publish events while the next group synthesizes; 1 = inline.
    io_workers: int = 1

    @classmethod
    def from_settings(cls, settings: WorkerSettings, *, io_workers: int = 1) -> CoreConfig:
        return cls(
            max_receive_count=settings.max_receive_count,
            max_batch=settings.tts_max_batch,
            io_workers=io_workers,
        )


@dataclass(slots=True)
class _RunningJob:
    """A job whose pieces are being synthesized."""

    message: JobMessage
    job: SynthesisJob
    assembler: AudioAssembler
    last_progress: float
    synthesis_s: float = 0.0
    over: bool = False  # finished or failed: later pieces are skipped

    @property
    def total(self) -> int:
        return self.assembler.total


@dataclass(slots=True)
class _BatchState:
    outcomes: list[MessageOutcome | None]
    running: dict[int, _RunningJob] = field(default_factory=dict)
    finishing: dict[int, Future[MessageOutcome]] = field(default_factory=dict)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Inline:
    """An executor that runs the call at once, in the caller's thread."""

    def submit(self, fn: Callable[[], MessageOutcome]) -> Future[MessageOutcome]:
        future: Future[MessageOutcome] = Future()
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)
        return future


class WorkerCore:
    def __init__(
        self,
        *,
        synthesizer: Synthesizer,
        store: AudioStorePort,
        events: EventPort,
        tasks: TaskLookup,
        config: CoreConfig | None = None,
        metrics: MetricsSink | None = None,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._synthesizer = synthesizer
        self._store = store
        self._tasks = tasks
        self._config = config or CoreConfig()
        self._report = Reporter(
            events=events, metrics=metrics, clock=clock, max_receive_count=self._config.max_receive_count
        )
        self._monotonic = monotonic
        self._io: ThreadPoolExecutor | _Inline = (
            ThreadPoolExecutor(self._config.io_workers, thread_name_prefix="tts-io")
            if self._config.io_workers > 1
            else _Inline()
        )

    @property
    def synthesizer(self) -> Synthesizer:
        return self._synthesizer

    def process_batch(self, messages: Sequence[JobMessage]) -> list[MessageOutcome]:
        """One outcome per message, in order; one bad job or piece never fails its neighbours."""
        state = _BatchState(outcomes=[None] * len(messages))
        pieces: list[Piece] = []
        for slot, message in enumerate(messages):
            pieces.extend(self._start(slot, message, state))
        synthesizer = self._synthesizer
        groups = plan_groups(
            pieces,
            max_items=min(self._config.max_batch, synthesizer.max_items_per_call or self._config.max_batch),
            max_padded_chars=self._config.max_group_chars,
            by_length=synthesizer.pads_batches,
        )
        for group in groups:
            live = [p for p in group if not state.running[p.job].over]
            if live:
                self._run_group(live, state)
        for slot, future in state.finishing.items():
            state.outcomes[slot] = future.result()
        return [self._settled(messages[slot], outcome) for slot, outcome in enumerate(state.outcomes)]

    def _settled(self, message: JobMessage, outcome: MessageOutcome | None) -> MessageOutcome:
        if outcome is not None:
            return outcome
        # Unreachable unless the core itself is wrong; the job is retried rather than lost.
        logger.error("job ended without an outcome", extra={"message_id": message.message_id})
        return MessageOutcome(message.message_id, Disposition.RETRY)

    # -- start: parse, fetch, split, report processing ----------------------------------------------------

    def _start(self, slot: int, message: JobMessage, state: _BatchState) -> list[Piece]:
        try:
            job = parse_job(message.body)
        except MalformedJob as exc:
            state.outcomes[slot] = self._report.malformed(message, exc)
            return []
        try:
            return self._start_job(slot, message, job, state)
        except Exception as exc:
            state.outcomes[slot] = self._report.failed(message, job.task_id, exc)
            return []

    def _start_job(
        self, slot: int, message: JobMessage, job: SynthesisJob, state: _BatchState
    ) -> list[Piece]:
        attempt = message.receive_count
        if not self._tasks.exists(job.task_id):
            # Forged, or its task expired or was never written: nothing would ever read the audio.
            logger.warning("job for an unknown task dropped", extra={"task_id": job.task_id})
            state.outcomes[slot] = MessageOutcome(message.message_id, Disposition.DROPPED, job.task_id)
            return []
        existing = self._store.find_audio(job.audio_key)
        if existing is not None:
            # A redelivery of a finished job: report the audio again, do no work.
            logger.info("audio already exists; republishing", extra={"task_id": job.task_id})
            self._report.publish_finished(job.task_id, existing, attempt=attempt, progress=None)
            state.outcomes[slot] = MessageOutcome(message.message_id, Disposition.SUCCEEDED, job.task_id)
            return []

        text = normalize_text(job.text if job.text is not None else self._store.get_text(job.text_key or ""))
        voice = job.voice
        pieces = split_text(text, voice.max_piece_chars)
        # Seeds follow the piece's place in the text, so skipping an unspeakable piece moves no other seed.
        speakable = [
            (index, piece)
            for index, piece in enumerate(pieces)
            if self._synthesizer.is_speakable(piece, voice.model_id)
        ]
        if not speakable:
            raise EmptyTokenization("the text has no characters this model can speak")
        total = len(speakable)
        self._report.publish(
            job.task_id,
            TaskStatus.PROCESSING,
            attempt=attempt,
            progress=Progress(pieces_done=0, pieces_total=total),
        )
        state.running[slot] = _RunningJob(
            message=message,
            job=job,
            assembler=self._assembler_for(
                job, self._synthesizer.sampling_rate_for(voice.model_id), total=total
            ),
            last_progress=self._monotonic(),
        )
        key = waveform_key(text, voice)
        return [
            Piece(job=slot, position=position, item=self._item(job, text_piece, seed_for(key, index)))
            for position, (index, text_piece) in enumerate(speakable)
        ]

    def _assembler_for(self, job: SynthesisJob, native_rate: int, *, total: int) -> AudioAssembler:
        """Where a job's pieces go: its format, at the rate its voice asks for (else the native one)."""
        return AudioAssembler(
            total=total,
            native_rate=native_rate,
            audio_format=job.voice.format,
            output_rate=job.voice.output_rate(native_rate),
            pause_s=self._config.pause_s,
        )

    @staticmethod
    def _item(job: SynthesisJob, piece: str, seed: int) -> SynthesisItem:
        voice = job.voice
        return SynthesisItem(
            text=piece,
            seed=seed,
            speaking_rate=voice.speed,
            noise_scale=voice.noise_scale,
            noise_scale_duration=voice.noise_scale_duration,
            model_id=voice.model_id,
        )

    # -- synthesize a group, hand each piece to its job ---------------------------------------------------

    def _run_group(self, group: list[Piece], state: _BatchState) -> None:
        started = self._monotonic()
        results = self._synthesize(group)
        finished = self._monotonic()
        group_chars = sum(p.chars for p in group)
        touched: dict[int, _RunningJob] = {}
        for piece, result in zip(group, results, strict=True):
            running = state.running[piece.job]
            if running.over:
                continue
            if isinstance(result, Exception):
                running.over = True
                running.assembler.discard()
                state.outcomes[piece.job] = self._report.failed(running.message, running.job.task_id, result)
                touched.pop(piece.job, None)
                continue
            running.assembler.add(piece.position, result.waveform)
            running.synthesis_s += (finished - started) * piece.chars / group_chars
            touched[piece.job] = running
        for slot, running in touched.items():
            if running.assembler.complete:
                running.over = True
                state.finishing[slot] = self._io.submit(functools.partial(self._finish, running))
            elif self._progress_due(running.total, since=finished - running.last_progress):
                try:
                    self._report.publish(
                        running.job.task_id,
                        TaskStatus.PROCESSING,
                        attempt=running.message.receive_count,
                        progress=Progress(
                            pieces_done=running.assembler.pieces_done, pieces_total=running.total
                        ),
                    )
                except Exception as exc:
                    running.over = True
                    running.assembler.discard()
                    state.outcomes[slot] = self._report.failed(running.message, running.job.task_id, exc)
                running.last_progress = finished

    def _synthesize(self, group: list[Piece]) -> list[SynthesisResult | Exception]:
        """One call for the group; if it fails, one call per piece, so only the bad piece fails."""
        try:
            return list(self._synthesizer.synthesize([p.item for p in group]))
        except Exception as exc:
            if len(group) == 1:
                return [exc]
            logger.warning(
                "a group failed; synthesizing its pieces one by one",
                extra={"pieces": len(group), "error": f"{type(exc).__name__}: {exc}"},
            )
        results: list[SynthesisResult | Exception] = []
        for piece in group:
            try:
                results.append(self._synthesizer.synthesize([piece.item])[0])
            except Exception as exc:
                results.append(exc)
        return results

    def _progress_due(self, total: int, *, since: float) -> bool:
        return total <= self._config.progress_every_piece_up_to or since >= self._config.progress_interval_s

    # -- finish: audio to the store, completed and done ------------------------------------------------------

    def _finish(self, running: _RunningJob) -> MessageOutcome:
        job, message = running.job, running.message
        try:
            self._write_audio(running)
        except Exception as exc:
            return self._report.failed(message, job.task_id, exc)
        return MessageOutcome(message.message_id, Disposition.SUCCEEDED, job.task_id)

    def _write_audio(self, running: _RunningJob) -> None:
        job, total = running.job, running.total
        duration_s = running.assembler.duration_s
        body = running.assembler.finish()
        info = AudioInfo(
            audio_key=job.audio_key,
            file_size=len(body),
            format=running.assembler.audio_format,
            sampling_rate=running.assembler.output_rate,
            duration_s=duration_s,
            device=self._synthesizer.device,
        )
        self._store.put_audio(info, body, task_id=job.task_id)
        self._report.publish_finished(
            job.task_id,
            info,
            attempt=running.message.receive_count,
            progress=Progress(pieces_done=total, pieces_total=total),
        )
        self._report.metric(Metric.TASKS_COMPLETED, "Count", 1)
        self._report.metric(Metric.SYNTHESIS_SECONDS, "Seconds", running.synthesis_s)
        self._report.metric(Metric.AUDIO_SECONDS, "Seconds", info.duration_s)
        logger.info(
            "task done",
            extra={
                "task_id": job.task_id,
                "pieces": total,
                "audio_s": round(info.duration_s, 3),
                "synthesis_s": round(running.synthesis_s, 3),
                "device": info.device,
            },
        )
