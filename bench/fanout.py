"""Fan-out (issue 12): long texts end to end on the local stack, the join's time and memory, and a latency
model of Lambda with K concurrent workers built from those measurements.

    python -m bench.run --fanout-only [--quick] [--no-write]

1. The full MMS architecture (`mms-random`) speaks a ~1,000-character text piece by piece as the CPU worker
   does, at 1 thread and at every core: its chars/s and seconds of audio per character. A part's synthesis
   time is extrapolated from that rate (a whole TTS_PART_CHARS part would take minutes on this machine).
2. The join, in this process, against a moto server in its own process (so that the objects it stores are
   not counted): parts of native-rate PCM as large as MMS makes them for a 100,000-character text, joined as
   WAV (server-side UploadPartCopy) and as FLAC (streaming re-encode). Wall time and peak RSS above the
   process's own before the join (sampled every 5 ms).
3. `python -m local.stack` (its tiny-random models) on free ports with 1 and with 2 worker processes: a
   20,000- and a 100,000-character text, each submitted alone, from the POST to the status `done`; the
   parts' synthesis seconds and the join's, from the workers' log lines.
4. The model: T(K) = F + C + ceil(P / K) x (t_part + q) + J; F and q fitted on step 3's runs, t_part from
   step 1, J from step 2, C the worker's cold start.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench import texts
from bench.harness import _release_freed_memory, peak_memory

FANOUT_BEGIN = "<!-- bench.fanout: written by `python -m bench.run` or `--fanout-only` -->"
FANOUT_END = "<!-- /bench.fanout -->"
FANOUT_HEADING = "## Long texts: fan-out over workers, the join, and Lambda with K workers"

SIZES = (20_000, 100_000)
# (WORKER_PROCESSES, TTS_NUM_THREADS): the stack's defaults for 1 and 2 workers (1: every core; 2: an equal
# share, 1 thread each here), and 1 worker at 1 thread, which tells the threads' effect from the workers'.
STACK_CONFIGS: tuple[tuple[int, str | None], ...] = ((1, None), (1, "1"), (2, None))
LAMBDA_K = (1, 10, 50)
LAMBDA_LIMIT_S = 900.0
# The worker's cold start on Lambda: the "Cold start" table of docs/BENCHMARKS.md (worker, total), mms-random.
COLD_START_S = 8.5
MMS_MODEL = "mms-random"
# The planning rate for Lambda's 15 minutes: MMS on 1 vCPU, the slowest rate docs/BENCHMARKS.md states (its
# cost table's Lambda 1,769 MB estimate; the 1-thread worker measured 21.6 there). Lambda's CPUs were not
# measured: this is an assumption, and the default 3,008 MB has ~1.7 vCPUs.
PLANNING_RATE = 21.7
RATE = 16_000  # MMS's native rate


def log(message: str) -> None:
    print(f"[bench fanout {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class MmsRate:
    threads: int
    chars: int
    pieces: int
    seconds: float
    audio_s: float

    @property
    def chars_per_s(self) -> float:
        return self.chars / self.seconds


@dataclass(frozen=True, slots=True)
class JoinCost:
    format: str
    chars: int
    parts: int
    pcm_bytes: int
    file_bytes: int
    seconds: float
    peak_mib: float  # RSS growth during the timed join
    traced_mib: float = 0.0  # tracemalloc's peak during a second join


@dataclass
class StackRun:
    workers: int
    threads: str  # torch threads per worker
    size: int  # the nominal size (20,000 or 100,000)
    chars: int
    parts: int
    e2e_s: float
    join_s: float
    synthesis_s: list[float]
    by_worker: dict[str, list[float]]

    @property
    def critical_s(self) -> float:
        """The busiest worker's synthesis seconds: the part of the run that more workers divide."""
        return max((sum(v) for v in self.by_worker.values()), default=0.0)

    @property
    def rounds(self) -> int:
        """Parts the busiest worker synthesized, one after the other."""
        return max((len(v) for v in self.by_worker.values()), default=0)

    @property
    def overhead_s(self) -> float:
        return self.e2e_s - self.join_s - self.critical_s


