"""The synthesizer interface: a model loaded once per process, warmed up, then asked for audio."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class SynthesisItem:
    """One piece of text to speak, with the seed that makes its audio reproducible."""

    text: str
    seed: int
    speaking_rate: float = 1.0
    noise_scale: float = 0.667
    noise_scale_duration: float = 0.8


@dataclass(frozen=True, slots=True)
class SynthesisResult:
    """Mono float32 samples in [-1, 1]."""

    waveform: npt.NDArray[np.float32]
    sampling_rate: int
    device: str

    @property
    def duration_s(self) -> float:
        return len(self.waveform) / self.sampling_rate


class Synthesizer(ABC):
    """A text-to-speech model behind the few calls the worker core needs."""

    @property
    @abstractmethod
    def model_id(self) -> str:
        """What the deployment configured (TTS_MODEL), for logs."""

    @property
    @abstractmethod
    def device(self) -> str:
        """Where inference runs: `cpu` or `cuda`."""

    @property
    @abstractmethod
    def sampling_rate(self) -> int: ...

    @property
    def max_items_per_call(self) -> int | None:
        """How many items one `synthesize` call should get at most; None when more per call is always
        better (one padded forward on a GPU). The core never passes more than TTS_MAX_BATCH either way."""
        return 1

    @property
    def pads_batches(self) -> bool:
        """Whether one call pads its items to the longest, so the core should group similar lengths."""
        return False

    @abstractmethod
    def is_speakable(self, text: str) -> bool:
        """Whether the tokenizer keeps anything of this text (cheap: no forward pass)."""

    @abstractmethod
    def synthesize(self, items: Sequence[SynthesisItem]) -> list[SynthesisResult]:
        """One result per item, in order. Each item's audio depends only on the item, never on its neighbours.

        Raises EmptyTokenization for an item the tokenizer maps to nothing,
        SynthesisFailed when inference fails.
        """

    def warm_up(self) -> None:
        """Run one short synthesis so the first job does not pay for lazy initialisation."""
        self.synthesize([SynthesisItem(text="Hei.", seed=0)])
