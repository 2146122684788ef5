"""The synthesizer interface: a model loaded once per process, warmed up, then asked for audio."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class SynthesisItem:
    """One piece of text to speak, with the seed that makes its audio reproducible, and the model to speak it
    with (the job's VoiceSpec.model_id; "" for the synthesizer's default model)."""

    text: str
    seed: int
    speaking_rate: float = 1.0
    noise_scale: float = 0.667
    noise_scale_duration: float = 0.8
    model_id: str = ""


@dataclass(frozen=True, slots=True)
class TokenTiming:
    """Where an item's input tokens lie in its waveform, from the durations the model itself used.

    `samples[k]`: token k's length in samples at the native rate, in order from the waveform's start (they
    sum to its length); `sources[k]`: the index in the item's text of the character token k speaks, or -1
    for a token that speaks none (a blank between characters).
    """

    samples: tuple[int, ...]
    sources: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SynthesisResult:
    """Mono float32 samples in [-1, 1]; with `timing` when the synthesizer knows its tokens' durations."""

    waveform: npt.NDArray[np.float32]
    sampling_rate: int
    device: str
    timing: TokenTiming | None = None

    @property
    def duration_s(self) -> float:
        return len(self.waveform) / self.sampling_rate


class Synthesizer(ABC):
    """A text-to-speech model behind the few calls the worker core needs."""

    @property
    @abstractmethod
    def model_id(self) -> str:
        """The model an item without a model_id is spoken with (for logs)."""

    @property
    @abstractmethod
    def device(self) -> str:
        """Where inference runs: `cpu` or `cuda`."""

    @property
    @abstractmethod
    def sampling_rate(self) -> int:
        """The default model's native rate."""

    def sampling_rate_for(self, model_id: str) -> int:
        """The native rate of `model_id`'s audio. One model: its own rate, whatever the id."""
        return self.sampling_rate

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
    def is_speakable(self, text: str, model_id: str = "") -> bool:
        """Whether `model_id`'s tokenizer keeps anything of this text (cheap: no forward pass). A synthesizer
        of one model ignores `model_id`; a registry of several routes by it ("" is its default model)."""

    @abstractmethod
    def synthesize(self, items: Sequence[SynthesisItem]) -> list[SynthesisResult]:
        """One result per item, in order. Each item's audio depends only on the item, never on its neighbours.

        Raises EmptyTokenization for an item the tokenizer maps to nothing,
        SynthesisFailed when inference fails; a registry also ModelNotAvailable for a model whose weights it
        cannot find, and ValueError when the items do not share one model_id.
        """

    def warm_up(self) -> None:
        """Run one short synthesis so the first job does not pay for lazy initialisation."""
        self.synthesize([SynthesisItem(text="Hei.", seed=0)])
