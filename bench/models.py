"""Many models in one worker: what a model switch costs, and what mixing languages in a burst costs.

Both on the full MMS architecture (`mms-random-{language}`, one generated model per language), through the
worker's own model registry (tts_worker.synthesizer.registry), with the models saved as the build saves them:
`prefetch.to_store` writes the image's models directory (as `prefetch TARGET --models ...` does) and uploads
the same directories to a model store on moto (a ThreadedMotoServer on 127.0.0.1).

* Switch: a registry with room for one model holds one language's model; a job for another language makes
  that one resident. Timed in parts: download (the locator: nothing from the image, a GetObject per file
  from the store, into a cache directory made fresh each time so it really downloads), load (from_pretrained
  and the ONNX Runtime decoder session, checked against eager), eviction of the previous model, and the
  first synthesis of one short sentence; a second synthesis of the same sentence for reference.
* Burst: the same short Finnish texts through the worker core (harness.worker), spoken by one language's
  model, then by three languages' models interleaved with room for all three, and with room for one (the
  registry loading from the image directory whenever the next group needs another model).
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench import harness, texts
from bench.harness import Job, Machine, Run, make_jobs
from tts_common.adapters.model_store import DEFAULT_PREFIX, ModelStore
from tts_worker.synthesizer.base import SynthesisItem
from tts_worker.synthesizer.registry import ModelRegistry, VitsModelLoader
from tts_worker.synthesizer.sources import LocatedModel, ModelLocator, model_dir_name
from tts_worker.synthesizer.vits import VitsSynthesizer

LANGUAGES = ("fin", "eng", "swh")
RECIPE = "mms-random"
BUCKET = "bench-models"
PREFIX = DEFAULT_PREFIX
FIRST_TEXT = "Hyvää huomenta, tämä on lyhyt testi."  # as bench.coldstart's first synthesis
SOURCES = {"image": "image directory (TTS_IMAGE_MODELS_DIR)", "store": "model store on moto (S3 GetObject)"}


def model_id(language: str) -> str:
    return f"{RECIPE}-{language}"


@dataclass(frozen=True, slots=True)
class Switch:
    """One model made resident in a registry with room for one, the previous one evicted."""

    model_id: str
    download_s: float
    load_s: float
    evict_s: float
    first_s: float
    warm_s: float  # the same sentence again, once resident: what the first synthesis is compared with

    @property
    def total_s(self) -> float:
        return self.download_s + self.load_s + self.evict_s + self.first_s


@dataclass(frozen=True, slots=True)
class Burst:
    label: str
    languages: tuple[str, ...]
    max_resident: int
    max_batch: int
    loads: int  # models the registry loaded during the burst
    run: Run


@dataclass
class ModelResults:
    machine: Machine
    command: str
    quick: bool
    languages: tuple[str, ...]
    model_ids: tuple[str, ...]
    model_mb: float  # one saved model directory (weights, tokenizer, onnx/ decoder export)
    parameters_m: float
    measured_at: str
    prepare_s: float = 0.0  # generating, saving, exporting and uploading the models (not timed otherwise)
    switches: dict[str, list[Switch]] = field(default_factory=dict)  # source -> switches, in order
    bursts: list[Burst] = field(default_factory=list)
    burst_texts: tuple[int, int] = (0, 0)  # (texts, characters each)
    elapsed_s: float = 0.0

    def median(self, source: str, part: str) -> float:
        return statistics.median(float(getattr(s, part)) for s in self.switches[source])

    @property
    def baseline(self) -> Burst:
        return self.bursts[0]


def log(message: str) -> None:
    print(f"[bench models {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the stores ----------------------------------------------------------------------------------------------


@contextmanager
def moto_store() -> Iterator[ModelStore]:
    """A ModelStore on a fresh moto server (127.0.0.1, a free port), its bucket created."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET)
        yield ModelStore(s3_client=s3, bucket=BUCKET, prefix=PREFIX)
    finally:
        server.stop()


