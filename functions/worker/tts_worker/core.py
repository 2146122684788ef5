"""The transport-agnostic worker core: job messages in, audio and lifecycle events out.

The Lambda handler and the ECS loop both hand it a batch of messages and act on the outcomes it returns
(delete, leave for redelivery, leave for the DLQ). It never touches a queue itself.

A batch runs in three steps: start every job (parse, fetch the text, split it, report `processing`); cut
the pieces of all jobs into groups (by length when the synthesizer pads a batch) and synthesize group after
group; finish each job as soon as its last piece is done (audio to the store, `completed` and `done`).

A job's voice (its VoiceSpec, stored with the task at submit) is all the core reads of how to speak it: the
model, speed, noise scales and piece length shape the waveform and its seeds; format and sample rate only
how it is delivered.

A long text (fan-out, tts_worker.fanout) takes three kinds of message through the same batch: its own job
plans it (split as above, then one PartJob per group of pieces onto the parts queue); a PartJob synthesizes
its pieces with their own seeds and stores raw native-rate PCM; the JoinJob, sent by whichever part saw
every part stored, writes the audio and marks from the parts. Only the join publishes completed and done.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tts_common.adapters.s3 import audio_metadata
from tts_common.domain import MARKS_FORMATS, MarksFormat, TaskStatus, marks_key_for, normalize_text
from tts_common.exceptions import EmptyTokenization, MalformedJob, TransientJobError
from tts_common.messages import AudioInfo, JoinJob, PartJob, PartPiece, Progress, SynthesisJob
from tts_common.metrics import Metric
from tts_common.settings import WorkerSettings
from tts_common.voice import seed_for, waveform_key
from tts_worker.audio import PIECE_PAUSE_S, AudioAssembler
from tts_worker.batching import Piece, plan_groups
from tts_worker.failures import Disposition
from tts_worker.fanout import (
    FanoutPorts,
    Layout,
    PartAssembler,
    PlannedPiece,
    group_parts,
    join_audio,
    joined_duration_s,
    layout_of,
    part_manifest,
)
from tts_worker.job_input import parse_any_job
from tts_worker.marks import SpokenPiece, build_marks, render, usable
from tts_worker.ports import AudioStorePort, EventPort, JobMessage, MetricsSink, TaskLookup
from tts_worker.reporting import MessageOutcome, Reporter
from tts_worker.synthesizer.base import SynthesisItem, SynthesisResult, Synthesizer, TokenTiming
from tts_worker.text_split import piece_offsets, split_text

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
    job: SynthesisJob | PartJob
    assembler: AudioAssembler | PartAssembler
    last_progress: float
    synthesis_s: float = 0.0
    over: bool = False  # finished or failed: later pieces are skipped
    # For speech marks: the text, each spoken piece's start in it, and each piece's token timing once done.
    text: str = ""
    offsets: list[int] = field(default_factory=list)
    timings: dict[int, TokenTiming] = field(default_factory=dict)
    # A part of a long text (fan-out): its pieces go to the bucket as raw PCM, not to an audio file.
    part: PartJob | None = None

    @property
    def total(self) -> int:
        return self.assembler.total


@dataclass(slots=True)
class _BatchState:
    outcomes: list[MessageOutcome | None]
    running: dict[int, _RunningJob] = field(default_factory=dict)
    finishing: dict[int, Future[MessageOutcome]] = field(default_factory=dict)
    # Called between groups (and between a join's pieces): the ECS loop serves short jobs there.
    between: Callable[[], None] | None = None


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
        fanout: FanoutPorts | None = None,
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
        self._clock = clock
        self._fanout = fanout
        self._io: ThreadPoolExecutor | _Inline = (
            ThreadPoolExecutor(self._config.io_workers, thread_name_prefix="tts-io")
            if self._config.io_workers > 1
            else _Inline()
        )

    @property
    def synthesizer(self) -> Synthesizer:
        return self._synthesizer

    def process_batch(
        self, messages: Sequence[JobMessage], *, between_groups: Callable[[], None] | None = None
    ) -> list[MessageOutcome]:
        """One outcome per message, in order; one bad job or piece never fails its neighbours.
        `between_groups` runs after each synthesize() call (and each piece a join writes)."""
        state = _BatchState(outcomes=[None] * len(messages), between=between_groups)
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
                if between_groups is not None:
                    between_groups()
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
            job = parse_any_job(message.body)
        except MalformedJob as exc:
            state.outcomes[slot] = self._report.malformed(message, exc)
            return []
        try:
            if isinstance(job, JoinJob):
                state.outcomes[slot] = self._join(message, job, state)
                return []
            if isinstance(job, PartJob):
                return self._start_part(slot, message, job, state)
            return self._start_job(slot, message, job, state)
        except Exception as exc:
            state.outcomes[slot] = self._fail(message, job, exc)
            return []

    def _fail(
        self, message: JobMessage, job: SynthesisJob | PartJob | JoinJob, exc: Exception
    ) -> MessageOutcome:
        """The job failed: retry it, or fail its task; a part failing for good fails its parent's plan."""
        context = f"part {job.part + 1} of {job.parts_total}" if isinstance(job, PartJob) else None
        outcome = self._report.failed(message, job.task_id, exc, context=context)
        if (
            isinstance(job, PartJob)
            and outcome.disposition is not Disposition.RETRY
            and self._fanout is not None
        ):
            try:
                self._fanout.ledger.fail(
                    job.task_id, f"part {job.part + 1} of {job.parts_total}: {type(exc).__name__}: {exc}"
                )
            except Exception:
                logger.exception("could not mark the plan failed", extra={"task_id": job.task_id})
        return outcome

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
        offsets = piece_offsets(text, pieces)
        # Seeds follow the piece's place in the text, so skipping an unspeakable piece moves no other seed.
        speakable = [
            (index, piece)
            for index, piece in enumerate(pieces)
            if self._synthesizer.is_speakable(piece, voice.model_id)
        ]
        if not speakable:
            raise EmptyTokenization("the text has no characters this model can speak")
        total = len(speakable)
        key = waveform_key(text, voice)
        fanout = self._fanout
        if fanout is not None and len(text) >= fanout.min_chars:
            parts = group_parts(
                [PlannedPiece(index=i, position=pos, text=p) for pos, (i, p) in enumerate(speakable)],
                part_chars=fanout.part_chars,
            )
            if len(parts) >= 2:
                state.outcomes[slot] = self._plan(message, job, key, parts, total)
                return []
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
            text=text,
            offsets=[offsets[index] for index, _ in speakable],
        )
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
    def _item(job: SynthesisJob | PartJob, piece: str, seed: int) -> SynthesisItem:
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
                state.outcomes[piece.job] = self._fail(running.message, running.job, result)
                touched.pop(piece.job, None)
                continue
            running.assembler.add(piece.position, result.waveform)
            if usable(result.timing, len(result.waveform)):
                assert result.timing is not None
                running.timings[piece.position] = result.timing
            running.synthesis_s += (finished - started) * piece.chars / group_chars
            touched[piece.job] = running
        for slot, running in touched.items():
            if running.assembler.complete:
                running.over = True
                state.finishing[slot] = self._io.submit(functools.partial(self._finish, running))
            elif self._progress_due(running.total, since=finished - running.last_progress):
                try:
                    if running.part is not None:
                        self._part_progress(slot, running, state)
                    else:
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
                    state.outcomes[slot] = self._fail(running.message, running.job, exc)
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
            if running.part is not None:
                self._store_part(running, running.part)
            else:
                self._write_audio(running)
        except Exception as exc:
            return self._fail(message, job, exc)
        return MessageOutcome(message.message_id, Disposition.SUCCEEDED, job.task_id)

    def _write_marks(self, running: _RunningJob, duration_s: float) -> tuple[MarksFormat, ...]:
        """Speech marks and subtitles beside the audio, when every piece came with its token timing."""
        if len(running.timings) != running.total:
            return ()
        assembler = running.assembler
        assert isinstance(assembler, AudioAssembler)
        pieces = [
            SpokenPiece(offset=offset, start=start, timing=running.timings[position])
            for position, (offset, start) in enumerate(
                zip(running.offsets, assembler.piece_starts, strict=True)
            )
        ]
        return self._put_marks(
            running.job.task_id,
            running.text,
            pieces,
            native_rate=assembler.native_rate,
            duration_s=duration_s,
        )

    def _put_marks(
        self, task_id: str, text: str, pieces: list[SpokenPiece], *, native_rate: int, duration_s: float
    ) -> tuple[MarksFormat, ...]:
        started = self._monotonic()
        try:
            marks = build_marks(text, pieces, sampling_rate=native_rate, duration_s=duration_s)
            files = render(marks)
        except Exception:  # a bug in the marks must not cost the user the audio
            logger.exception("speech marks could not be built; audio only", extra={"task_id": task_id})
            return ()
        for marks_format, body in files.items():
            self._store.put_marks(
                marks_key_for(task_id, marks_format),
                body,
                content_type=MARKS_FORMATS[marks_format].content_type,
                task_id=task_id,
            )
        logger.debug("marks written", extra={"task_id": task_id, "marks_s": self._monotonic() - started})
        return tuple(files)

    def _write_audio(self, running: _RunningJob) -> None:
        job, total = running.job, running.total
        assert isinstance(running.assembler, AudioAssembler)
        duration_s = running.assembler.duration_s
        body = running.assembler.finish()
        # Marks first: the audio's existence says the job is finished, and its metadata lists the marks.
        marks = self._write_marks(running, duration_s)
        info = AudioInfo(
            audio_key=job.audio_key,
            file_size=len(body),
            format=running.assembler.audio_format,
            sampling_rate=running.assembler.output_rate,
            duration_s=duration_s,
            device=self._synthesizer.device,
            marks=marks,
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

    # -- fan-out: plan a long text, synthesize a part, join the parts ----------------------------------------

    def _plan(
        self,
        message: JobMessage,
        job: SynthesisJob,
        seed_key: str,
        parts: list[list[PlannedPiece]],
        total: int,
    ) -> MessageOutcome:
        """Send one part job per part not yet stored (the join when all are); a redelivery re-plans alike."""
        fanout = self._fanout
        assert fanout is not None
        join = JoinJob(
            task_id=job.task_id,
            dedupe_key=job.dedupe_key,
            voice=job.voice,
            text=job.text,
            text_key=job.text_key,
            audio_key=job.audio_key,
            submitted_at=job.submitted_at,
            parts_total=len(parts),
            pieces_total=total,
        )
        state = fanout.ledger.create(
            job.task_id,
            parts_total=len(parts),
            pieces_total=total,
            join_job=join.model_dump_json(),
            now=self._clock(),
        )
        if state.failed_reason:
            return MessageOutcome(message.message_id, Disposition.DROPPED, job.task_id)
        if state.all_stored:
            fanout.jobs_queue.send(join.model_dump_json())
        else:
            fanout.parts_queue.send_many(
                [
                    PartJob(
                        task_id=job.task_id,
                        dedupe_key=job.dedupe_key,
                        voice=job.voice,
                        audio_key=job.audio_key,
                        submitted_at=job.submitted_at,
                        seed_key=seed_key,
                        part=k,
                        parts_total=len(parts),
                        pieces_total=total,
                        pieces=tuple(
                            PartPiece(index=p.index, position=p.position, text=p.text) for p in part
                        ),
                    ).model_dump_json()
                    for k, part in enumerate(parts)
                    if k not in state.stored
                ]
            )
        logger.info(
            "long text fanned out",
            extra={
                "task_id": job.task_id,
                "parts": len(parts),
                "pieces": total,
                "resumed": len(state.stored),
            },
        )
        return MessageOutcome(message.message_id, Disposition.SUCCEEDED, job.task_id)

    def _start_part(self, slot: int, message: JobMessage, part: PartJob, state: _BatchState) -> list[Piece]:
        fanout = self._fanout
        if fanout is None:
            raise MalformedJob("a part job reached a worker without fan-out (PARTS_QUEUE_URL unset)")
        task_id = part.task_id
        done = MessageOutcome(message.message_id, Disposition.SUCCEEDED, task_id)
        dropped = MessageOutcome(message.message_id, Disposition.DROPPED, task_id)
        if not self._tasks.exists(task_id):
            state.outcomes[slot] = dropped
            return []
        if self._store.find_audio(part.audio_key) is not None:  # joined already: a late redelivery
            state.outcomes[slot] = done
            return []
        plan = fanout.ledger.get(task_id)
        if plan is None or plan.failed_reason:  # forged, or another part failed for good
            state.outcomes[slot] = dropped
            return []
        if fanout.parts.has_manifest(task_id, part.part):
            # Stored already (a redelivery after the store): count it (once) and make sure of the join.
            self._part_stored(message, part)
            state.outcomes[slot] = done
            return []
        self._report.publish(
            task_id,
            TaskStatus.PROCESSING,
            attempt=message.receive_count,
            progress=Progress(pieces_done=plan.pieces_done, pieces_total=part.pieces_total),
        )
        voice = part.voice
        native_rate = self._synthesizer.sampling_rate_for(voice.model_id)
        first = part.pieces[0].position
        state.running[slot] = _RunningJob(
            message=message,
            job=part,
            assembler=PartAssembler(
                total=len(part.pieces),
                native_rate=native_rate,
                leading_pause=first > 0,
                pause_s=self._config.pause_s,
            ),
            last_progress=self._monotonic(),
            part=part,
        )
        logger.info("part started", extra={"task_id": task_id, "part": part.part, "pieces": len(part.pieces)})
        return [
            Piece(job=slot, position=j, item=self._item(part, p.text, seed_for(part.seed_key, p.index)))
            for j, p in enumerate(part.pieces)
        ]

    def _part_progress(self, slot: int, running: _RunningJob, state: _BatchState) -> None:
        fanout, part = self._fanout, running.part
        assert fanout is not None
        assert part is not None
        plan = fanout.ledger.report(part.task_id, part.part, running.assembler.pieces_done)
        if plan is None or plan.failed_reason:
            # Another part failed for good (or the plan is gone): stop here, the parent is failed already.
            running.over = True
            running.assembler.discard()
            state.outcomes[slot] = MessageOutcome(
                running.message.message_id, Disposition.DROPPED, part.task_id
            )
            return
        self._report.publish(
            part.task_id,
            TaskStatus.PROCESSING,
            attempt=running.message.receive_count,
            progress=Progress(pieces_done=plan.pieces_done, pieces_total=part.pieces_total),
        )

    def _store_part(self, running: _RunningJob, part: PartJob) -> None:
        fanout = self._fanout
        assert fanout is not None
        assert isinstance(running.assembler, PartAssembler)
        assembler = running.assembler
        manifest = part_manifest(
            assembler,
            part=part.part,
            positions=[p.position for p in part.pieces],
            indices=[p.index for p in part.pieces],
            timings=running.timings,
            device=self._synthesizer.device,
        )
        fanout.parts.put_part(part.task_id, part.part, assembler.body(), manifest)
        assembler.discard()
        self._part_stored(running.message, part)
        self._report.metric(Metric.SYNTHESIS_SECONDS, "Seconds", running.synthesis_s)
        logger.info(
            "part stored",
            extra={
                "task_id": part.task_id,
                "part": part.part,
                "parts": part.parts_total,
                "pieces": len(part.pieces),
                "synthesis_s": round(running.synthesis_s, 3),
                "worker": manifest["worker"],
            },
        )

    def _part_stored(self, message: JobMessage, part: PartJob) -> None:
        """Count the part once; whoever sees every part stored sends the join (a duplicate is harmless)."""
        fanout = self._fanout
        assert fanout is not None
        plan, _ = fanout.ledger.mark_stored(part.task_id, part.part, len(part.pieces))
        if plan is None or plan.failed_reason:
            return
        self._report.publish(
            part.task_id,
            TaskStatus.PROCESSING,
            attempt=message.receive_count,
            progress=Progress(pieces_done=plan.pieces_done, pieces_total=part.pieces_total),
        )
        if plan.all_stored and plan.join_done_at is None and plan.join_job:
            fanout.jobs_queue.send(plan.join_job)

    def _join(self, message: JobMessage, job: JoinJob, state: _BatchState) -> MessageOutcome:
        fanout = self._fanout
        if fanout is None:
            raise MalformedJob("a join job reached a worker without fan-out (PARTS_QUEUE_URL unset)")
        task_id, attempt = job.task_id, message.receive_count
        if not self._tasks.exists(task_id):
            return MessageOutcome(message.message_id, Disposition.DROPPED, task_id)
        total = job.pieces_total
        existing = self._store.find_audio(job.audio_key)
        if existing is not None:
            self._report.publish_finished(
                task_id, existing, attempt=attempt, progress=Progress(pieces_done=total, pieces_total=total)
            )
            return MessageOutcome(message.message_id, Disposition.SUCCEEDED, task_id)
        plan = fanout.ledger.get(task_id)
        if plan is None or plan.failed_reason:
            return MessageOutcome(message.message_id, Disposition.DROPPED, task_id)
        if not plan.all_stored:
            raise TransientJobError(f"{plan.parts_total - len(plan.stored)} part(s) not stored yet")
        started = self._monotonic()
        manifests = []
        for k in range(job.parts_total):
            manifest = fanout.parts.get_manifest(task_id, k)
            if manifest is None:
                raise TransientJobError(f"part {k}'s manifest is missing")
            manifests.append(manifest)
        layout = layout_of(manifests, pieces_total=total)
        native_rate = int(manifests[0]["native_rate"])
        voice = job.voice
        output_rate = voice.output_rate(native_rate)
        duration_s = joined_duration_s(layout, native_rate=native_rate, output_rate=output_rate)
        marks = self._join_marks(job, layout, native_rate=native_rate, duration_s=duration_s)
        info = AudioInfo(
            audio_key=job.audio_key,
            file_size=0,
            format=voice.format,
            sampling_rate=output_rate,
            duration_s=duration_s,
            device=layout.device,
            marks=marks,
        )
        size = join_audio(
            fanout.parts,
            task_id=task_id,
            audio_key=job.audio_key,
            manifests=manifests,
            layout=layout,
            audio_format=voice.format,
            output_rate=output_rate,
            pause_s=self._config.pause_s,
            metadata=audio_metadata(info, task_id=task_id),
            probe=state.between,
        )
        info = info.model_copy(update={"file_size": size})
        self._report.publish_finished(
            task_id, info, attempt=attempt, progress=Progress(pieces_done=total, pieces_total=total)
        )
        fanout.ledger.join_done(task_id, self._clock())
        try:
            fanout.parts.delete_parts(task_id)
        except Exception:
            logger.warning("could not delete the parts; the lifecycle rule will", extra={"task_id": task_id})
        self._report.metric(Metric.TASKS_COMPLETED, "Count", 1)
        self._report.metric(Metric.AUDIO_SECONDS, "Seconds", info.duration_s)
        logger.info(
            "task done",
            extra={
                "task_id": task_id,
                "pieces": total,
                "parts": job.parts_total,
                "audio_s": round(info.duration_s, 3),
                "join_s": round(self._monotonic() - started, 3),
                "device": info.device,
            },
        )
        return MessageOutcome(message.message_id, Disposition.SUCCEEDED, task_id)

    def _join_marks(
        self, job: JoinJob, layout: Layout, *, native_rate: int, duration_s: float
    ) -> tuple[MarksFormat, ...]:
        if any(t is None for t in layout.timings):
            return ()
        text = normalize_text(job.text if job.text is not None else self._store.get_text(job.text_key or ""))
        offsets = piece_offsets(text, split_text(text, job.voice.max_piece_chars))
        pieces = [
            SpokenPiece(offset=offsets[index], start=start, timing=timing)
            for index, start, timing in zip(layout.indices, layout.piece_starts, layout.timings, strict=True)
            if timing is not None
        ]
        return self._put_marks(job.task_id, text, pieces, native_rate=native_rate, duration_s=duration_s)
