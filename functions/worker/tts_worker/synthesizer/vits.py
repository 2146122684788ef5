"""VITS (MMS-TTS) through transformers: the real synthesis path for hub, local and generated models."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, VitsModel

from tts_common.exceptions import EmptyTokenization, ModelLoadError, SynthesisFailed
from tts_common.settings import CpuGraph, DecoderRuntime, Device, Dtype
from tts_worker.synthesizer.base import SynthesisItem, SynthesisResult, Synthesizer, TokenTiming
from tts_worker.synthesizer.text_frontend import TextFrontEnd, Tokens
from tts_worker.synthesizer.vits_forward import Decode, ForwardItem, forward_items

logger = logging.getLogger(__name__)

# On the CPU a lone item longer than this (about 9.6 s of audio) is decoded in chunks of this many frames:
# past ~800 frames the decoder's activations outgrow the caches and it runs ~1.45x slower per frame.
DECODE_CHUNK_FRAMES = 600
# ONNX Runtime's decoder shows no such slowdown (measured up to 1,800 frames): its chunks only bound memory.
ONNX_DECODE_CHUNK_FRAMES = 2000


def resolve_device(requested: Device) -> torch.device:
    """`auto` picks CUDA when present; CUDA asked for but absent is a start-up error, not a CPU run."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("TTS_DEVICE=cuda but torch sees no CUDA device")
    return torch.device(requested)


