"""`make bench`: the seed-style path and the worker side by side on the same Finnish texts.

    python -m bench.run [--quick] [--rounds N] [--model mms-random] [--device auto|cpu|cuda] [--no-models]
    python -m bench.run --models-only [--quick]
    python -m bench.run --marks-only [--quick] [--no-write]
    python -m bench.run --cpu-graph-only [--quick] [--no-write]
    python -m bench.run --fanout-only [--quick] [--no-write]

Prints the main table and writes docs/BENCHMARKS.md and docs/bench_throughput.png (on CUDA, when torch sees
a GPU: docs/BENCHMARKS_CUDA.md and docs/bench_throughput_cuda.png). About 6 minutes on a 2-core CPU, 2 with
--quick. On a CPU it ends with the many-models part (bench/models.py: model switches from the image directory
and from a model store on moto, mixed-language bursts; a few minutes more), which `--models-only` runs alone,
rewriting only that section of docs/BENCHMARKS.md. Then the long texts' fan-out (bench/fanout.py: the local
stack with 1 and 2 workers, the join, a model of Lambda with K workers; ~4 minutes, `--fanout-only` alone,
`--no-fanout` skips it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import get_args

import torch

from bench import cpu_graph as bench_cpu_graph
from bench import fanout as bench_fanout
from bench import harness, models, texts
from bench import marks as bench_marks
from bench.harness import Run, make_jobs, median_run
from bench.report import CATEGORIES, Results, models_block, summary, write, write_models
from tts_common.settings import Device, Dtype
from tts_worker.synthesizer.vits import VitsSynthesizer
from tts_worker.text_split import split_text

ROOT = Path(__file__).resolve().parent.parent
# A CPU run writes BENCHMARKS.md; a CUDA run writes its own pair, so neither overwrites the other.
OUTPUTS = {
    "cpu": (ROOT / "docs" / "BENCHMARKS.md", ROOT / "docs" / "bench_throughput.png"),
    "cuda": (ROOT / "docs" / "BENCHMARKS_CUDA.md", ROOT / "docs" / "bench_throughput_cuda.png"),
}
SAVED = ROOT / ".cache" / "bench_results.pickle"
SAVED_MODELS = ROOT / ".cache" / "bench_models.pickle"
SAVED_FANOUT = ROOT / ".cache" / "bench_fanout.pickle"

# (characters per text, texts) per set: modest on a CPU, enough to fill batches on a GPU.
CPU_SETS = {"short": (60, 6), "medium": (240, 3), "long": (1000, 1)}
CPU_QUICK_SETS = {"short": (60, 4), "medium": (240, 2), "long": (500, 1)}
CUDA_SETS = {"short": (60, 128), "medium": (240, 64), "long": (1000, 8)}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cold_start(path: str, model: str, device: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    output = subprocess.run(
        [sys.executable, "-m", "bench.coldstart", path, model, device],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def side_by_side(
    synthesizer: VitsSynthesizer, results: Results, sets: dict[str, tuple[int, int]], rounds: int
) -> None:
    for offset, category in enumerate(CATEGORIES):
        size, count = sets[category]
        jobs = make_jobs(texts.texts(size, count, offset=offset), prefix=category, model_id=results.model)
        results.sizes[category] = (size, count)
        found: dict[str, list[Run]] = {"seed": [], "worker": []}
        for n in range(rounds):
            # Alternate which goes first, so neither always meets the machine's warmer (or busier) moment.
            order = ("seed", "worker") if n % 2 == 0 else ("worker", "seed")
            for path in order:
                if path == "seed":
                    run = harness.seed_style(synthesizer, jobs)
                else:
                    run = harness.worker(synthesizer, jobs, max_batch=results.max_batch)
                found[path].append(run)
                log(f"{category} round {n + 1} {path}: {run.chars_per_s:,.1f} chars/s")
        results.runs[category] = {path: median_run(runs) for path, runs in found.items()}
        if results.device == "cuda" or category != "long":
            results.raw[category] = harness.raw_model(synthesizer, jobs, batch=results.max_batch)


def cpu_sweeps(synthesizer: VitsSynthesizer, results: Results, quick: bool) -> None:
    from tts_worker.synthesizer import onnx_graph
    from tts_worker.synthesizer.cpu_threads import pin_this_thread
    from tts_worker.synthesizer.onnx_decoder import OnnxDecoder
    from tts_worker.synthesizer.vits import VitsSynthesizer

    cores = results.machine.cores
    short = texts.texts(60, 4 if quick else 6, offset=5)
    jobs = make_jobs(short, prefix="threads", model_id=results.model)
    onnx = synthesizer.cpu_decoder
    onnx_path = onnx.path if isinstance(onnx, OnnxDecoder) else None

    def variant(*, batch_forward: bool | None = None, onnx_threads: int | None = None) -> VitsSynthesizer:
        """The loaded model run another way; its decoder (and its front and flow, when the worker runs
        them there) on ONNX Runtime with `onnx_threads` threads."""
        decoder = None
        if onnx_path is not None and onnx_threads is not None:
            decoder = OnnxDecoder(onnx_path, threads=onnx_threads)
        graph = synthesizer.cpu_graph
        cpu_graph = None
        if decoder is not None and onnx_threads is not None and isinstance(graph, onnx_graph.CpuGraph):
            stages = onnx_graph.OnnxStages(*graph.paths, threads=onnx_threads)
            cpu_graph = onnx_graph.CpuGraph(
                synthesizer.model, stages, decoder, decode_chunk_frames=graph.decode_chunk_frames
            )
        return VitsSynthesizer(
            model=synthesizer.model,
            tokenizer=synthesizer.tokenizer,
            model_id=results.model,
            batch_forward=batch_forward,
            cpu_decoder=decoder,
            cpu_graph=cpu_graph,
        )

    single = variant(onnx_threads=1)
    pin_this_thread(1)
    one_thread = harness.worker(single, jobs, max_batch=results.max_batch)
    pin_this_thread(cores)
    default = harness.worker(synthesizer, jobs, max_batch=results.max_batch)
    results.threads = [
        ("1 piece at a time, all cores (default)", default),
        ("1 piece at a time, 1 thread", one_thread),
    ]
    log("threads: " + ", ".join(f"{label}: {run.chars_per_s:,.1f}" for label, run in results.threads))

    if onnx_path is not None:
        eager = variant()
        results.runtimes = [
            ("ONNX Runtime (default)", default),
            ("torch eager", harness.worker(eager, jobs, max_batch=results.max_batch)),
        ]
        results.runtime_difference = harness.largest_difference(synthesizer, eager, short)
        log(
            "decoder runtime: "
            + ", ".join(f"{label}: {run.chars_per_s:,.1f}" for label, run in results.runtimes)
            + f"; largest sample difference {results.runtime_difference:.2g}"
        )

    padded = variant(batch_forward=True)
    results.batches["fp32"] = [
        (batch, harness.padded_batches(padded, short[: max(batch, 4)], batch=batch)) for batch in (1, 2, 4)
    ]
    log("padded batches: " + ", ".join(f"{b}: {r.chars_per_s:,.1f}" for b, r in results.batches["fp32"]))
    if quick:
        return

    sentence = [texts.one_long_sentence(480)]
    for limit in (100, 200, 400):
        piece_jobs = make_jobs(
            sentence, prefix=f"pieces-{limit}", model_id=results.model, max_piece_chars=limit
        )
        run = harness.worker(synthesizer, piece_jobs, max_batch=results.max_batch)
        results.pieces.append((limit, len(split_text(sentence[0], limit)), run))
    log("piece length: " + ", ".join(f"{n}: {r.chars_per_s:,.1f}" for n, _, r in results.pieces))

    results.decoder = harness.decoder_sweep(synthesizer.model, onnx)
    log("decoder: " + ", ".join(f"{label}: {v:.2f}" for label, v in results.decoder))


def cuda_sweeps(synthesizer: VitsSynthesizer, results: Results) -> None:
    from tts_worker.synthesizer.vits import VitsSynthesizer

    short = texts.texts(60, 64, offset=5)
    for precision, half in (("fp32", None), ("fp16 autocast", torch.float16)):
        variant = VitsSynthesizer(
            model=synthesizer.model, tokenizer=synthesizer.tokenizer, model_id=results.model, half=half
        )
        results.batches[precision] = [
            (batch, harness.padded_batches(variant, short, batch=batch)) for batch in (1, 4, 16, 64)
        ]
        log(f"{precision}: " + ", ".join(f"{b}: {r.chars_per_s:,.0f}" for b, r in results.batches[precision]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer and shorter inputs, no piece/decoder sweeps"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds per set (default 1 on CPU, 3 on CUDA)"
    )
    parser.add_argument("--model", default="mms-random", help="a generated model name, hub id or directory")
    parser.add_argument("--device", default="auto", choices=get_args(Device))
    parser.add_argument(
        "--dtype", default="auto", choices=get_args(Dtype), help="the worker's TTS_DTYPE (auto: fp16 on CUDA)"
    )
    parser.add_argument("--max-batch", type=int, default=None, help="TTS_MAX_BATCH (default 16 CPU, 64 CUDA)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument(
        "--models-only",
        action="store_true",
        help="only the many-models part (switches, mixed-language bursts): its section of BENCHMARKS.md",
    )
    parser.add_argument(
        "--no-models", action="store_true", help="skip the many-models part (its section is kept as it is)"
    )
    parser.add_argument(
        "--marks-only",
        action="store_true",
        help="only the speech marks' cost next to synthesis: its section of BENCHMARKS.md",
    )
    parser.add_argument(
        "--cpu-graph-only",
        action="store_true",
        help="only the whole graph on ONNX Runtime against today's path and the seed style (CPU)",
    )
    parser.add_argument(
        "--no-cpu-graph", action="store_true", help="skip that part (its section is kept as it is)"
    )
    parser.add_argument(
        "--fanout-only",
        action="store_true",
        help="only the long texts' fan-out (local stack, join, Lambda model): its section of BENCHMARKS.md",
    )
    parser.add_argument(
        "--no-fanout", action="store_true", help="skip the fan-out part (its section is kept as it is)"
    )
    parser.add_argument(
        "--render-only", action="store_true", help=f"rewrite docs/ from the last run's {SAVED.name}"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.render_only:
        results = pickle.loads(SAVED.read_bytes())  # our own file, written by the run below
        document, image = OUTPUTS[results.device]
        write(results, document=document, image=image)
        print("\n".join(summary(results)))
        return 0
    command = " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])])
    if args.models_only:
        return models_only(command, quick=args.quick, write_docs=not args.no_write)
    if args.fanout_only:
        return fanout_only(command, quick=args.quick, write_docs=not args.no_write)
    if args.cpu_graph_only:
        return cpu_graph_only(args.model, command=command, quick=args.quick, write_docs=not args.no_write)
    if args.marks_only:
        return marks_only(args.model, device=args.device, quick=args.quick, write_docs=not args.no_write)
    started = time.perf_counter()

    from tts_worker import prefetch
    from tts_worker.synthesizer import onnx_decoder, random_models
    from tts_worker.synthesizer.loader import load_synthesizer
    from tts_worker.synthesizer.vits import VitsSynthesizer, resolve_device

    device: Device = "cuda" if resolve_device(args.device).type == "cuda" else "cpu"
    if random_models.is_generated(args.model):
        model_dir = random_models.ensure_generated(args.model)  # built once, before anything is timed
        if device == "cpu" and onnx_decoder.available():
            prefetch.export_decoder(model_dir)  # where the image has it: cold starts find it there
    log(f"cold start on {device} (fresh interpreters)")
    cold = {path: cold_start(path, args.model, device) for path in ("seed", "worker")}

    synthesizer = load_synthesizer(args.model, device=device, dtype=args.dtype)
    assert isinstance(synthesizer, VitsSynthesizer)
    machine = harness.machine()
    results = Results(
        machine=machine,
        model=args.model,
        parameters_m=sum(p.numel() for p in synthesizer.model.parameters()) / 1e6,
        device=device,
        compute_dtype=str(synthesizer.half or torch.float32).replace("torch.", ""),
        decoder_runtime=synthesizer.decoder_runtime,
        graph_runtime=synthesizer.graph_runtime,
        command=command,
        quick=args.quick,
        max_batch=args.max_batch or (64 if device == "cuda" else 16),
        rounds=args.rounds or (3 if device == "cuda" else 1),
        cold=cold,
    )
    sets = CUDA_SETS if device == "cuda" else (CPU_QUICK_SETS if args.quick else CPU_SETS)
    log(f"side by side: {sets}, {results.rounds} round(s)")
    side_by_side(synthesizer, results, sets, results.rounds)
    if device == "cuda":
        cuda_sweeps(synthesizer, results)
    else:
        cpu_sweeps(synthesizer, results, args.quick)
    log("speech marks: their cost next to synthesis")
    marks_cost = bench_marks.measure(synthesizer, model=args.model, quick=args.quick)
    log(f"speech marks: {marks_cost.share:.3%} of synthesis")
    graph_results = None
    if device == "cpu" and not args.no_cpu_graph and synthesizer.cpu_graph is not None:
        log("the whole graph on ONNX Runtime: free and with a core burned")
        graph_results = bench_cpu_graph.measure(
            synthesizer, model=args.model, command=command, quick=args.quick
        )
    machine.load_after = os.getloadavg()
    if device == "cpu" and not args.no_models:
        del synthesizer  # the registries load their own models
        log("many models: switches and mixed-language bursts")
        results.models = models.measure(command=command, quick=args.quick, max_batch=results.max_batch)
    fanout_found = None
    if device == "cpu" and not args.no_fanout:
        log("long texts: fan-out on the local stack, the join, Lambda with K workers")
        fanout_found = bench_fanout.measure(command=command, quick=args.quick)
    results.elapsed_s = time.perf_counter() - started

    print("\n".join(summary(results)))
    for path, figures in cold.items():
        print(f"cold start {path}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
    if not args.no_write:
        SAVED.parent.mkdir(parents=True, exist_ok=True)
        SAVED.write_bytes(pickle.dumps(results))
        document, image = OUTPUTS[device]
        write(results, document=document, image=image)
        bench_marks.write(marks_cost, document=document)
        if graph_results is not None:
            bench_cpu_graph.write(graph_results, document=document)
        if fanout_found is not None:
            bench_fanout.write(fanout_found, document=document)
        print(f"wrote {document.relative_to(ROOT)} and {image.relative_to(ROOT)}")
    return 0


def cpu_graph_only(model: str, *, command: str, quick: bool, write_docs: bool) -> int:
    """The whole-graph comparison alone (CPU), into its section of docs/BENCHMARKS.md."""
    from tts_worker.synthesizer import random_models
    from tts_worker.synthesizer.loader import load_synthesizer

    if random_models.is_generated(model):
        random_models.ensure_generated(model)  # built before anything is timed
    synthesizer = load_synthesizer(model, device="cpu", cpu_graph="onnx")
    assert isinstance(synthesizer, VitsSynthesizer)
    found = bench_cpu_graph.measure(synthesizer, model=model, command=command, quick=quick)
    print("\n".join(bench_cpu_graph.block(found)))
    if write_docs:
        document = OUTPUTS["cpu"][0]
        bench_cpu_graph.write(found, document=document)
        print(f"wrote the CPU graph section of {document.relative_to(ROOT)}")
    return 0


def marks_only(model: str, *, device: Device, quick: bool, write_docs: bool) -> int:
    """The speech marks' cost alone, into its section of docs/BENCHMARKS.md (or BENCHMARKS_CUDA.md)."""
    from tts_worker.synthesizer.loader import load_synthesizer

    synthesizer = load_synthesizer(model, device=device)
    assert isinstance(synthesizer, VitsSynthesizer)
    cost = bench_marks.measure(synthesizer, model=model, quick=quick)
    print("\n".join(bench_marks.block(cost)))
    if write_docs:
        document = OUTPUTS[synthesizer.device][0]
        bench_marks.write(cost, document=document)
        print(f"wrote the marks section of {document.relative_to(ROOT)}")
    return 0


def fanout_only(command: str, *, quick: bool, write_docs: bool) -> int:
    """The fan-out part alone (on the CPU), into its section of docs/BENCHMARKS.md."""
    found = bench_fanout.measure(command=command, quick=quick)
    SAVED_FANOUT.parent.mkdir(parents=True, exist_ok=True)
    SAVED_FANOUT.write_bytes(pickle.dumps(found))
    print("\n".join(bench_fanout.block(found)))
    if write_docs:
        document = OUTPUTS["cpu"][0]
        bench_fanout.write(found, document=document)
        print(f"wrote the fan-out section of {document.relative_to(ROOT)}")
    return 0


def models_only(command: str, *, quick: bool, write_docs: bool) -> int:
    """The many-models part alone (on the CPU), into its section of docs/BENCHMARKS.md."""
    found = models.measure(command=command, quick=quick)
    document = OUTPUTS["cpu"][0]
    if write_docs:
        SAVED_MODELS.parent.mkdir(parents=True, exist_ok=True)
        SAVED_MODELS.write_bytes(pickle.dumps(found))
        write_models(found, document=document)
        print(f"wrote the models section of {document.relative_to(ROOT)}")
    else:
        print("\n".join(models_block(found)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
