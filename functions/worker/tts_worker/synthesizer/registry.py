"""Several models behind one Synthesizer: loaded on first use, the most recently used kept resident.

A job names its model (VoiceSpec.model_id, carried in each SynthesisItem); the core groups a batch's pieces
by model before it groups them by length, so one `synthesize` call speaks with one model. The registry
loads that model on its first use (weights from the image, the model store or the hub: sources.py), keeps up
to `max_resident` loaded and evicts the least recently used before loading another, so at most
`max_resident` are ever in memory.

`is_speakable` and `sampling_rate_for` need only a model's tokenizer and config, which are kept for every
model met (a few kB each, up to MAX_FRONT_ENDS), so looking at a job's text never loads or evicts weights.

A model that is nowhere to be found raises ModelNotAvailable (its task fails; the worker goes on); that
answer is remembered for UNAVAILABLE_TTL_S so a burst of jobs for it does not ask the store each time.

Threads: one `synthesize` at a time per registry, as the worker's loop runs it (each model's synthesizer is
not reentrant). The registry's own bookkeeping is under a lock, so `is_speakable` from another thread is safe.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tts_common.exceptions import ModelLoadError, ModelNotAvailable
from tts_common.metrics import Metric
from tts_common.settings import CpuGraph, DecoderRuntime, Device, Dtype
from tts_worker.ports import MetricsSink
from tts_worker.synthesizer.base import SynthesisItem, SynthesisResult, Synthesizer
from tts_worker.synthesizer.sources import ModelLocator

logger = logging.getLogger(__name__)

# Tokenizers and configs kept for models met (resident or not): small, and each saves a lookup per job.
MAX_FRONT_ENDS = 256
UNAVAILABLE_TTL_S = 60.0


class FrontEnd(Protocol):
    """What the registry needs of a model before its weights: TextFrontEnd and every Synthesizer fit."""

    @property
    def sampling_rate(self) -> int: ...

    def is_speakable(self, text: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class LoadedModel:
    synthesizer: Synthesizer
    source: str  # sources.SOURCE_*: where the weights came from


class ModelLoader(Protocol):
    """Turns a model id into a loaded model (VitsModelLoader; tests may fake it)."""

    def load(self, model_id: str) -> LoadedModel: ...

    def front_end(self, model_id: str) -> FrontEnd: ...

    def reclaim(self) -> None:
        """Called once an evicted model's last reference is gone: give its memory back."""


@dataclass(slots=True)
class RegistryStats:
    loads: int = 0
    hits: int = 0
    load_s: float = 0.0
    # Model ids in the order they were loaded and evicted (the whole life of the registry).
    loaded: list[str] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # model id -> where its weights came from


