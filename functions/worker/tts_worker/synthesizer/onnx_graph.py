"""The whole VITS graph on ONNX Runtime, for CPU inference (TTS_CPU_GRAPH=onnx).

graph_forward splits inference into a front (text encoder + duration predictor), a host step (durations and
the seeded noise draws) and a flow; the decoder is onnx_decoder's export. This module exports the front and
the flow, runs them on ONNX Runtime and checks them against eager before they are trusted (`verify`). The
noise comes in as inputs, drawn on the host from each item's seeded generator, so an item's audio still
depends on its seed alone. torch is left with the draws and a few small element-wise operations, whose cost
does not grow with torch's thread pool: with another process holding a core, torch's OpenMP threads slow
the encoder and flow ~20-fold (docs/BENCHMARKS.md), ONNX Runtime's do not.

Files are named by a fingerprint of the weights they compute with, exported atomically, looked for where
prefetch puts them (`model/onnx`) and then in the cache directory, as onnx_decoder does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tts_common.exceptions import ModelLoadError
from tts_common.settings import CpuGraph as CpuGraphSetting
from tts_worker.synthesizer import onnx_decoder
from tts_worker.synthesizer.graph_forward import TorchStages, forward_staged
from tts_worker.synthesizer.onnx_graph_check import Check, verify
from tts_worker.synthesizer.onnx_graph_check import GraphExportError as GraphExportError
from tts_worker.synthesizer.vits_forward import (
    Decode,
    ForwardItem,
    ForwardOutput,
    _log_durations,
)

logger = logging.getLogger(__name__)

# Bump when an exported graph changes, so exports by older code are not reused.
EXPORT_VERSION = 1
OPSET = 17
DIRECTORY_NAME = onnx_decoder.DIRECTORY_NAME
FRONT_INPUTS = ("input_ids", "input_mask", "duration_noise", "noise_scale_w")
FRONT_OUTPUTS = ("log_duration", "prior_means", "prior_log_variances")
FLOW_INPUTS = ("means", "log_variances", "noise", "noise_scale", "output_mask")
FLOW_OUTPUTS = ("spectrogram",)
# Inputs of the config that do not reach the exported graphs (the host applies speaking rate and scales).
_UNUSED_CONFIG = frozenset(
    {"transformers_version", "_name_or_path", "speaking_rate", "noise_scale", "noise_scale_duration"}
)


def available() -> bool:
    return onnx_decoder.available()


def fingerprint(model: Any) -> str:
    """A digest of what the front and the flow compute: the config and every weight they read."""
    config = {k: v for k, v in model.config.to_dict().items() if k not in _UNUSED_CONFIG}
    digest = hashlib.blake2b(digest_size=16)
    digest.update(
        json.dumps({"export_version": EXPORT_VERSION, **config}, sort_keys=True, default=str).encode()
    )
    for part in ("text_encoder", "duration_predictor", "flow"):
        for name, tensor in sorted(getattr(model, part).state_dict().items()):
            value = tensor.detach().to("cpu", torch.float32).contiguous()
            digest.update(f"{part}.{name}:{tuple(value.shape)}".encode())
            digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def file_names(model: Any) -> tuple[str, str]:
    digest = fingerprint(model)
    return f"vits-front-{digest}.onnx", f"vits-flow-{digest}.onnx"


class _Front(nn.Module):
    """Text encoder and duration predictor of a padded batch. The attention mask is built here as the 4-D
    additive mask transformers would make, so the traced graph never depends on the example's padding."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        input_mask: torch.Tensor,
        duration_noise: torch.Tensor,
        noise_scale_w: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        padding = (1.0 - input_mask)[:, None, None, :] * torch.finfo(torch.float32).min
        attention = padding.expand(-1, 1, input_mask.shape[1], -1)
        mask = input_mask.unsqueeze(-1)
        encoded = self.model.text_encoder(
            input_ids=input_ids, padding_mask=mask, attention_mask=attention, return_dict=True
        )
        hidden = encoded.last_hidden_state.transpose(1, 2)
        log_duration = _log_durations(self.model, hidden, mask.transpose(1, 2), duration_noise, noise_scale_w)
        return log_duration, encoded.prior_means, encoded.prior_log_variances


