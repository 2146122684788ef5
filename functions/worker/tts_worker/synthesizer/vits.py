"""VITS (MMS-TTS) through transformers: the real synthesis path for hub, local and generated models."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer, VitsModel
from tts_common.exceptions import EmptyTokenization, ModelLoadError, SynthesisFailed

from tts_worker.synthesizer.base import SynthesisItem, SynthesisResult, Synthesizer

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(requested: str) -> torch.device:
    """`auto` picks CUDA when present; CUDA asked for but absent is a start-up error, not a CPU run."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("TTS_DEVICE=cuda but torch sees no CUDA device")
    if requested not in {"cpu", "cuda"}:
        raise ModelLoadError(f"TTS_DEVICE={requested!r} is not one of auto, cpu, cuda")
    return torch.device(requested)


def resolve_dtype(requested: str) -> torch.dtype:
    # float32 unless asked: half precision is a measured choice for a GPU, not a default.
    if requested == "auto":
        return torch.float32
    try:
        return _DTYPES[requested]
    except KeyError:
        raise ModelLoadError(f"TTS_DTYPE={requested!r} is not one of auto, {', '.join(_DTYPES)}") from None


class VitsSynthesizer(Synthesizer):
    """A VitsModel and its tokenizer on one device. Not thread-safe: one synthesis at a time per process."""

    def __init__(self, *, model: Any, tokenizer: Any, model_id: str) -> None:
        self._model = model.eval()
        self._tokenizer = tokenizer
        self._model_id = model_id
        self._device = next(model.parameters()).device
        self._vocab_size = int(model.config.vocab_size)
        # Generated models calibrate their pace in the config; real MMS checkpoints have 1.0 there.
        self._base_rate = float(model.config.speaking_rate)

    @classmethod
    def load(
        cls,
        source: str | Path,
        *,
        model_id: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
    ) -> VitsSynthesizer:
        """Load with `from_pretrained` from a hub id or a directory; any failure becomes ModelLoadError."""
        configured = model_id or str(source)
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype)
        try:
            model: Any = VitsModel.from_pretrained(str(source), dtype=torch_dtype)
            tokenizer = AutoTokenizer.from_pretrained(str(source))
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"TTS_MODEL={configured!r} could not be loaded ({type(exc).__name__}: {reason}). "
                "Use a local directory made by `python -m tts_worker.prefetch`, or allow hub access.",
                details={"tts_model": configured},
            ) from exc
        model = model.to(torch_device)
        logger.info(
            "model loaded",
            extra={"tts_model": configured, "device": torch_device.type, "dtype": str(torch_dtype)},
        )
        return cls(model=model, tokenizer=tokenizer, model_id=configured)

    def save_pretrained(self, target: str | Path) -> None:
        """Write model and tokenizer so that `load(target)` needs no network."""
        self._model.save_pretrained(str(target))
        self._tokenizer.save_pretrained(str(target))

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def device(self) -> str:
        return str(self._device.type)

    @property
    def sampling_rate(self) -> int:
        return int(self._model.config.sampling_rate)

    def _token_ids(self, text: str) -> list[int] | None:
        """The ids to feed the model, or None when the tokenizer keeps nothing of the text."""
        ids = [int(i) for i in self._tokenizer(text)["input_ids"]]
        # With add_blank the tokenizer puts id 0 between characters; only the odd positions carry text.
        content = ids[1::2] if getattr(self._tokenizer, "add_blank", False) else ids
        if not content:
            return None
        # A literal added token (e.g. "<unk>") may fall outside the embedding table: speak it as a blank.
        return [i if 0 <= i < self._vocab_size else 0 for i in ids]

    def is_speakable(self, text: str) -> bool:
        return self._token_ids(text) is not None

    def synthesize(self, items: Sequence[SynthesisItem]) -> list[SynthesisResult]:
        return [self._synthesize_one(item) for item in items]

    def _synthesize_one(self, item: SynthesisItem) -> SynthesisResult:
        ids = self._token_ids(item.text)
        if ids is None:
            raise EmptyTokenization(
                "the text has no characters this model can speak", details={"model": self._model_id}
            )
        input_ids = torch.tensor([ids], dtype=torch.long, device=self._device)
        self._model.noise_scale = item.noise_scale
        self._model.noise_scale_duration = item.noise_scale_duration
        try:
            with torch.inference_mode():
                # Noise comes from torch's global generator: seeding it per item makes the audio reproducible.
                torch.manual_seed(item.seed)
                output = self._model(input_ids=input_ids, speaking_rate=self._base_rate * item.speaking_rate)
            length = int(output.sequence_lengths[0])
            waveform = output.waveform[0, :length].float().cpu().numpy()
        except RuntimeError as exc:
            raise SynthesisFailed(f"inference failed: {type(exc).__name__}: {exc}") from exc
        waveform = np.nan_to_num(waveform, nan=0.0, posinf=1.0, neginf=-1.0).astype(np.float32, copy=False)
        return SynthesisResult(waveform=waveform, sampling_rate=self.sampling_rate, device=self.device)
