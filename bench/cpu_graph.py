"""The whole VITS graph on ONNX Runtime (TTS_CPU_GRAPH=onnx) against today's CPU path and the seed style, on a
free machine and with a second process burning one core.

    python -m bench.run --cpu-graph-only [--quick] [--model mms-random] [--no-write]

Every path speaks the same Finnish texts through the worker core (harness.worker: jobs in, WAV bytes out),
except the seed style (harness.seed_style: one `model(...)` per text). The burner is `python -c 'while True:
pass'` pinned to the last core, running through a round of burned runs. The fp32 peak is the better of a
square float32 matmul on torch and on ONNX Runtime (its best before and after the runs); the model's cost
per second of audio is counted by torch's FlopCounterMode over one eager forward (matmuls and convolutions,
2 FLOPs per multiply-add), so "share of peak" = GFLOP per audio second x audio seconds per wall second /
peak GFLOP/s. Each variant's figure is the median of 3 rounds (1 with --quick), the variants taking turns
within a round.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench import harness, texts
from bench.harness import Job, Machine, Run, make_jobs, median_run
from tts_common.voice import DEFAULT_MAX_PIECE_CHARS
from tts_worker.synthesizer.base import SynthesisItem
from tts_worker.synthesizer.cpu_threads import pin_this_thread
from tts_worker.synthesizer.vits import ONNX_DECODE_CHUNK_FRAMES, VitsSynthesizer
from tts_worker.text_split import split_text

BEGIN = "<!-- bench.cpu_graph: written by `python -m bench.run` or `--cpu-graph-only` -->"
END = "<!-- /bench.cpu_graph -->"
HEADING = "## The whole VITS graph on ONNX Runtime (CPU)"
GOAL_SLOWDOWN = 1.3
SEED = "seed"
TODAY = "today"
GRAPH = "graph"


@dataclass(frozen=True, slots=True)
class Variant:
    key: str  # SEED, TODAY or GRAPH: which path
    label: str
    torch_threads: int
    onnx_threads: int


@dataclass(frozen=True, slots=True)
class Measured:
    variant: Variant
    free: Run
    burned: Run

    @property
    def slowdown(self) -> float:
        return self.free.chars_per_s / self.burned.chars_per_s


@dataclass
class GraphResults:
    machine: Machine
    model: str
    command: str
    texts: tuple[int, int, int]  # (texts, characters in all, pieces)
    # threads -> runtime -> fp32 matmul GFLOP/s
    peak_gflops: dict[int, dict[str, float]] = field(default_factory=dict)
    gflop_per_audio_s: float = 0.0
    measured: list[Measured] = field(default_factory=list)
    equal_durations: bool = False
    largest_difference: float = 0.0  # graph vs today, largest sample difference, same items
    elapsed_s: float = 0.0

    def of(self, key: str, threads: int) -> Measured | None:
        for m in self.measured:
            if m.variant.key == key and m.variant.torch_threads == threads:
                return m
        return None

    @property
    def peak(self) -> float:
        return max(g for by_runtime in self.peak_gflops.values() for g in by_runtime.values())

    def share_of_peak(self, run: Run) -> float:
        return self.gflop_per_audio_s * run.audio_per_wall / self.peak


def log(message: str) -> None:
    print(f"[bench cpu-graph {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def matmul_peak(threads: int, *, size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """fp32 GFLOP/s of a square matmul on `threads` threads (the best of `repeats`), on torch and on ONNX
    Runtime (its own GEMM, MLAS, which is what the decoder's convolutions run on)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    pin_this_thread(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    spec = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "ABC"]
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["C"])], "mm", spec[:2], spec[2:])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {"A": a.numpy(), "B": b.numpy()}
    calls: dict[str, Callable[[], object]] = {
        "torch": lambda: torch.mm(a, b),
        "onnxruntime": lambda: session.run(None, feeds),
    }
    found = {}
    for name, call in calls.items():
        call()
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - started)
        found[name] = 2 * size**3 / best / 1e9
    return found