class _TimedLocator(ModelLocator):
    """Each lookup through a locator made fresh for it (`fresh`), timed: the download part of a switch."""

    def __init__(self, fresh: Callable[[], ModelLocator]) -> None:
        super().__init__(cache_dir=Path(tempfile.gettempdir()))
        self._fresh = fresh
        self.last_s = 0.0

    def locate(self, model_id: str) -> LocatedModel:
        started = time.perf_counter()
        found = self._fresh().locate(model_id)
        self.last_s = time.perf_counter() - started
        return found


def _registry(
    locator: ModelLocator, *, max_resident: int, scratch: Path, preload: Sequence[str] = ()
) -> ModelRegistry:
    """A CPU registry as build_synthesizer makes one (one piece per call, decoder on ONNX Runtime)."""
    loader = VitsModelLoader(locator, device="cpu", dtype="float32", cache_dir=scratch / "decoder-cache")
    registry = ModelRegistry(
        loader,
        default_model=model_id(LANGUAGES[0]),
        max_resident=max_resident,
        device="cpu",
        max_items_per_call=1,
        preload=preload,
    )
    registry.warm_up()
    return registry


def _synthesis_s(registry: ModelRegistry, model: str) -> float:
    started = time.perf_counter()
    registry.synthesize([SynthesisItem(text=FIRST_TEXT, seed=0, model_id=model)])
    return time.perf_counter() - started


def switches(registry: ModelRegistry, locator: _TimedLocator, order: Sequence[str]) -> list[Switch]:
    """Make each model of `order` resident in turn (room for one: each evicts the one before)."""
    found = []
    for model in order:
        load_before = registry.stats.load_s
        started = time.perf_counter()
        registry.model(model)
        resident_s = time.perf_counter() - started
        located_s = locator.last_s
        loaded_s = registry.stats.load_s - load_before  # the loader's part: locate, then load
        first = _synthesis_s(registry, model)
        warm = _synthesis_s(registry, model)
        switch = Switch(
            model_id=model,
            download_s=located_s,
            load_s=loaded_s - located_s,
            evict_s=resident_s - loaded_s,
            first_s=first,
            warm_s=warm,
        )
        found.append(switch)
        log(
            f"switch to {model}: download {switch.download_s:.2f} s, load {switch.load_s:.2f} s, "
            f"evict {switch.evict_s:.2f} s, first synthesis {switch.first_s:.2f} s (warm {warm:.2f} s)"
        )
    return found


# -- bursts --------------------------------------------------------------------------------------------------


def burst_jobs(burst_texts: Sequence[str], languages: Sequence[str], *, prefix: str) -> list[Job]:
    """Job n speaks text n in languages[n % len(languages)]: the languages interleaved."""
    jobs = []
    for n, text in enumerate(burst_texts):
        language = languages[n % len(languages)]
        jobs.extend(make_jobs([text], prefix=f"{prefix}-{n}", model_id=model_id(language), language=language))
    return jobs


def burst(
    registry: ModelRegistry,
    burst_texts: Sequence[str],
    languages: Sequence[str],
    *,
    label: str,
    max_batch: int,
) -> Burst:
    jobs = burst_jobs(burst_texts, languages, prefix=label.split(",")[0].replace(" ", "-"))
    loads = registry.stats.loads
    run = harness.worker(registry, jobs, max_batch=max_batch)
    found = Burst(
        label=label,
        languages=tuple(languages),
        max_resident=registry.max_resident,
        max_batch=max_batch,
        loads=registry.stats.loads - loads,
        run=run,
    )
    log(f"burst {label}: {run.chars_per_s:,.1f} chars/s, {found.loads} model load(s)")
    return found


# -- the whole part ------------------------------------------------------------------------------------------


