"""The HiFi-GAN decoder on ONNX Runtime, for CPU inference.

The decoder is about 94% of a CPU synthesis. ONNX Runtime runs the same convolutions with its own kernels
(MLAS) and folds each LeakyReLU into the convolution after it. On the benchmark machine that is about 1.4x
faster than eager torch, and the waveform equals eager's up to float rounding (docs/BENCHMARKS.md).

The exported graph is `vits_forward._decode(decoder, x, None)`: the decoder up to, not including, its final
tanh, for one unpadded item of any length. It is exported once per set of weights. A fingerprint of the
decoder's shape and weights names the file, so a stale export is never picked up. `tts_worker.prefetch`
exports it into the model directory at image build time; otherwise the first load exports it into the cache
directory. Every load also checks it against the eager decoder before trusting it (`verify`).
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

from tts_worker.synthesizer.vits_forward import _decode

logger = logging.getLogger(__name__)

# Bump when the exported graph changes, so exports by older code are not reused.
EXPORT_VERSION = 1
OPSET = 17
# Largest difference allowed between ONNX Runtime's and eager's waveform (after the tanh, full scale 1.0).
# Measured: ~3e-5 on the full MMS decoder (float rounding of reordered sums); a wrong graph differs by ~1.
TOLERANCE = 1e-3
VERIFY_FRAMES = 16
INPUT_NAME = "spectrogram"
OUTPUT_NAME = "before_tanh"
DIRECTORY_NAME = "onnx"


class DecoderExportError(RuntimeError):
    """The decoder could not be exported, loaded or verified on ONNX Runtime."""


def available() -> bool:
    """Whether ONNX Runtime (and onnx, which torch's exporter needs) can be imported."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def fingerprint(decoder: Any) -> str:
    """A digest of what the decoder computes: the config fields `_decode` reads, and every weight."""
    config = decoder.config
    shape = {
        name: getattr(config, name)
        for name in (
            "flow_size",
            "upsample_initial_channel",
            "upsample_rates",
            "upsample_kernel_sizes",
            "resblock_kernel_sizes",
            "resblock_dilation_sizes",
            "leaky_relu_slope",
        )
    }
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps({"export_version": EXPORT_VERSION, **shape}, sort_keys=True).encode())
    for name, tensor in sorted(decoder.state_dict().items()):
        value = tensor.detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(value.shape)}".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def file_name(decoder: Any) -> str:
    return f"hifigan-{fingerprint(decoder)}.onnx"


class _BeforeTanh(nn.Module):
    """What gets exported: the decoder of one unpadded item, without its final tanh."""

    def __init__(self, decoder: Any) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        return _decode(self.decoder, spectrogram, None)


def export(decoder: Any, directory: Path) -> Path:
    """Export `decoder` into `directory` under its fingerprint name (atomically); returns the file."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / file_name(decoder)
    config = decoder.config
    example = torch.zeros(1, int(config.flow_size), 32)
    handle, staging = tempfile.mkstemp(prefix=".hifigan-", suffix=".onnx", dir=directory)
    os.close(handle)
    try:
        with warnings.catch_warnings():
            # torch 2.13 calls the TorchScript-based exporter legacy; it needs no onnxscript and takes ~5 s
            # for the MMS decoder. torch is pinned, so it stays available.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _BeforeTanh(decoder).eval(),
                (example,),
                staging,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {2: "frames"}, OUTPUT_NAME: {2: "samples"}},
                opset_version=OPSET,
                dynamo=False,
            )
        # mkstemp makes it 0600: an image builds as root and may run as another user (Lambda, ECS).
        os.chmod(staging, 0o644)
        os.replace(staging, target)  # readers see a complete file or none
    except Exception as exc:
        raise DecoderExportError(f"exporting the decoder failed: {type(exc).__name__}: {exc}") from exc
    finally:
        Path(staging).unlink(missing_ok=True)
    return target


class OnnxDecoder:
    """An ONNX Runtime session running the exported decoder; callable like `_decode(decoder, x, None)`.

    `threads` is its intra-op thread count: every core for one item at a time, 1 where several items run
    side by side on their own threads (concurrent `run` calls on one session are safe).
    """

    def __init__(self, path: Path, *, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: its warnings are about graph rewrites
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise DecoderExportError(f"ONNX Runtime could not load {path}: {exc}") from exc
        self.path = path
        self.threads = threads

    def __call__(self, spectrogram: torch.Tensor) -> torch.Tensor:
        array = spectrogram.detach().to("cpu", torch.float32).contiguous().numpy()
        [output] = self._session.run([OUTPUT_NAME], {INPUT_NAME: array})
        return torch.from_numpy(output)


def difference(decoder: Any, onnx_decoder: OnnxDecoder, frames: int = VERIFY_FRAMES) -> float:
    """Largest difference between the two decoders' waveforms (after the tanh) on a fixed random input."""
    config = decoder.config
    generator = torch.Generator().manual_seed(0)
    spectrogram = torch.randn((1, int(config.flow_size), frames), generator=generator)
    with torch.inference_mode():
        eager = torch.tanh(_decode(decoder, spectrogram, None))
        onnx = torch.tanh(onnx_decoder(spectrogram))
    if eager.shape != onnx.shape:
        return float("inf")
    return float((eager - onnx).abs().max())


def verify(decoder: Any, onnx_decoder: OnnxDecoder) -> float:
    """The difference from eager, or DecoderExportError when it exceeds TOLERANCE."""
    found = difference(decoder, onnx_decoder)
    if not found <= TOLERANCE:
        raise DecoderExportError(
            f"{onnx_decoder.path.name} differs from the eager decoder by {found:.3g} (tolerance {TOLERANCE})"
        )
    return found


def load(decoder: Any, *, search: Sequence[Path], cache_dir: Path, threads: int) -> tuple[OnnxDecoder, float]:
    """The decoder's export from the first of `search`, then `cache_dir`, that loads and passes `verify`;
    else a fresh export into `cache_dir` (replacing an unusable one there). Returns it and its measured
    difference from eager; DecoderExportError when even a fresh export fails."""
    name = file_name(decoder)
    for directory in [*search, cache_dir]:
        path = directory / name
        if not path.is_file():
            continue
        try:
            onnx_decoder = OnnxDecoder(path, threads=threads)
            return onnx_decoder, verify(decoder, onnx_decoder)
        except DecoderExportError as exc:  # unreadable, corrupt or another decoder's: export anew
            logger.warning("decoder export passed over", extra={"path": str(path), "reason": str(exc)})
    path = export(decoder, cache_dir)
    logger.info("decoder exported to ONNX", extra={"path": str(path)})
    onnx_decoder = OnnxDecoder(path, threads=threads)
    return onnx_decoder, verify(decoder, onnx_decoder)