def gflop_per_audio_second(synthesizer: VitsSynthesizer, text: str) -> float:
    """FLOPs of one eager forward of `text` (matmuls and convolutions) per second of its audio."""
    from torch.utils.flop_counter import FlopCounterMode

    from tts_worker.synthesizer.vits_forward import ForwardItem, forward_items

    ids = synthesizer.token_ids(text) or [0]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:  # inference_mode hides weight-norm parametrizations from the counter
        output = forward_items(synthesizer.model, [ForwardItem(ids, 0, 1.0, 0.667, 0.8)])
    seconds = output.lengths[0] / synthesizer.sampling_rate
    return float(counter.get_total_flops()) / 1e9 / seconds


@contextmanager
def burner(core: int) -> Iterator[None]:
    """A busy loop in another process, pinned to `core`, for as long as the block runs."""
    process = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"], preexec_fn=lambda: os.sched_setaffinity(0, {core})
    )
    try:
        time.sleep(0.5)  # running before the timed part starts
        yield
    finally:
        process.kill()
        process.wait()


def _measure_peaks(results: GraphResults, cores: int) -> None:
    """The matmul peaks, each kept at its best over every time this runs."""
    for threads in sorted({1, cores}):
        for runtime, gflops in matmul_peak(threads).items():
            kept = results.peak_gflops.setdefault(threads, {})
            kept[runtime] = max(kept.get(runtime, 0.0), gflops)
    pin_this_thread(cores)


def _variants(cores: int) -> list[Variant]:
    found = [
        Variant(SEED, "seed style (one text per forward, torch eager)", cores, cores),
        Variant(TODAY, "worker today (torch front and flow, ONNX Runtime decoder)", cores, cores),
        Variant(TODAY, "worker today, torch at 1 thread (decoder on all cores)", 1, cores),
        Variant(GRAPH, "worker, whole graph on ONNX Runtime (TTS_CPU_GRAPH=onnx)", cores, cores),
    ]
    if cores > 1:
        found += [
            Variant(TODAY, "worker today, 1 thread (torch and ONNX Runtime)", 1, 1),
            Variant(GRAPH, "worker, whole graph on ONNX Runtime, 1 thread", 1, 1),
        ]
    return found


def _synthesizers(base: VitsSynthesizer, model_name: str) -> Callable[[Variant], VitsSynthesizer]:
    """The loaded model run as `variant` says, its ONNX sessions with the variant's threads."""
    from tts_worker.synthesizer import onnx_graph
    from tts_worker.synthesizer.onnx_decoder import OnnxDecoder

    decoder = base.cpu_decoder
    graph = base.cpu_graph
    if not isinstance(decoder, OnnxDecoder) or not isinstance(graph, onnx_graph.CpuGraph):
        raise SystemExit("the CPU graph benchmark needs the decoder and the graph on ONNX Runtime")

    def make(variant: Variant) -> VitsSynthesizer:
        session = OnnxDecoder(decoder.path, threads=variant.onnx_threads)
        cpu_graph = None
        if variant.key == GRAPH:
            stages = onnx_graph.OnnxStages(*graph.paths, threads=variant.onnx_threads)
            cpu_graph = onnx_graph.CpuGraph(
                base.model, stages, session, decode_chunk_frames=ONNX_DECODE_CHUNK_FRAMES
            )
        return VitsSynthesizer(
            model=base.model,
            tokenizer=base.tokenizer,
            model_id=model_name,
            cpu_decoder=session,
            cpu_graph=cpu_graph,
        )

    return make


def _run(variant: Variant, synthesizer: VitsSynthesizer, jobs: list[Job]) -> Run:
    pin_this_thread(variant.torch_threads)
    if variant.key == SEED:
        return harness.seed_style(synthesizer, jobs)
    return harness.worker(synthesizer, jobs, max_batch=16)