def measure(*, command: str, quick: bool, max_batch: int = 16) -> ModelResults:
    from transformers.utils import logging as hf_logging

    from tts_worker import prefetch
    from tts_worker.synthesizer.random_models import default_cache_dir

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # as build_synthesizer does
    started = time.perf_counter()
    machine = harness.machine()
    ids = [model_id(language) for language in LANGUAGES]
    rounds = 1 if quick else 2  # each round switches to every language once
    size, count = (60, 6) if quick else (60, 12)
    burst_texts = texts.texts(size, count, offset=2)
    with tempfile.TemporaryDirectory(prefix="bench-models-") as scratch_name, moto_store() as store:
        scratch = Path(scratch_name)
        image_dir = scratch / "image"
        log(f"saving {', '.join(ids)} into {image_dir} and uploading them to {store.location} (untimed)")
        # What the image build (`prefetch TARGET --models ...`) and `prefetch --to-store` do.
        prefetch.to_store(ids, store, work_dir=image_dir, generated_cache=default_cache_dir())
        prepared = time.perf_counter()
        saved = image_dir / model_dir_name(ids[0])
        model_mb = sum(p.stat().st_size for p in saved.rglob("*") if p.is_file()) / 2**20

        results = ModelResults(
            machine=machine,
            command=command,
            quick=quick,
            languages=LANGUAGES,
            model_ids=tuple(ids),
            model_mb=model_mb,
            parameters_m=0.0,
            measured_at=time.strftime("%Y-%m-%d"),
            prepare_s=prepared - started,
            burst_texts=(count, size),
        )
        order = ids * rounds

        # From the image directory: the files are local (and, just written, in the page cache).
        image = _TimedLocator(lambda: ModelLocator(cache_dir=scratch / "cache", image_dir=image_dir))
        registry = _registry(image, max_resident=1, scratch=scratch, preload=[ids[-1]])  # untimed first
        model = registry.model(ids[-1])
        if isinstance(model, VitsSynthesizer):
            results.parameters_m = sum(p.numel() for p in model.model.parameters()) / 1e6
        del model
        log(f"switches from the image directory, {len(order)} of them")
        results.switches["image"] = switches(registry, image, order)
        del registry
        gc.collect()

        # From the store: every lookup in a cache directory of its own, so each one downloads.
        caches: list[Path] = []

        def fresh_store_locator() -> ModelLocator:
            for old in caches:
                shutil.rmtree(old, ignore_errors=True)  # the resident model is in memory already
            caches.append(Path(tempfile.mkdtemp(prefix="cache-", dir=scratch)))
            return ModelLocator(cache_dir=caches[-1], store=store)

        stored = _TimedLocator(fresh_store_locator)
        registry = _registry(stored, max_resident=1, scratch=scratch, preload=[ids[-1]])
        log(f"switches from the model store, {len(order)} of them")
        results.switches["store"] = switches(registry, stored, order)
        del registry
        gc.collect()
        for old in caches:
            shutil.rmtree(old, ignore_errors=True)

        # Bursts: the same texts, one language, then the three interleaved; models from the image.
        log(f"bursts: {count} texts of ~{size} characters, TTS_MAX_BATCH {max_batch}")
        registry = _registry(image, max_resident=1, scratch=scratch, preload=[ids[0]])
        results.bursts.append(
            burst(
                registry, burst_texts, LANGUAGES[:1], label="one language, room for one", max_batch=max_batch
            )
        )
        results.bursts.append(
            burst(
                registry,
                burst_texts,
                LANGUAGES,
                label=f"{len(LANGUAGES)} languages interleaved, room for one",
                max_batch=max_batch,
            )
        )
        registry.model(ids[0])  # as the bursts before began: the first language resident
        results.bursts.append(
            burst(
                registry,
                burst_texts,
                LANGUAGES,
                label=f"{len(LANGUAGES)} languages interleaved, room for one, one job per batch",
                max_batch=1,
            )
        )
        del registry
        gc.collect()
        registry = _registry(image, max_resident=len(LANGUAGES), scratch=scratch, preload=ids)
        results.bursts.insert(
            1,
            burst(
                registry,
                burst_texts,
                LANGUAGES,
                label=f"{len(LANGUAGES)} languages interleaved, room for {len(LANGUAGES)}",
                max_batch=max_batch,
            ),
        )
        del registry
        gc.collect()
    machine.load_after = os.getloadavg()
    results.elapsed_s = time.perf_counter() - started
    return results