@dataclass
class FanoutResults:
    command: str
    quick: bool
    cpu: str
    cores: int
    part_chars: int
    min_chars: int
    measured_at: str
    stack_model: str = "tiny-random-fin"
    mms: list[MmsRate] = field(default_factory=list)
    audio_s_per_char: float = 0.0
    joins: list[JoinCost] = field(default_factory=list)
    runs: list[StackRun] = field(default_factory=list)
    load: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    elapsed_s: float = 0.0


# -- 1. the full MMS architecture's speed -------------------------------------------------------------------


def mms_rates(quick: bool) -> tuple[list[MmsRate], float]:
    from tts_worker.synthesizer import onnx_decoder, random_models
    from tts_worker.synthesizer.base import SynthesisItem
    from tts_worker.synthesizer.loader import load_synthesizer
    from tts_worker.text_split import split_text

    model_dir = random_models.ensure_generated(MMS_MODEL)
    if onnx_decoder.available():
        from tts_worker import prefetch

        prefetch.export_decoder(model_dir)
    text = texts.text_of(500 if quick else 1000, 4)
    pieces = split_text(text, 400)
    found = []
    audio_per_char = 0.0
    for threads in (1, os.cpu_count() or 1):
        synthesizer = load_synthesizer(MMS_MODEL, device="cpu", num_threads=threads)
        started = time.perf_counter()
        audio_s = 0.0
        for n, piece in enumerate(pieces):
            [result] = synthesizer.synthesize([SynthesisItem(text=piece, seed=n)])
            audio_s += result.duration_s
        elapsed = time.perf_counter() - started
        found.append(MmsRate(threads, len(text), len(pieces), elapsed, audio_s))
        audio_per_char = audio_s / len(text)
        log(f"mms-random, {threads} thread(s): {len(text) / elapsed:.1f} chars/s, {audio_s:.1f} s of audio")
        del synthesizer
    return found, audio_per_char