def measure(base: VitsSynthesizer, *, model: str, command: str, quick: bool) -> GraphResults:
    """Every variant free, then with a core burned, alternating, on the same jobs."""
    started = time.perf_counter()
    machine = harness.machine()
    cores = machine.cores
    sample = texts.texts(60, 3, offset=7) if quick else [*texts.texts(60, 4, offset=7), texts.text_of(240, 3)]
    jobs = make_jobs(sample, prefix="graph", model_id=model)
    pieces = sum(len(split_text(t, DEFAULT_MAX_PIECE_CHARS)) for t in sample)
    results = GraphResults(machine, model, command, (len(sample), sum(len(t) for t in sample), pieces))
    _measure_peaks(results, cores)
    pin_this_thread(cores)
    results.gflop_per_audio_s = gflop_per_audio_second(base, texts.text_of(120, 1))
    log(
        f"peak fp32 matmul {results.peak_gflops} GFLOP/s; the model costs "
        f"{results.gflop_per_audio_s:.1f} GFLOP per second of audio"
    )
    make = _synthesizers(base, model)
    variants = _variants(cores)
    synthesizers = [make(v) for v in variants]
    for variant, synthesizer in zip(variants, synthesizers, strict=True):
        _run(variant, synthesizer, jobs[:1])  # warm: sessions, allocator, this thread count
    runs: dict[tuple[int, bool], list[Run]] = {}
    rounds = 1 if quick else 3
    for n in range(rounds):
        # Free, then burned, every variant in turn (reversed every other round): a change in the machine's
        # other load falls on every variant alike, and medians over rounds drop the outliers.
        order = list(range(len(variants)))[:: 1 if n % 2 == 0 else -1]
        for burned in (False, True):
            with burner(cores - 1) if burned else contextlib.nullcontext():
                for i in order:
                    runs.setdefault((i, burned), []).append(_run(variants[i], synthesizers[i], jobs))
        log(f"round {n + 1} of {rounds} done")
    for i, variant in enumerate(variants):
        measured = Measured(variant, median_run(runs[i, False]), median_run(runs[i, True]))
        results.measured.append(measured)
        log(
            f"{variant.label}: {measured.free.chars_per_s:.1f} chars/s free, "
            f"{measured.burned.chars_per_s:.1f} with a core burned ({measured.slowdown:.2f}x slower)"
        )
    pin_this_thread(cores)

    today, graph = synthesizers[1], synthesizers[3]
    items = [SynthesisItem(text=t, seed=n) for n, t in enumerate(sample)]
    with torch.inference_mode():
        a, b = today.synthesize(items), graph.synthesize(items)
    results.equal_durations = all(x.timing == y.timing for x, y in zip(a, b, strict=True))
    results.largest_difference = max(
        float(np.abs(x.waveform - y.waveform).max()) if x.waveform.shape == y.waveform.shape else float("inf")
        for x, y in zip(a, b, strict=True)
    )
    _measure_peaks(results, cores)  # again: a peak taken while another process held a core is not one
    machine.load_after = os.getloadavg()
    results.elapsed_s = time.perf_counter() - started
    return results


