"""One model as a loaded, warmed-up synthesizer (benchmarks and tests; the worker uses registry.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tts_common.exceptions import ModelLoadError
from tts_common.settings import CpuGraph, DecoderRuntime, Device, Dtype
from tts_worker.synthesizer.base import Synthesizer

logger = logging.getLogger(__name__)


def load_synthesizer(
    model: str,
    *,
    device: Device = "auto",
    dtype: Dtype = "auto",
    num_threads: int | None = None,
    decoder_runtime: DecoderRuntime = "auto",
    cpu_graph: CpuGraph = "auto",
    cache_dir: Path | None = None,
    warm_up: bool = True,
) -> Synthesizer:
    """`model` is a hub id, a local directory, or a generated model's name (tiny-random, tiny-random-fin).

    `num_threads` is torch's intra-op thread count (default: every usable core); on the CPU a call runs its
    pieces one at a time on those threads. `decoder_runtime` (auto, torch, onnxruntime) says where a CPU
    item's decoder runs; `cpu_graph` (auto, torch, onnx) where its text encoder, durations and flow run.
    docs/BENCHMARKS.md has the measurements behind the defaults.
    """
    # torch and transformers load here, not at import: the core and its tests do not need them.
    import torch
    from transformers.utils import logging as hf_logging

    from tts_worker.synthesizer import random_models
    from tts_worker.synthesizer.cpu_threads import pin_this_thread, usable_cores
    from tts_worker.synthesizer.vits import VitsSynthesizer

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # progress bars are noise in logs
    pin_this_thread(num_threads or usable_cores())
    started = time.perf_counter()
    source: str | Path = (
        random_models.ensure_generated(model, cache_dir) if random_models.is_generated(model) else model
    )
    synthesizer = VitsSynthesizer.load(
        source,
        model_id=model,
        device=device,
        dtype=dtype,
        decoder_runtime=decoder_runtime,
        cpu_graph=cpu_graph,
        cache_dir=cache_dir,
    )
    loaded = time.perf_counter()
    if warm_up:
        try:
            synthesizer.warm_up()
        except Exception as exc:
            raise ModelLoadError(
                f"TTS_MODEL={model!r} loaded but its warm-up synthesis failed: {type(exc).__name__}: {exc}",
                details={"tts_model": model},
            ) from exc
    logger.info(
        "synthesizer ready",
        extra={
            "tts_model": model,
            "device": synthesizer.device,
            "load_s": round(loaded - started, 3),
            "warm_up_s": round(time.perf_counter() - loaded, 3),
            "torch_threads": torch.get_num_threads(),
        },
    )
    return synthesizer