class ModelRegistry(Synthesizer):
    """Synthesizer over many models; see the module docstring."""

    def __init__(
        self,
        loader: ModelLoader,
        *,
        default_model: str,
        max_resident: int,
        device: str,
        pads_batches: bool = False,
        max_items_per_call: int | None = 1,
        preload: Sequence[str] = (),
        metrics: MetricsSink | None = None,
        clock: Callable[[], float] = time.perf_counter,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_resident < 1:
            raise ValueError("max_resident must be at least 1")
        self._loader = loader
        self._default_model = default_model
        self._max_resident = max_resident
        self._device = device
        self._pads_batches = pads_batches
        self._max_items_per_call = max_items_per_call
        self._preload = list(dict.fromkeys(preload))
        self._metrics = metrics
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._resident: OrderedDict[str, Synthesizer] = OrderedDict()  # least recently used first
        self._front_ends: OrderedDict[str, FrontEnd] = OrderedDict()
        self._unavailable: dict[str, tuple[float, ModelNotAvailable]] = {}
        self.stats = RegistryStats()

    # -- Synthesizer -------------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self._default_model

    @property
    def device(self) -> str:
        return self._device

    @property
    def sampling_rate(self) -> int:
        return self.sampling_rate_for(self._default_model)

    @property
    def max_items_per_call(self) -> int | None:
        return self._max_items_per_call

    @property
    def pads_batches(self) -> bool:
        return self._pads_batches

    def sampling_rate_for(self, model_id: str) -> int:
        return self._front_end(model_id or self._default_model).sampling_rate

    def is_speakable(self, text: str, model_id: str = "") -> bool:
        return self._front_end(model_id or self._default_model).is_speakable(text)

    def synthesize(self, items: Sequence[SynthesisItem]) -> list[SynthesisResult]:
        if not items:
            return []
        wanted = {item.model_id or self._default_model for item in items}
        if len(wanted) > 1:
            raise ValueError(
                f"one synthesize call speaks with one model; got {len(wanted)}: {sorted(wanted)} "
                "(group the items by model_id first)"
            )
        return self.model(wanted.pop()).synthesize(items)

    def warm_up(self) -> None:
        """Load and warm up the preload models (TTS_PRELOAD_MODELS), the last `max_resident` staying."""
        if len(self._preload) > self._max_resident:
            logger.warning(
                "more preload models than resident slots: the first ones will be evicted",
                extra={"preload": self._preload, "max_resident_models": self._max_resident},
            )
        for model_id in self._preload:
            started = self._clock()
            try:
                model = self.model(model_id)
            except ModelNotAvailable as exc:  # a start-up error, not one job's
                raise ModelLoadError(
                    f"TTS_PRELOAD_MODELS names {model_id!r}, which is not available: {exc.message}",
                    details={"model_id": model_id},
                ) from exc
            try:
                model.warm_up()
            except Exception as exc:
                raise ModelLoadError(
                    f"model {model_id!r} loaded but its warm-up synthesis failed: "
                    f"{type(exc).__name__}: {exc}",
                    details={"model_id": model_id},
                ) from exc
            logger.info(
                "model warmed up",
                extra={"model_id": model_id, "warm_up_s": round(self._clock() - started, 3)},
            )

    # -- the registry ------------------------------------------------------------------------------------

    @property
    def max_resident(self) -> int:
        return self._max_resident

    @property
    def preload(self) -> list[str]:
        return list(self._preload)

    @property
    def resident(self) -> list[str]:
        """The loaded models, least recently used first."""
        with self._lock:
            return list(self._resident)

    def model(self, model_id: str) -> Synthesizer:
        """The loaded model `model_id` (a hit), or loaded now (evicting the least recently used first)."""
        with self._lock:
            found = self._resident.get(model_id)
            if found is not None:
                self._resident.move_to_end(model_id)
                self.stats.hits += 1
                self._metric(Metric.MODEL_HITS, "Count", 1)
                return found
            self._raise_if_known_unavailable(model_id)
            while len(self._resident) >= self._max_resident:
                self._evict()
            started = self._clock()
            try:
                loaded = self._loader.load(model_id)
            except ModelNotAvailable as exc:
                self._unavailable[model_id] = (self._monotonic() + UNAVAILABLE_TTL_S, exc)
                raise
            elapsed = self._clock() - started
            self._resident[model_id] = loaded.synthesizer
            self._front_ends.pop(model_id, None)  # the resident model answers for itself now
            self.stats.loads += 1
            self.stats.load_s += elapsed
            self.stats.loaded.append(model_id)
            self.stats.sources[model_id] = loaded.source
            self._metric(Metric.MODEL_LOADS, "Count", 1)
            self._metric(Metric.MODEL_LOAD_SECONDS, "Seconds", elapsed)
            logger.info(
                "model loaded into the registry",
                extra={
                    "model_id": model_id,
                    "source": loaded.source,
                    "load_s": round(elapsed, 3),
                    "resident": list(self._resident),
                },
            )
            return loaded.synthesizer

    def _evict(self) -> None:
        model_id, model = self._resident.popitem(last=False)
        self.stats.evicted.append(model_id)
        # Its tokenizer stays known: the next job's text for it is looked at without reloading weights.
        self._remember_front_end(model_id, _front_end_of(model))
        del model
        self._loader.reclaim()
        logger.info("model evicted", extra={"model_id": model_id, "resident": list(self._resident)})

    def _front_end(self, model_id: str) -> FrontEnd:
        with self._lock:
            resident = self._resident.get(model_id)
            if resident is not None:
                return resident
            known = self._front_ends.get(model_id)
            if known is not None:
                self._front_ends.move_to_end(model_id)
                return known
            self._raise_if_known_unavailable(model_id)
            try:
                front_end = self._loader.front_end(model_id)
            except ModelNotAvailable as exc:
                self._unavailable[model_id] = (self._monotonic() + UNAVAILABLE_TTL_S, exc)
                raise
            self._remember_front_end(model_id, front_end)
            return front_end

    def _remember_front_end(self, model_id: str, front_end: FrontEnd) -> None:
        self._front_ends[model_id] = front_end
        self._front_ends.move_to_end(model_id)
        while len(self._front_ends) > MAX_FRONT_ENDS:
            self._front_ends.popitem(last=False)

    def _raise_if_known_unavailable(self, model_id: str) -> None:
        known = self._unavailable.get(model_id)
        if known is None:
            return
        until, exc = known
        if self._monotonic() < until:
            raise ModelNotAvailable(exc.message, details=exc.details)
        del self._unavailable[model_id]

    def _metric(self, name: Metric, unit: str, value: float) -> None:
        if self._metrics is not None:
            self._metrics.add_metric(name=name, unit=unit, value=value)


def _front_end_of(synthesizer: Synthesizer) -> FrontEnd:
    """What to keep of an evicted model: a VitsSynthesizer's TextFrontEnd holds its tokenizer, not its
    weights; any other synthesizer answers for itself."""
    from tts_worker.synthesizer.text_frontend import TextFrontEnd

    front_end = getattr(synthesizer, "front_end", None)
    return front_end if isinstance(front_end, TextFrontEnd) else synthesizer


class VitsModelLoader:
    """Loads MMS VITS models from wherever the locator finds them, all with one device and dtype."""

    def __init__(
        self,
        locator: ModelLocator,
        *,
        device: Device = "auto",
        dtype: Dtype = "auto",
        decoder_runtime: DecoderRuntime = "auto",
        cpu_graph: CpuGraph = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        self._locator = locator
        self._device = device
        self._dtype = dtype
        self._decoder_runtime = decoder_runtime
        self._cpu_graph = cpu_graph
        self._cache_dir = cache_dir

    def front_end(self, model_id: str) -> FrontEnd:
        from tts_worker.synthesizer.text_frontend import TextFrontEnd

        located = self._locator.locate(model_id)
        try:
            return TextFrontEnd.load(located.path)
        except Exception as exc:
            if located.discard is not None:
                located.discard()  # a fetched copy that does not load is fetched again next time
            raise ModelLoadError(
                f"model {model_id!r}'s tokenizer could not be loaded from {located.source}: "
                f"{type(exc).__name__}: {exc}",
                details={"model_id": model_id},
            ) from exc

    def load(self, model_id: str) -> LoadedModel:
        from tts_worker.synthesizer.vits import VitsSynthesizer

        located = self._locator.locate(model_id)
        try:
            synthesizer = VitsSynthesizer.load(
                located.path,
                model_id=model_id,
                device=self._device,
                dtype=self._dtype,
                decoder_runtime=self._decoder_runtime,
                cpu_graph=self._cpu_graph,
                cache_dir=self._cache_dir,
            )
        except ModelLoadError:
            if located.discard is not None:
                located.discard()
            raise
        return LoadedModel(synthesizer, located.source)

    def reclaim(self) -> None:
        """Give an evicted model's memory back (CUDA keeps freed blocks cached unless told)."""
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