class _Flow(nn.Module):
    """Prior sampling and the reverse flow of a padded batch (TorchStages.flow)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return TorchStages(self.model).flow(*inputs)


def _export(module: nn.Module, example: tuple[Any, ...], target: Path, **names: Any) -> None:
    handle, staging = tempfile.mkstemp(prefix=".vits-", suffix=".onnx", dir=target.parent)
    os.close(handle)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # tracer warnings about Python-side size arithmetic (verified below)
            torch.onnx.export(module.eval(), example, staging, opset_version=OPSET, dynamo=False, **names)
        os.chmod(staging, 0o644)  # readable by the image's runtime user, as onnx_decoder's
        os.replace(staging, target)
    except Exception as exc:
        raise GraphExportError(f"exporting {target.name} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        Path(staging).unlink(missing_ok=True)


def export(model: Any, directory: Path) -> tuple[Path, Path]:
    """Export the front and the flow into `directory` under their fingerprint names; returns both files."""
    directory.mkdir(parents=True, exist_ok=True)
    front_name, flow_name = file_names(model)
    tokens, frames, channels = 12, 30, int(model.config.flow_size)
    lengths = torch.tensor([tokens, tokens - 5])  # padded, so nothing in the trace assumes a full mask
    front_example = (
        torch.ones((2, tokens), dtype=torch.long),
        (torch.arange(tokens)[None] < lengths[:, None]).to(torch.float32),
        torch.zeros((2, 2, tokens)),
        torch.ones((2, 1, 1)),
    )
    batch_tokens = {0: "batch", 1: "tokens"}
    _export(
        _Front(model),
        front_example,
        directory / front_name,
        input_names=list(FRONT_INPUTS),
        output_names=list(FRONT_OUTPUTS),
        dynamic_axes={
            "input_ids": batch_tokens,
            "input_mask": batch_tokens,
            "duration_noise": {0: "batch", 2: "tokens"},
            "noise_scale_w": {0: "batch"},
            "log_duration": {0: "batch", 2: "tokens"},
            "prior_means": batch_tokens,
            "prior_log_variances": batch_tokens,
        },
    )
    plane = torch.zeros((2, channels, frames))
    flow_example = (plane, plane, plane, torch.ones((2, 1, 1)), torch.ones((2, 1, frames)))
    batch_frames = {0: "batch", 2: "frames"}
    _export(
        _Flow(model),
        flow_example,
        directory / flow_name,
        input_names=list(FLOW_INPUTS),
        output_names=list(FLOW_OUTPUTS),
        dynamic_axes={
            **{name: batch_frames for name in ("means", "log_variances", "noise", "output_mask")},
            "noise_scale": {0: "batch"},
            "spectrogram": batch_frames,
        },
    )
    return directory / front_name, directory / flow_name


def session(path: Path, *, threads: int, spinning: bool = False) -> Any:
    """An ONNX Runtime CPU session with `threads` intra-op threads. Front and flow run for milliseconds, then
    the decoder's session: their idle threads sleep at once (`spinning` False) rather than spin beside it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings are about graph rewrites
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise GraphExportError(f"ONNX Runtime could not load {path}: {exc}") from exc