# -- 2. the join ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    from bench.soak import free_port

    port = free_port(set())
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        import urllib.request

        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def joins(*, chars: int, audio_s_per_char: float, part_chars: int) -> list[JoinCost]:
    """The join of a `chars`-character text's parts at MMS size, as WAV (copies) and FLAC (re-encode)."""
    import boto3

    from tts_common.domain import part_audio_key
    from tts_common.voice import AudioFormat
    from tts_worker.fanout import PartStore, join_audio, layout_of

    parts = max(1, math.ceil(chars / part_chars))
    pieces_per_part = max(1, part_chars // 240)  # ~240-character sentence pieces
    pause = round(0.2 * RATE)
    total_frames = round(chars * audio_s_per_char * RATE)
    frames = max(1, total_frames // (parts * pieces_per_part) - pause)
    found = []
    with moto_server() as url:
        s3 = boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=url,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3.create_bucket(Bucket="bench-audio")
        store = PartStore(s3_client=s3, bucket="bench-audio")
        rng = np.random.default_rng(0)
        noise = (rng.standard_normal(frames) * 3000).astype("<i2").tobytes()
        manifests: list[dict[str, Any]] = []
        for k in range(parts):
            body = bytearray()
            for j in range(pieces_per_part):
                if j or k:
                    body += bytes(2 * pause)
                body += noise
            s3.put_object(Bucket="bench-audio", Key=part_audio_key("bench", k), Body=bytes(body))
            positions = list(range(k * pieces_per_part, (k + 1) * pieces_per_part))
            manifests.append(
                {
                    "v": 1,
                    "part": k,
                    "native_rate": RATE,
                    "pause_frames": pause,
                    "leading_pause": k > 0,
                    "positions": positions,
                    "indices": positions,
                    "piece_frames": [frames] * pieces_per_part,
                    "bytes": len(body),
                    "device": "cpu",
                    "timings": [None] * pieces_per_part,
                }
            )
            del body
        pcm_bytes = sum(int(m["bytes"]) for m in manifests)
        layout = layout_of(manifests, pieces_total=parts * pieces_per_part)
        for audio_format in (AudioFormat.WAV, AudioFormat.FLAC):
            key = f"audio/bench.{audio_format.value}"
            _release_freed_memory()
            import psutil

            before = psutil.Process().memory_info().rss / 2**20
            with peak_memory("cpu") as memory:
                started = time.perf_counter()
                size = join_audio(
                    store,
                    task_id="bench",
                    audio_key=key,
                    manifests=manifests,
                    layout=layout,
                    audio_format=audio_format,
                    output_rate=RATE,
                    pause_s=0.2,
                    metadata={},
                )
                seconds = time.perf_counter() - started
            s3.delete_object(Bucket="bench-audio", Key=key)
            tracemalloc.start()
            try:
                join_audio(
                    store,
                    task_id="bench",
                    audio_key=key,
                    manifests=manifests,
                    layout=layout,
                    audio_format=audio_format,
                    output_rate=RATE,
                    pause_s=0.2,
                    metadata={},
                )
                traced = tracemalloc.get_traced_memory()[1] / 2**20
            finally:
                tracemalloc.stop()
            found.append(
                JoinCost(
                    format=audio_format.value,
                    chars=chars,
                    parts=parts,
                    pcm_bytes=pcm_bytes,
                    file_bytes=size,
                    seconds=seconds,
                    peak_mib=max(0.0, memory["rss_mb"] - before),
                    traced_mib=traced,
                )
            )
            log(
                f"join {audio_format.value}: {size / 2**20:.0f} MiB in {seconds:.1f} s, "
                f"+{found[-1].peak_mib:.0f} MiB RSS, {found[-1].traced_mib:.1f} MiB traced"
            )
            s3.delete_object(Bucket="bench-audio", Key=key)
    return found


# -- 3. the local stack -----------------------------------------------------------------------------------


def _records(log_text: str) -> Iterator[dict[str, Any]]:
    for line in log_text.splitlines():
        if "{" not in line:
            continue
        try:
            record = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def stack_runs(workers: int, threads: str | None, sizes: Sequence[int], workdir: Path) -> list[StackRun]:
    import httpx

    from bench.soak import AUTH, Stack

    overrides = {"WORKER_PROCESSES": str(workers), "POLL_WAIT_S": "1", "TTS_NUM_THREADS": threads}
    saved = {k: os.environ.get(k) for k in overrides}
    for k, v in overrides.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    cores = os.cpu_count() or 1
    threads_label = threads or str(cores if workers == 1 else max(1, cores // workers))
    stack = Stack(workdir, f"fanout-{workers}-{threads or 'default'}")
    runs = []
    try:
        stack.start()
        deadline = time.monotonic() + 180
        while stack.log_text().count("model registry ready") < workers and time.monotonic() < deadline:
            time.sleep(0.5)
        with httpx.Client(base_url=stack.base_url, headers=AUTH, timeout=30) as client:
            for n, size in enumerate(sizes):
                text = texts.text_of(size, 5 + 7 * n)
                started = time.monotonic()
                got = client.post("/api/v1/tts/convert", json={"text": text})
                got.raise_for_status()
                task_id = got.json()["conversion_id"]
                while True:
                    status = client.get(f"/api/v1/tts/{task_id}").json()["status"]
                    if status in ("done", "failed"):
                        break
                    if time.monotonic() - started > 900:
                        raise TimeoutError(f"{size} characters not done in 900 s")
                    time.sleep(0.2)
                e2e = time.monotonic() - started
                if status != "done":
                    raise RuntimeError(f"the {size}-character task failed; see {stack.log_path}")
                time.sleep(1.0)  # the worker's log lines after the status
                run = StackRun(workers, threads_label, size, len(text), 0, e2e, 0.0, [], {})
                for record in _records(stack.log_text()):
                    if record.get("task_id") != task_id:
                        continue
                    if record.get("message") == "part stored":
                        seconds = float(record.get("synthesis_s", 0.0))
                        run.synthesis_s.append(seconds)
                        run.by_worker.setdefault(str(record.get("worker")), []).append(seconds)
                    elif record.get("message") == "task done":
                        run.join_s = float(record.get("join_s", 0.0))
                        run.parts = int(record.get("parts", 0))
                runs.append(run)
                log(
                    f"{workers} worker(s) x {threads_label} thread(s), {len(text):,} chars: {e2e:.1f} s, "
                    f"{run.parts} parts, "
                    f"join {run.join_s:.2f} s, by worker { ({k: len(v) for k, v in run.by_worker.items()}) }"
                )
    finally:
        stack.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return runs


# -- 4. the model -----------------------------------------------------------------------------------------


def fit_overhead(runs: Sequence[StackRun]) -> tuple[float, float]:
    """(F, q): end-to-end minus join minus the busiest worker's synthesis = F + q x its parts (least squares;
    q at least 0)."""
    xs = np.array([r.rounds for r in runs], dtype=float)
    ys = np.array([r.overhead_s for r in runs], dtype=float)
    if len(runs) >= 2 and np.ptp(xs) > 0:
        q, f = np.polyfit(xs, ys, 1)
        if q >= 0:
            return float(f), float(q)
    return float(ys.mean()), 0.0


def default_parts_concurrency() -> int:
    """The parts event source's max_concurrency on a default deployment (infra/capabilities/lambda_worker.py:
    worker_max_concurrency less a quarter, at least 2)."""
    import dataclasses

    from infra.config import DeploymentConfig

    [field_] = [f for f in dataclasses.fields(DeploymentConfig) if f.name == "worker_max_concurrency"]
    jobs = int(field_.default)  # type: ignore[arg-type]
    return max(2, jobs - max(1, jobs // 4))


def lambda_seconds(
    *, parts: int, k: int, part_chars: int, rate: float, fixed_s: float, per_part_s: float, join_s: float
) -> float:
    return fixed_s + COLD_START_S + math.ceil(parts / k) * (part_chars / rate + per_part_s) + join_s


def measure(*, command: str, quick: bool) -> FanoutResults:
    from bench.harness import machine
    from tts_common.settings import DEFAULT_FANOUT_MIN_CHARS, DEFAULT_PART_CHARS

    started = time.perf_counter()
    info = machine()
    results = FanoutResults(
        command=command,
        quick=quick,
        cpu=info.cpu,
        cores=info.cores,
        part_chars=DEFAULT_PART_CHARS,
        min_chars=DEFAULT_FANOUT_MIN_CHARS,
        measured_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    results.load["before"] = os.getloadavg()
    log("the full MMS architecture's speed")
    results.mms, results.audio_s_per_char = mms_rates(quick)
    _release_freed_memory()
    log("the join, at MMS size, on moto")
    results.joins = joins(
        chars=SIZES[-1], audio_s_per_char=results.audio_s_per_char, part_chars=results.part_chars
    )
    results.load["after the join"] = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as workdir:
        for workers, threads in STACK_CONFIGS:
            log(f"local stack, {workers} worker process(es), TTS_NUM_THREADS {threads or 'default'}")
            results.runs += stack_runs(workers, threads, SIZES, Path(workdir))
    results.load["after"] = os.getloadavg()
    results.elapsed_s = time.perf_counter() - started
    return results


# -- the document -----------------------------------------------------------------------------------------


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def block(found: FanoutResults | None) -> list[str]:
    lines = [FANOUT_BEGIN, FANOUT_HEADING, ""]
    if found is None:
        return [
            *lines,
            "Not measured yet: `python -m bench.run --fanout-only` writes this section.",
            "",
            FANOUT_END,
        ]
    fast = max(found.mms, key=lambda m: m.chars_per_s)
    slow = min(found.mms, key=lambda m: m.chars_per_s)
    rates = [("r", fast.chars_per_s), ("r_plan", PLANNING_RATE)]
    fixed_s, per_part_s = fit_overhead(found.runs)
    wav = next((j for j in found.joins if j.format == "wav"), None)
    join_s = wav.seconds if wav is not None else 0.0
    long_runs = [r for r in found.runs if r.size == SIZES[-1] and r.parts]
    parts = long_runs[0].parts if long_runs else math.ceil(SIZES[-1] / found.part_chars)
    longest_part = found.part_chars * 1.25  # a last part under a quarter joins the one before
    loads = "; ".join(f"{k} {_load(v)}" for k, v in found.load.items())
    lines += [
        f"Measured {found.measured_at} by `{found.command}` on {found.cpu}, {found.cores} usable cores; "
        f"load average (1, 5, 15 min): {loads}. A shared machine: other processes held cores throughout, "
        f"so the absolute figures are pessimistic. Wall time {found.elapsed_s / 60:.1f} min. Defaults "
        f"measured: TTS_FANOUT_MIN_CHARS={found.min_chars:,}, TTS_PART_CHARS={found.part_chars:,}.",
        "",
        "### End to end on the local stack",
        "",
        f"`python -m local.stack` on free ports, model **{found.stack_model}** (the tiny random VITS the "
        "local stack serves: these rows are the pipeline's costs, not MMS's synthesis time). Each text "
        "submitted alone; *end to end*: from the POST to the status `done` (polled every 0.2 s). *Busiest "
        "worker*: the synthesis seconds of the parts the busiest worker stored (log `part stored`); *join*: "
        "the join job's seconds (log `task done`, `join_s`); *overhead*: end to end minus both (submit, "
        "plan, queue hops, status events, polling; POLL_WAIT_S=1).",
        "",
        "| workers | torch threads each | characters | parts | end to end (s) | busiest worker's synthesis "
        "(s) | parts per worker | join (s) | overhead (s) |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in found.runs:
        split = " / ".join(str(len(v)) for v in sorted(r.by_worker.values(), key=len, reverse=True))
        lines.append(
            f"| {r.workers} | {r.threads} | {r.chars:,} | {r.parts} | **{r.e2e_s:.1f}** | "
            f"{r.critical_s:.1f} | {split} | {r.join_s:.2f} | {r.overhead_s:.1f} |"
        )
    by = {(r.workers, r.threads, r.size): r for r in found.runs}
    notes = []
    for size in SIZES:
        two = [r for (workers, _, nominal), r in by.items() if workers == 2 and nominal == size]
        if not two:
            continue
        for (workers, threads, nominal), run in by.items():
            if workers == 1 and nominal == size:
                notes.append(
                    f"{size:,} characters, 1 worker at {threads} thread(s): {run.e2e_s / two[0].e2e_s:.2f}x "
                    "as long"
                )
    lines += [
        "",
        "- One worker against two (1 thread each): " + "; ".join(notes) + ". On these 2 cores two "
        "workers share what one had; one worker at every core's threads is slower than at 1 thread when "
        "other processes hold cores (torch's small encoder and flow operations; the issue saw them ~20-fold "
        "slower), so the 1-thread rows tell what a second worker adds.",
        "",
        "### The full MMS architecture, per part",
        "",
        f"`{MMS_MODEL}` (36.3M parameters, random weights, real MMS speaking pace), one synthesize() call "
        "per sentence piece as the CPU worker makes them (the worker's path as it is in this tree).",
        "",
        "| torch threads | characters | pieces | seconds | chars/s | audio s per char | one part of "
        f"{found.part_chars:,} chars (s, extrapolated) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in found.mms:
        lines.append(
            f"| {m.threads} | {m.chars:,} | {m.pieces} | {m.seconds:.1f} | {m.chars_per_s:.1f} | "
            f"{m.audio_s / m.chars:.3f} | {found.part_chars / m.chars_per_s:.0f} |"
        )
    lines += [
        "",
        f"A whole part was not synthesized (~{found.part_chars / fast.chars_per_s / 60:.0f} to "
        f"{found.part_chars / slow.chars_per_s / 60:.0f} min here): its time is the rate measured above "
        "times its length, extrapolated. Sentence pieces keep the rate flat with text length (the "
        "piece-length table above), so the extrapolation is linear.",
        "",
        "### The join",
        "",
        f"Parts as MMS makes them for a {SIZES[-1]:,}-character text ({found.audio_s_per_char:.3f} s "
        "of audio per character, 16 kHz s16le, pieces of ~240 characters), stored in a moto server in its "
        "own process; `tts_worker.fanout.join_audio` in this one, so neither the objects nor the uploads "
        "count. *Peak allocations*: tracemalloc's peak during a second, untimed join (every Python and numpy "
        "buffer the join holds; libsndfile's encoder state is outside it). *RSS growth*: the process's peak "
        "RSS during the timed join above its RSS before (sampled every 5 ms; pages freed by an earlier step "
        "and reused do not show, so it is a floor).",
        "",
        "| format | path | parts | audio (MiB) | file (MiB) | join (s) | peak allocations (MiB) | "
        "RSS growth (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for j in found.joins:
        path = "UploadPartCopy, header last" if j.format == "wav" else "streaming re-encode"
        lines.append(
            f"| {j.format} | {path} | {j.parts} | {j.pcm_bytes / 2**20:.0f} | {j.file_bytes / 2**20:.0f} | "
            f"{j.seconds:.2f} | **{j.traced_mib:.1f}** | {j.peak_mib:.0f} |"
        )
    default_k = default_parts_concurrency()
    lines += [
        "",
        "On S3 the copies are server-side; the re-encode's time grows with the audio (it reads and encodes "
        "every sample), its memory does not (tests/worker/test_fanout.py: bounded by its blocks).",
        "",
        "### Lambda with K concurrent workers: the model",
        "",
        "    T(K) = F + C + ceil(P / K) x (TTS_PART_CHARS / r + q) + J",
        "",
        f"- P: parts, about ceil(characters / TTS_PART_CHARS) (parts end at piece boundaries); for "
        f"{SIZES[-1]:,} characters P = {parts}, as the stack's plan made them.",
        f"- r: MMS chars/s on Lambda's CPU, not measured there (x86 or Graviton), so assumed twice: **r = "
        f"{fast.chars_per_s:.1f}**, this run's fastest ({fast.threads} torch thread(s) on this EPYC; "
        f"{slow.threads} threads gave {slow.chars_per_s:.1f} with other processes on the cores), and "
        f"**r_plan = {PLANNING_RATE}**, the slowest rate this file states (1 vCPU: the cost table's Lambda "
        "1,769 MB row), the planning figure for the 15-minute limit. The default 3,008 MB has ~1.7 vCPUs.",
        f"- F = {fixed_s:.2f} s fixed and q = {per_part_s:.2f} s per part in sequence (queue hop, part "
        "bookkeeping, status events): least squares of the stack runs' overhead column against their "
        "busiest worker's parts.",
        f"- J = {join_s:.2f} s: the WAV join of the {SIZES[-1]:,}-character text above (moto; on S3 the "
        "copies are server-side).",
        f"- C = {COLD_START_S} s: one worker cold start (the cold start table above), paid once per text "
        "when the parts wake K new instances at the same time.",
        f"- K: the parts event source's concurrency (SQS wakes that many invocations); a default deployment "
        f"gives the parts {default_k} (worker_max_concurrency 5 less a quarter, so short jobs keep a slot). "
        "A part is one invocation: only a part, not the text, must fit Lambda's 15 minutes.",
        "",
        f"| K (concurrent workers) | {SIZES[-1]:,} characters at r (s) | (min) | at r_plan (s) | (min) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for k in sorted({*LAMBDA_K, default_k}):
        cells = []
        for _, rate in rates:
            t = lambda_seconds(
                parts=parts,
                k=k,
                part_chars=found.part_chars,
                rate=rate,
                fixed_s=fixed_s,
                per_part_s=per_part_s,
                join_s=join_s,
            )
            cells.append(f"{t:,.0f} | {t / 60:.1f}")
        label = f"{k} (default deployment)" if k == default_k else str(k)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    singles = [SIZES[-1] / rate for _, rate in rates]
    lines += [
        "| no fan-out (one job) | " + " | ".join(f"{t:,.0f} | {t / 60:.1f}" for t in singles) + " |",
        "",
        f"Past K = P ({parts}) every part runs at once: the time is one part's plus F, C and J. Without "
        "fan-out the text is one job, past Lambda's 15 minutes at either rate.",
        "",
        "### The defaults, checked",
        "",
    ]
    once = fixed_s + COLD_START_S + join_s
    for name, rate in rates:
        part_s = found.part_chars / rate
        lines.append(
            f"- At {name} = {rate:.1f} chars/s: a part of {found.part_chars:,} characters {part_s:.0f} s; "
            f"the per-part overhead q is {per_part_s / part_s:.2%} of it, and a cold start (paid once by "
            f"each new instance, so by every part when K >= P) {COLD_START_S / part_s:.1%}; F + C + J = "
            f"{once:.0f} s once per text ({once / (SIZES[-1] / rate):.2%} of the {SIZES[-1]:,}-character "
            "text's synthesis). The "
            f"longest part ({longest_part:,.0f} characters: a last part under a quarter of TTS_PART_CHARS "
            f"joins the one before) **{longest_part / rate:.0f} s = "
            f"{longest_part / rate / LAMBDA_LIMIT_S:.0%} of Lambda's 15 minutes**; the longest text that "
            f"is one job ({found.min_chars - 1:,} "
            f"characters) {(found.min_chars - 1) / rate:.0f} s = "
            f"{(found.min_chars - 1) / rate / LAMBDA_LIMIT_S:.0%}."
        )
    plan_part = longest_part / PLANNING_RATE / LAMBDA_LIMIT_S
    verdict = (
        "So the defaults stand: the fan-out's own overhead is a fraction of a percent, a cold start a few "
        "percent of a part, and at r_plan the longest part and the longest single job stay within about "
        "two thirds of Lambda's 15 minutes. Larger parts would cut the cold-start share but eat that margin; "
        "smaller ones give more parallelism per text (lower TTS_PART_CHARS for that) at a larger share."
        if plan_part <= 0.67 and (found.min_chars - 1) / PLANNING_RATE <= 0.67 * LAMBDA_LIMIT_S
        else "At r_plan a part or a single job comes closer than two thirds of Lambda's 15 minutes: lower "
        "TTS_PART_CHARS / TTS_FANOUT_MIN_CHARS."
    )
    lines += ["", verdict, "", FANOUT_END]
    return lines


def splice(text: str, section: list[str]) -> str:
    new = "\n".join(section)
    start = text.find(FANOUT_BEGIN)
    end = text.find(FANOUT_END, start)
    if start >= 0 and end >= 0:
        return text[:start] + new + text[end + len(FANOUT_END) :]
    anchor = text.find("## Cost per million characters")
    if anchor >= 0:
        return f"{text[:anchor]}{new}\n\n{text[anchor:]}"
    return f"{text.rstrip()}\n\n{new}\n"


def write(found: FanoutResults, *, document: Path) -> None:
    text = document.read_text(encoding="utf-8") if document.is_file() else "# Benchmarks\n"
    document.parent.mkdir(parents=True, exist_ok=True)
    document.write_text(splice(text, block(found)), encoding="utf-8")
