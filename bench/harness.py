"""The paths the benchmark times, on the same jobs: the seed's one-text-per-forward, the worker core, the raw
batched model; and what it measures them with (wall clock, per-job completion, peak memory)."""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psutil
import torch

from tts_common.domain import audio_key_for, normalize_text
from tts_common.messages import AudioInfo, LifecycleEvent, SynthesisJob
from tts_common.voice import VoiceSpec, dedupe_key, seed_for, waveform_key
from tts_worker.audio import encode_wav
from tts_worker.batching import Piece, plan_groups
from tts_worker.core import CoreConfig, WorkerCore
from tts_worker.ports import QueueMessage
from tts_worker.runtime import IO_WORKERS
from tts_worker.synthesizer.base import SynthesisItem, Synthesizer
from tts_worker.synthesizer.vits import DECODE_CHUNK_FRAMES, VitsSynthesizer
from tts_worker.synthesizer.vits_forward import Decode, ForwardItem, _decode, _decode_in_chunks
from tts_worker.text_split import split_text

# -- jobs ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    task_id: str
    text: str
    job: SynthesisJob

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def seed(self) -> int:
        """The seed of the text's first piece: what the seed style seeds its one forward with."""
        return seed_for(waveform_key(normalize_text(self.text), self.job.voice), 0)

    def message(self) -> QueueMessage:
        return QueueMessage(message_id=f"m-{self.task_id}", body=self.job.model_dump_json())


def make_jobs(
    texts: Sequence[str], *, prefix: str, model_id: str, max_piece_chars: int = 400, language: str = "fin"
) -> list[Job]:
    voice = VoiceSpec(language=language, model_id=model_id, max_piece_chars=max_piece_chars)
    jobs = []
    for n, text in enumerate(texts):
        task_id = f"{prefix}-{n}"
        jobs.append(
            Job(
                task_id=task_id,
                text=text,
                job=SynthesisJob(
                    task_id=task_id,
                    dedupe_key=dedupe_key(normalize_text(text), voice, tenant_id="bench"),
                    voice=voice,
                    text=text,
                    audio_key=audio_key_for(task_id, voice.format),
                    submitted_at=datetime(2026, 11, 27, tzinfo=UTC),
                ),
            )
        )
    return jobs