# -- the section ---------------------------------------------------------------------------------------------


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def block(results: GraphResults | None) -> list[str]:
    lines = [BEGIN, HEADING, ""]
    if results is None:
        return [
            *lines,
            "Not measured yet: `python -m bench.run --cpu-graph-only` writes this section.",
            "",
            END,
        ]
    m = results.machine
    count, chars, pieces = results.texts
    peak = results.peak
    seed = results.of(SEED, m.cores)
    today = results.of(TODAY, m.cores)
    kind = "the full MMS architecture" if results.model.startswith("mms") else "a cut-down MMS architecture"
    lines += [
        f"Measured by `{results.command}` on {m.cpu}, {m.cores} usable cores, onnxruntime {m.onnxruntime}, "
        f"torch {m.torch}; load average (1, 5, 15 min) before {_load(m.load_before)}, after "
        f"{_load(m.load_after)} (a shared machine: read the ratios). Model `{results.model}` ({kind}, random "
        f"weights). {count} Finnish texts, {chars:,} characters in {pieces} pieces, "
        "through the worker core; the seed style speaks each text in one forward.",
        "",
        "*Whole graph*: text encoder and duration predictor, then the flow, exported to ONNX "
        "(`tts_worker/synthesizer/onnx_graph.py`) beside the decoder's export, with each piece's noise drawn "
        "on the host from its own seeded generator exactly as the torch path draws it and fed in as inputs. "
        "*Burned*: a busy loop in a second process, pinned to the last core, for the whole run.",
        "",
        "| path | chars/s | vs seed style | vs worker today | share of fp32 peak | chars/s, a core burned "
        "| slowdown |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for measured in results.measured:
        run = measured.free
        versus_seed = f"{run.chars_per_s / seed.free.chars_per_s:.2f}x" if seed else ""
        versus_today = f"{run.chars_per_s / today.free.chars_per_s:.2f}x" if today else ""
        slowdown = f"{measured.slowdown:.2f}x"
        if measured.slowdown < GOAL_SLOWDOWN:
            slowdown = f"**{slowdown}**"
        lines.append(
            f"| {measured.variant.label} | {run.chars_per_s:.1f} | {versus_seed} | {versus_today} | "
            f"{results.share_of_peak(run):.0%} | {measured.burned.chars_per_s:.1f} | {slowdown} |"
        )
    ceiling = peak / results.gflop_per_audio_s
    per_char = (today.free.audio_s / today.free.chars) if today else 0.0
    met = [m.variant.label for m in results.measured if m.slowdown < GOAL_SLOWDOWN]
    peaks = "; ".join(
        f"{t} thread(s): " + ", ".join(f"{name} {g:,.0f}" for name, g in by_runtime.items())
        for t, by_runtime in results.peak_gflops.items()
    )
    lines += [
        "",
        f"- fp32 peak, GFLOP/s of a 2048x2048 float32 matmul: {peaks}; the best, {peak:,.0f}, is the peak "
        "the share column divides by. The model costs "
        f"{results.gflop_per_audio_s:.1f} GFLOP "
        f"per second of audio (FlopCounterMode, one eager forward), so the machine's fp32 ceiling is "
        f"{ceiling:.1f} s of audio per second"
        + (f", ~{ceiling / per_char:,.0f} chars/s at this model's pace." if per_char else "."),
        f"- Same speech: the whole graph gave every token the same durations as today's path "
        f"({'yes' if results.equal_durations else 'NO'}), largest sample difference "
        f"{results.largest_difference:.2g} (full scale 1.0). Every start checks the exports against eager "
        "(durations equal, audio within 1e-3) before using them.",
        f"- Goal, slowdown under {GOAL_SLOWDOWN}x with a core burned: "
        + (f"met by {'; '.join(met)}." if met else "met by none.")
        + " With all cores in use, the thread that shares its core with the burner gets half of it and the "
        "others wait for it at every parallel step, so no all-core path can do better than ~1.33x on 2 "
        "cores; a path on 1 thread runs on the free core.",
        "",
        END,
    ]
    return lines


def splice(text: str, section: list[str]) -> str:
    new = "\n".join(section)
    start = text.find(BEGIN)
    end = text.find(END, start)
    if start >= 0 and end >= 0:
        return text[:start] + new + text[end + len(END) :]
    return f"{text.rstrip()}\n\n{new}\n"


def write(results: GraphResults, *, document: Path) -> None:
    text = document.read_text(encoding="utf-8") if document.is_file() else "# Benchmarks\n"
    document.parent.mkdir(parents=True, exist_ok=True)
    document.write_text(splice(text, block(results)), encoding="utf-8")