class OnnxStages:
    """graph_forward's Stages on two ONNX Runtime sessions."""

    def __init__(self, front: Path, flow: Path, *, threads: int, spinning: bool = False) -> None:
        self.paths = (front, flow)
        self.threads = threads
        self._front = session(front, threads=threads, spinning=spinning)
        self._flow = session(flow, threads=threads, spinning=spinning)

    def front(
        self, ids: torch.Tensor, mask: torch.Tensor, duration_noise: torch.Tensor, noise_scale_w: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs = dict(zip(FRONT_INPUTS, (ids, mask, duration_noise, noise_scale_w), strict=True))
        outputs = self._front.run(list(FRONT_OUTPUTS), {k: v.contiguous().numpy() for k, v in inputs.items()})
        log_duration, means, log_variances = (torch.from_numpy(o) for o in outputs)
        return log_duration, means, log_variances

    def flow(
        self,
        means: torch.Tensor,
        log_variances: torch.Tensor,
        noise: torch.Tensor,
        noise_scale: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        inputs = dict(zip(FLOW_INPUTS, (means, log_variances, noise, noise_scale, mask), strict=True))
        [spectrogram] = self._flow.run(
            list(FLOW_OUTPUTS), {k: v.contiguous().numpy() for k, v in inputs.items()}
        )
        return torch.from_numpy(spectrogram)


class CpuGraph:
    """The whole VITS forward on ONNX Runtime: front and flow here, the decoder from onnx_decoder."""

    def __init__(self, model: Any, stages: OnnxStages, decoder: Decode, *, decode_chunk_frames: int) -> None:
        self.model = model
        self.stages = stages
        self.decoder = decoder
        self.decode_chunk_frames = decode_chunk_frames

    @property
    def paths(self) -> tuple[Path, ...]:
        return self.stages.paths

    def forward(self, items: Sequence[ForwardItem]) -> ForwardOutput:
        return forward_staged(
            self.model,
            self.stages,
            items,
            decode=self.decoder,
            decode_chunk_frames=self.decode_chunk_frames,
        )


def load(
    model: Any,
    decoder: Decode,
    *,
    search: Sequence[Path],
    cache_dir: Path,
    threads: int,
    decode_chunk_frames: int,
) -> tuple[CpuGraph, Check]:
    """The front and flow exports from the first of `search`, then `cache_dir`, that load and pass `verify`;
    else a fresh export into `cache_dir`. `decoder` is the (verified) ONNX Runtime decoder they feed."""
    front_name, flow_name = file_names(model)
    for directory in [*search, cache_dir]:
        front, flow = directory / front_name, directory / flow_name
        if not (front.is_file() and flow.is_file()):
            continue
        try:
            stages = OnnxStages(front, flow, threads=threads)
            return CpuGraph(model, stages, decoder, decode_chunk_frames=decode_chunk_frames), verify(
                model, stages, decoder
            )
        except GraphExportError as exc:
            logger.warning("graph export passed over", extra={"path": str(front), "reason": str(exc)})
    front, flow = export(model, cache_dir)
    logger.info("VITS front and flow exported to ONNX", extra={"path": str(front)})
    stages = OnnxStages(front, flow, threads=threads)
    return CpuGraph(model, stages, decoder, decode_chunk_frames=decode_chunk_frames), verify(
        model, stages, decoder
    )


def resolve(requested: CpuGraphSetting, *, decoder_runtime: str, device: torch.device) -> str:
    """`onnx` or `torch`: where a lone CPU item's front and flow run (TTS_CPU_GRAPH).

    `auto` is onnx on the CPU when the decoder runs on ONNX Runtime there; onnx asked for explicitly with the
    decoder on torch is a start-up error, as is onnx on CUDA (which pads batches on torch).
    """
    if requested == "torch":
        return "torch"
    if device.type != "cpu":
        if requested == "onnx":
            raise ModelLoadError("TTS_CPU_GRAPH=onnx runs on the CPU only; use torch on CUDA")
        return "torch"
    if decoder_runtime == "onnxruntime":
        return "onnx"
    if requested == "onnx":
        raise ModelLoadError("TTS_CPU_GRAPH=onnx needs the decoder on ONNX Runtime (TTS_DECODER_RUNTIME)")
    return "torch"


def load_for(
    model: Any,
    decoder: Decode,
    *,
    source: str | Path,
    cache_dir: Path,
    threads: int,
    decode_chunk_frames: int,
    required: bool,
) -> CpuGraph | None:
    """The model's CpuGraph, looked for in `source`/onnx then `cache_dir`/onnx (exported there if absent).
    A failure is a ModelLoadError when `required` (TTS_CPU_GRAPH=onnx), else logged and None (torch)."""
    search = [Path(source) / DIRECTORY_NAME] if Path(source).is_dir() else []
    try:
        graph, check = load(
            model,
            decoder,
            search=search,
            cache_dir=cache_dir / DIRECTORY_NAME,
            threads=threads,
            decode_chunk_frames=decode_chunk_frames,
        )
    except Exception as exc:
        if required:
            raise ModelLoadError(f"TTS_CPU_GRAPH=onnx failed: {exc}") from exc
        logger.warning("front and flow stay on torch: ONNX Runtime unusable", extra={"reason": str(exc)})
        return None
    logger.info(
        "front and flow on ONNX Runtime",
        extra={
            "path": str(graph.paths[0]),
            "threads": threads,
            "max_difference_from_eager": check.waveform,
            "duration_ties": check.ties,
        },
    )
    return graph