def resolve_half(requested: Dtype, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for flow and decoder, or None for float32.

    `auto` is float16 on CUDA (measured faster, each item checked) and float32 on the CPU (no fast half
    kernels on AVX2 machines). Weights always stay float32.
    """
    if requested == "auto":
        return torch.float16 if device.type == "cuda" else None
    if requested == "float32":
        return None
    return torch.float16 if requested == "float16" else torch.bfloat16


def resolve_decoder_runtime(requested: DecoderRuntime, device: torch.device) -> str:
    """`torch` or `onnxruntime`: where a lone item's HiFi-GAN decoder runs.

    `auto` is ONNX Runtime on the CPU when it is installed (measured ~1.4x faster, same waveform up to float
    rounding) and torch on CUDA, where the worker pads batches and runs them in float16.
    """
    from tts_worker.synthesizer import onnx_decoder

    if requested == "torch":
        return "torch"
    if device.type != "cpu":
        if requested == "onnxruntime":
            raise ModelLoadError("TTS_DECODER_RUNTIME=onnxruntime runs on the CPU only; use torch on CUDA")
        return "torch"
    if onnx_decoder.available():
        return "onnxruntime"
    if requested == "onnxruntime":
        raise ModelLoadError("TTS_DECODER_RUNTIME=onnxruntime but onnxruntime or onnx is not installed")
    return "torch"


@dataclass(frozen=True, slots=True)
class Waveform:
    """One item's samples, whether the forward that made them stayed finite throughout, and each of its
    tokens' length in samples (the durations that forward used)."""

    samples: torch.Tensor
    sound: bool
    token_samples: tuple[int, ...] = ()


class VitsSynthesizer(Synthesizer):
    """A VitsModel and its tokenizer on one device. One synthesize() call at a time per instance.

    How a call runs is chosen by device (see docs/BENCHMARKS.md for the measurements):
      * CUDA: one padded forward for all items (the core groups them by length), flow and decoder in
        float16 autocast unless TTS_DTYPE says otherwise; an item whose half-precision decoder overflowed
        (inf or NaN before the final tanh) is redone in float32.
      * CPU: one forward per item, float32, a long item decoded in chunks (DECODE_CHUNK_FRAMES), on this
        thread's intra-op threads (TTS_NUM_THREADS); the decoder on ONNX Runtime unless
        TTS_DECODER_RUNTIME=torch (onnx_decoder), and then text encoder, duration predictor and flow
        too unless TTS_CPU_GRAPH=torch (onnx_graph: the same seeded noise, fed in as inputs).
    Either way item i's noise comes from a generator seeded with item i's seed, so its audio does not depend
    on its neighbours (vits_forward).
    """

    def __init__(
        self,
        *,
        model: Any,
        tokenizer: Any,
        model_id: str,
        half: torch.dtype | None = None,
        batch_forward: bool | None = None,
        cpu_decoder: Decode | None = None,
        cpu_graph: Any | None = None,
    ) -> None:
        self._model = model.eval()
        self._tokenizer = tokenizer
        self._model_id = model_id
        self._device = next(model.parameters()).device
        self._front_end = TextFrontEnd.for_model(model, tokenizer)
        self._half = half
        self._batch_forward = self._device.type == "cuda" if batch_forward is None else batch_forward
        self._cpu_decoder = None if self._device.type == "cuda" else cpu_decoder
        # An onnx_graph.CpuGraph: a lone float32 CPU forward, front to decoder, on ONNX Runtime.
        self._cpu_graph = None if self._device.type == "cuda" else cpu_graph
        if int(getattr(model.config, "num_speakers", 1)) > 1:
            logger.warning("multi-speaker model: every item uses the default voice")

    @classmethod
    def load(
        cls,
        source: str | Path,
        *,
        model_id: str | None = None,
        device: Device = "auto",
        dtype: Dtype = "auto",
        batch_forward: bool | None = None,
        decoder_runtime: DecoderRuntime = "auto",
        cpu_graph: CpuGraph = "auto",
        cache_dir: Path | None = None,
    ) -> VitsSynthesizer:
        """Load with `from_pretrained` from a hub id or a directory; any failure becomes ModelLoadError.

        With the decoder on ONNX Runtime, its export is looked for in `source`/onnx (where prefetch puts it)
        and in `cache_dir`/onnx, and exported there when absent. Under `auto` a failure to export, load or
        verify it is logged and the decoder stays on torch; asked for explicitly, it is a ModelLoadError.
        `cpu_graph` (TTS_CPU_GRAPH) does the same for the front and flow's exports (onnx_graph).
        """
        from tts_worker.synthesizer import onnx_graph, random_models

        configured = model_id or str(source)
        torch_device = resolve_device(device)
        half = resolve_half(dtype, torch_device)
        runtime = resolve_decoder_runtime(decoder_runtime, torch_device)
        graph_runtime = onnx_graph.resolve(cpu_graph, decoder_runtime=runtime, device=torch_device)
        try:
            model: Any = VitsModel.from_pretrained(str(source), dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(str(source))
        except Exception as exc:  # a missing file, a bad config, the hub unreachable: none is the job's fault
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"model {configured!r} could not be loaded ({type(exc).__name__}: {reason}). "
                "Use a directory made by `python -m tts_worker.prefetch`, or allow hub access.",
                details={"model_id": configured},
            ) from exc
        model = model.to(torch_device)
        cpu_decoder = None
        if runtime == "onnxruntime":
            cpu_decoder = cls._onnx_decoder(
                model,
                source=source,
                cache_dir=cache_dir,
                threads=torch.get_num_threads(),
                required=decoder_runtime == "onnxruntime",
            )
        graph = None
        if graph_runtime == "onnx" and cpu_decoder is not None:
            graph = onnx_graph.load_for(
                model,
                cpu_decoder,
                source=source,
                cache_dir=cache_dir or random_models.default_cache_dir(),
                threads=torch.get_num_threads(),
                decode_chunk_frames=ONNX_DECODE_CHUNK_FRAMES,
                required=cpu_graph == "onnx",
            )
        elif graph_runtime == "onnx" and cpu_graph == "onnx":
            raise ModelLoadError("TTS_CPU_GRAPH=onnx needs the decoder on ONNX Runtime, which failed to load")
        synthesizer = cls(
            model=model,
            tokenizer=tokenizer,
            model_id=configured,
            half=half,
            batch_forward=batch_forward,
            cpu_decoder=cpu_decoder,
            cpu_graph=graph,
        )
        logger.info(
            "model loaded",
            extra={
                "tts_model": configured,
                "device": torch_device.type,
                "compute_dtype": str(half or torch.float32),
                "batch_forward": synthesizer.pads_batches,
                "decoder_runtime": synthesizer.decoder_runtime,
                "cpu_graph": synthesizer.graph_runtime,
            },
        )
        return synthesizer

    @staticmethod
    def _onnx_decoder(
        model: Any, *, source: str | Path, cache_dir: Path | None, threads: int, required: bool
    ) -> Decode | None:
        from tts_worker.synthesizer import onnx_decoder, random_models

        search = [Path(source) / onnx_decoder.DIRECTORY_NAME] if Path(source).is_dir() else []
        cache = (cache_dir or random_models.default_cache_dir()) / onnx_decoder.DIRECTORY_NAME
        try:
            decoder, difference = onnx_decoder.load(
                model.decoder, search=search, cache_dir=cache, threads=threads
            )
        except Exception as exc:
            if required:
                raise ModelLoadError(f"TTS_DECODER_RUNTIME=onnxruntime failed: {exc}") from exc
            logger.warning("decoder stays on torch: ONNX Runtime unusable", extra={"reason": str(exc)})
            return None
        logger.info(
            "decoder on ONNX Runtime",
            extra={"path": str(decoder.path), "threads": threads, "max_difference_from_eager": difference},
        )
        return decoder

    def save_pretrained(self, target: str | Path) -> None:
        """Write model and tokenizer so that `load(target)` needs no network."""
        self._model.save_pretrained(str(target))
        self._tokenizer.save_pretrained(str(target))

    @property
    def model(self) -> Any:
        """The VitsModel itself (the benchmark's seed-style baseline calls it directly)."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def front_end(self) -> TextFrontEnd:
        """Romanization (for is_uroman tokenizers) and tokenization, as every item goes through them."""
        return self._front_end

    @property
    def half(self) -> torch.dtype | None:
        """The autocast dtype of flow and decoder, or None for float32."""
        return self._half

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def device(self) -> str:
        return str(self._device.type)

    @property
    def sampling_rate(self) -> int:
        return int(self._model.config.sampling_rate)

    @property
    def max_items_per_call(self) -> int | None:
        return None if self._batch_forward else 1

    @property
    def pads_batches(self) -> bool:
        return self._batch_forward

    @property
    def cpu_decoder(self) -> Decode | None:
        """The ONNX Runtime decoder a lone CPU item runs on, or None (torch)."""
        return self._cpu_decoder

    @property
    def decoder_runtime(self) -> str:
        """Where a lone item's decoder runs: `onnxruntime` or `torch`."""
        return "torch" if self._cpu_decoder is None else "onnxruntime"

    @property
    def cpu_graph(self) -> Any | None:
        """The onnx_graph.CpuGraph a float32 CPU forward runs on, or None (torch front and flow)."""
        return self._cpu_graph

    @property
    def graph_runtime(self) -> str:
        """Where text encoder, duration predictor and flow run: `onnxruntime` or `torch`."""
        return "torch" if self._cpu_graph is None else "onnxruntime"

    def token_ids(self, text: str) -> list[int] | None:
        """The ids to feed the model (romanized first if the tokenizer says is_uroman), or None when the
        tokenizer keeps nothing of the text."""
        return self._front_end.token_ids(text)

    def is_speakable(self, text: str, model_id: str = "") -> bool:
        """One model: `model_id` is not looked at (the registry routes by it)."""
        return self.token_ids(text) is not None

    def synthesize(self, items: Sequence[SynthesisItem]) -> list[SynthesisResult]:
        tokens = [self._tokens(item) for item in items]
        prepared = [self._prepare(item, t.ids) for item, t in zip(items, tokens, strict=True)]
        if not prepared:
            return []
        try:
            with torch.inference_mode():
                if self._batch_forward:
                    waveforms = self._checked(prepared)
                else:
                    waveforms = [waveform for item in prepared for waveform in self._checked([item])]
            samples = [w.samples.float().cpu().numpy() for w in waveforms]
        except (RuntimeError, ValueError) as exc:
            raise SynthesisFailed(f"inference failed: {type(exc).__name__}: {exc}") from exc
        return [
            SynthesisResult(
                waveform=waveform,
                sampling_rate=self.sampling_rate,
                device=self.device,
                timing=TokenTiming(samples=w.token_samples, sources=tuple(t.sources)),
            )
            for waveform, w, t in zip(samples, waveforms, tokens, strict=True)
        ]

    def _tokens(self, item: SynthesisItem) -> Tokens:
        tokens = self._front_end.tokens(item.text)
        if tokens is None:
            raise EmptyTokenization(
                "the text has no characters this model can speak", details={"model": self._model_id}
            )
        return tokens

    def _prepare(self, item: SynthesisItem, ids: list[int] | None = None) -> ForwardItem:
        return ForwardItem(
            input_ids=self._tokens(item).ids if ids is None else ids,
            seed=item.seed,
            speaking_rate=item.speaking_rate,
            noise_scale=item.noise_scale,
            noise_scale_duration=item.noise_scale_duration,
        )

    def forward(self, items: Sequence[ForwardItem]) -> list[Waveform]:
        """One forward over prepared items as `synthesize` runs it, without its checks (benchmarks)."""
        with torch.inference_mode():
            return self._forward(items, self._half)

    def _forward(self, items: Sequence[ForwardItem], half: torch.dtype | None) -> list[Waveform]:
        decode = self._cpu_decoder if half is None else None  # the export is float32
        if self._device.type == "cuda":
            chunk = None
        else:
            chunk = DECODE_CHUNK_FRAMES if decode is None else ONNX_DECODE_CHUNK_FRAMES
        if self._cpu_graph is not None and half is None:
            output = self._cpu_graph.forward(items)
        else:
            output = forward_items(self._model, items, half=half, decode_chunk_frames=chunk, decode=decode)
        return [
            Waveform(output.item(i), output.finite[i], tuple(f * output.hop for f in output.durations[i]))
            for i in range(len(items))
        ]

    def _checked(self, items: Sequence[ForwardItem]) -> list[Waveform]:
        """Forward in the configured precision; redo in float32 the items half precision overflowed in.

        The decoder ends in tanh, so audio never leaves [-1, 1]; an overflow shows up as inf or NaN before
        that tanh (the forward reports it), which would come out as NaN or as clipping at full scale.
        """
        waveforms = self._forward(items, self._half)
        if self._half is not None:
            spoiled = [i for i, w in enumerate(waveforms) if not w.sound]
            if spoiled:
                logger.warning(
                    "half precision overflowed; redoing in float32",
                    extra={"items": len(spoiled), "of": len(items)},
                )
                redone = self._forward([items[i] for i in spoiled], None)
                for index, waveform in zip(spoiled, redone, strict=True):
                    waveforms[index] = waveform
        if not all(w.sound for w in waveforms):
            raise SynthesisFailed("the model produced non-finite values")
        return waveforms