# -- measurements --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One path over one set of jobs, all handed over at once (a burst, as from a queue)."""

    chars: int
    audio_s: float
    wall_s: float
    # Seconds from the start of the run to each job's WAV being written: queueing included.
    latencies_s: list[float]
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float = 0.0

    @property
    def chars_per_s(self) -> float:
        return self.chars / self.wall_s

    @property
    def audio_per_wall(self) -> float:
        return self.audio_s / self.wall_s

    def latency(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def median_run(runs: Sequence[Run]) -> Run:
    """The run with the median throughput (its latencies and memory come with it)."""
    ordered = sorted(runs, key=lambda r: r.chars_per_s)
    return ordered[(len(ordered) - 1) // 2]


@contextmanager
def peak_memory(device: str) -> Iterator[dict[str, float]]:
    """Peak resident memory of this process (sampled every 5 ms) and peak CUDA memory, in MB."""
    found = {"rss_mb": 0.0, "gpu_mb": 0.0}
    process = psutil.Process()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            found["rss_mb"] = max(found["rss_mb"], process.memory_info().rss / 2**20)
            stop.wait(0.005)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield found
    finally:
        stop.set()
        sampler.join()
        found["rss_mb"] = max(found["rss_mb"], process.memory_info().rss / 2**20)
        if device == "cuda":
            found["gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20


def _release_freed_memory() -> None:
    """Hand memory freed by earlier sets back to the OS, so each set's peak RSS is its own (glibc only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _timed(device: str, jobs: Sequence[Job], body: Callable[[Callable[[], float]], list[float]]) -> Run:
    """Run `body` (given a clock that reads seconds since the start) and collect its figures."""
    _sync(device)
    _release_freed_memory()
    with peak_memory(device) as memory:
        started = time.perf_counter()
        latencies = body(lambda: time.perf_counter() - started)
        _sync(device)
        wall = time.perf_counter() - started
    return Run(
        chars=sum(j.chars for j in jobs),
        audio_s=0.0,
        wall_s=wall,
        latencies_s=latencies,
        peak_rss_mb=memory["rss_mb"],
        peak_gpu_mb=memory["gpu_mb"],
    )


# -- the paths -----------------------------------------------------------------------------------------------


def seed_style(synthesizer: VitsSynthesizer, jobs: Sequence[Job]) -> Run:
    """What the seed did: one whole text per forward, `model(...)` after `torch.manual_seed`, then a WAV."""
    model = synthesizer.model
    device = synthesizer.device
    rate = synthesizer.sampling_rate
    audio = [0.0]

    def body(clock: Callable[[], float]) -> list[float]:
        done = []
        with torch.inference_mode():
            for job in jobs:
                ids = synthesizer.token_ids(normalize_text(job.text)) or [0]
                torch.manual_seed(job.seed)
                output = model(input_ids=torch.tensor([ids], device=model.device))
                length = int(output.sequence_lengths[0])
                waveform = output.waveform[0, :length].float().cpu().numpy()
                encode_wav(waveform, sampling_rate=rate)
                audio[0] += length / rate
                done.append(clock())
        return done

    run = _timed(device, jobs, body)
    run.audio_s = audio[0]
    return run


class _TimedStore:
    """An in-memory audio store that notes when each WAV arrives."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.written: dict[str, float] = {}
        self.audio_s = 0.0
        self._lock = threading.Lock()

    def find_audio(self, audio_key: str) -> AudioInfo | None:
        return None

    def put_audio(self, info: AudioInfo, body: bytes, *, task_id: str) -> None:
        with self._lock:
            self.written[task_id] = self.clock()
            self.audio_s += info.duration_s

    def put_marks(self, key: str, body: bytes, *, content_type: str, task_id: str) -> None:
        pass  # built and rendered like the worker's, then dropped

    def get_text(self, key: str) -> str:
        raise KeyError(key)


class _NoEvents:
    def publish(self, event: LifecycleEvent) -> None:
        pass


class _EveryTask:
    """The benchmark's jobs have no task records: every task exists."""

    def exists(self, task_id: str) -> bool:
        return True


def worker(synthesizer: Synthesizer, jobs: Sequence[Job], *, max_batch: int) -> Run:
    """The worker core, jobs in and WAV bytes out, in batches of `max_batch` messages. Any Synthesizer: a
    VitsSynthesizer, or the model registry (bench.models)."""
    store: list[_TimedStore] = []

    def body(clock: Callable[[], float]) -> list[float]:
        timed = _TimedStore(clock)
        store.append(timed)
        core = WorkerCore(
            synthesizer=synthesizer,
            store=timed,
            events=_NoEvents(),
            tasks=_EveryTask(),
            config=CoreConfig(max_batch=max_batch, io_workers=IO_WORKERS),
        )
        messages = [j.message() for j in jobs]
        for start in range(0, len(messages), max_batch):
            outcomes = core.process_batch(messages[start : start + max_batch])
            failed = [o for o in outcomes if not o.settled]
            if failed:
                raise RuntimeError(f"the worker failed jobs: {failed}")
        return [timed.written[j.task_id] for j in jobs]

    run = _timed(synthesizer.device, jobs, body)
    run.audio_s = store[0].audio_s
    return run


def raw_model(synthesizer: VitsSynthesizer, jobs: Sequence[Job], *, batch: int) -> Run:
    """The model alone on the worker's pieces: forward passes of up to `batch` pieces grouped by length (or
    one by one on the CPU), no WAV, no core. What the core's overhead is measured against."""
    pieces = []
    for n, job in enumerate(jobs):
        for index, text in enumerate(split_text(normalize_text(job.text), job.job.voice.max_piece_chars)):
            ids = synthesizer.token_ids(text)
            if ids is not None:
                pieces.append(Piece(job=n, position=index, item=SynthesisItem(text=text, seed=index)))
    by_length = synthesizer.pads_batches
    groups = plan_groups(
        pieces, max_items=batch if by_length else 1, max_padded_chars=64 * 400, by_length=by_length
    )
    forward_groups = [
        [ForwardItem(synthesizer.token_ids(p.item.text) or [0], p.item.seed, 1.0, 0.667, 0.8) for p in group]
        for group in groups
    ]
    audio = [0.0]
    rate = synthesizer.sampling_rate

    def body(clock: Callable[[], float]) -> list[float]:
        for group in forward_groups:
            audio[0] += sum(len(w.samples) for w in synthesizer.forward(group)) / rate
        _sync(synthesizer.device)
        return [clock()] * len(jobs)

    run = _timed(synthesizer.device, jobs, body)
    run.audio_s = audio[0]
    return run


def padded_batches(synthesizer: VitsSynthesizer, texts: Sequence[str], *, batch: int) -> Run:
    """One padded forward per `batch` texts (the CUDA path), whatever the device."""
    items = [SynthesisItem(text=t, seed=n) for n, t in enumerate(texts)]
    jobs = make_jobs(texts, prefix="padded", model_id=synthesizer.model_id)
    audio = [0.0]

    def body(clock: Callable[[], float]) -> list[float]:
        for start in range(0, len(items), batch):
            results = synthesizer.synthesize(items[start : start + batch])
            audio[0] += sum(r.duration_s for r in results)
        return [clock()] * len(items)

    run = _timed(synthesizer.device, jobs, body)
    run.audio_s = audio[0]
    return run


def largest_difference(first: VitsSynthesizer, second: VitsSynthesizer, texts: Sequence[str]) -> float:
    """The largest sample difference between two synthesizers' audio for the same items (inf when a length
    differs)."""
    items = [SynthesisItem(text=t, seed=n) for n, t in enumerate(texts)]
    largest = 0.0
    for a, b in zip(first.synthesize(items), second.synthesize(items), strict=True):
        if a.waveform.shape != b.waveform.shape:
            return float("inf")
        largest = max(largest, float(np.abs(a.waveform - b.waveform).max()))
    return largest


def decoder_sweep(model: Any, onnx: Decode | None, *, repeats: int = 3) -> list[tuple[str, float]]:
    """Audio seconds per wall second of the HiFi-GAN decoder alone (median of `repeats`): torch eager whole
    and chunked (the torch path's DECODE_CHUNK_FRAMES), and ONNX Runtime whole, at a short and a long
    piece's length."""
    hop = math.prod(model.config.upsample_rates) / model.config.sampling_rate
    generator = torch.Generator().manual_seed(0)
    found = []

    def eager(spectrogram: torch.Tensor) -> torch.Tensor:
        return _decode(model.decoder, spectrogram, None)

    cases: list[tuple[str, int, Decode, int | None]] = [
        ("torch eager", 400, eager, None),
        ("torch eager", 1200, eager, None),
        ("torch eager", 1200, eager, DECODE_CHUNK_FRAMES),
    ]
    if onnx is not None:
        cases += [("ONNX Runtime", 400, onnx, None), ("ONNX Runtime", 1200, onnx, None)]
    with torch.inference_mode():
        for runtime, frames, decode, chunk in cases:
            spectrogram = torch.randn(1, model.config.flow_size, frames, generator=generator)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                if chunk is None:
                    decode(spectrogram)
                else:
                    _decode_in_chunks(model.decoder, spectrogram, chunk, decode)
                times.append(time.perf_counter() - started)
            elapsed = statistics.median(times)
            label = f"{runtime}: {frames} frames ({frames * hop:.1f} s of audio), " + (
                "one decode" if chunk is None else f"in {chunk}-frame chunks"
            )
            found.append((label, frames * hop / elapsed))
    return found


# -- the machine ---------------------------------------------------------------------------------------------


@dataclass
class Machine:
    cpu: str
    cores: int
    memory_gb: float
    torch: str
    transformers: str
    threads: int
    gpu: str | None
    python: str
    onnxruntime: str | None = None
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    notes: list[str] = field(default_factory=list)


def machine() -> Machine:
    import transformers

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return Machine(
        cpu=cpu,
        cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        memory_gb=psutil.virtual_memory().total / 2**30,
        torch=torch.__version__,
        transformers=transformers.__version__,
        threads=torch.get_num_threads(),
        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        python=platform.python_version(),
        onnxruntime=_version("onnxruntime"),
        load_before=os.getloadavg(),
    )


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
