"""The worker's model registry: several models behind one Synthesizer, loaded on first use from the image,
the model store or (if allowed) the hub, the least recently used evicted; uroman for non-Latin scripts."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.worker.support import MemoryMetrics
from tts_common.adapters.model_store import MANIFEST, ModelStore
from tts_common.exceptions import ModelLoadError, ModelNotAvailable
from tts_common.metrics import Metric
from tts_worker.failures import Disposition, decide, error_info
from tts_worker.synthesizer.base import SynthesisItem
from tts_worker.synthesizer.registry import MAX_FRONT_ENDS, LoadedModel, ModelRegistry, VitsModelLoader
from tts_worker.synthesizer.sources import ModelLocator, model_dir_name
from tts_worker.synthesizer.vits import VitsSynthesizer

pytestmark = pytest.mark.model

LANGUAGES = ("fin", "eng", "swh")
TEXT = "Hyvää huomenta, tämä on testi."
BUCKET = "tts-models-test"


def model_id(language: str) -> str:
    return f"tiny-random-{language}"


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory, model_cache_dir: Path) -> Path:
    """An image's models directory as `prefetch --languages fin,eng,swh --template tiny-random-{language}`
    writes it: one saved directory per model, named by model_dir_name, with its ONNX decoder export."""
    from tts_worker import prefetch
    from tts_worker.synthesizer.random_models import ensure_generated

    root = tmp_path_factory.mktemp("image-models")
    for language in LANGUAGES:
        target = root / model_dir_name(model_id(language))
        shutil.copytree(ensure_generated(model_id(language), model_cache_dir), target)
        prefetch.export_decoder(target)
    return root


@pytest.fixture(scope="session")
def alone(image_dir: Path) -> dict[str, VitsSynthesizer]:
    """Each language's model loaded on its own, as a one-model worker would: the reference audio."""
    return {
        language: VitsSynthesizer.load(image_dir / model_dir_name(model_id(language)), device="cpu")
        for language in LANGUAGES
    }


def registry_over(
    locator: ModelLocator, cache_dir: Path, *, max_resident: int, metrics: MemoryMetrics | None = None
) -> ModelRegistry:
    return ModelRegistry(
        VitsModelLoader(locator, device="cpu", cache_dir=cache_dir),
        default_model=model_id("fin"),
        max_resident=max_resident,
        device="cpu",
        metrics=metrics,
    )


def item(text: str = TEXT, *, seed: int = 5, model: str = "") -> SynthesisItem:
    return SynthesisItem(text=text, seed=seed, model_id=model)


# -- many models, few slots ----------------------------------------------------------------------------------


def test_a_registry_with_room_for_one_model_serves_alternating_languages(
    image_dir: Path, alone: dict[str, VitsSynthesizer], tmp_path: Path
) -> None:
    # Given a registry with room for one model, its models in the image
    metrics = MemoryMetrics()
    registry = registry_over(
        ModelLocator(cache_dir=tmp_path, image_dir=image_dir), tmp_path, max_resident=1, metrics=metrics
    )
    order = ["fin", "eng", "fin", "swh", "eng"]

    # When jobs alternate between languages
    spoken = [registry.synthesize([item(model=model_id(lang))])[0] for lang in order]

    # Then each item's audio is its own language's model's, alone
    for language, result in zip(order, spoken, strict=True):
        [reference] = alone[language].synthesize([item()])
        assert np.array_equal(result.waveform, reference.waveform), language
        assert result.sampling_rate == 16_000
    # and the languages' models really differ, so a wrong choice would have shown
    assert not np.array_equal(spoken[0].waveform, spoken[1].waveform)
    # and every switch was a load, the one resident model evicted first
    assert registry.stats.loads == 5
    assert registry.stats.hits == 0
    assert registry.stats.evicted == [model_id(lang) for lang in ["fin", "eng", "fin", "swh"]]
    assert registry.resident == [model_id("eng")]
    assert set(registry.stats.sources.values()) == {"image"}
    assert metrics.total(Metric.MODEL_LOADS) == 5
    assert len([v for n, _, v in metrics.values if n == Metric.MODEL_LOAD_SECONDS and v > 0]) == 5


def test_a_worker_with_room_for_one_model_speaks_each_job_in_its_own_language(
    image_dir: Path, alone: dict[str, VitsSynthesizer], tmp_path: Path
) -> None:
    from tests.worker.support import MemoryEvents, MemoryStore, job_body, make_core
    from tts_worker.ports import QueueMessage

    # Given jobs in alternating languages, one batch, and a worker core whose registry holds one model
    jobs = {"j1": "fin", "j2": "eng", "j3": "fin", "j4": "swh", "j5": "eng"}
    messages = [
        QueueMessage(f"m-{t}", job_body(f"Lause {t}. Toinen lause.", task_id=t, model_id=model_id(lang)))
        for t, lang in jobs.items()
    ]
    registry = registry_over(ModelLocator(cache_dir=tmp_path, image_dir=image_dir), tmp_path, max_resident=1)
    store = MemoryStore()

    # When the batch is processed
    outcomes = make_core(registry, store, MemoryEvents()).process_batch(messages)  # type: ignore[arg-type]

    # Then every job's audio is byte for byte what a worker of its language's model alone writes
    assert all(o.disposition is Disposition.SUCCEEDED for o in outcomes)
    for (task_id, language), message in zip(jobs.items(), messages, strict=True):
        reference = MemoryStore()
        make_core(alone[language], reference, MemoryEvents()).process_batch([message])  # type: ignore[arg-type]
        [(key, (_, expected))] = reference.audio.items()
        assert store.audio[key][1] == expected, task_id
    # and the core grouped by model, so each model loaded once however the jobs alternate
    assert registry.stats.loads == 3
    assert len({body for _, body in store.audio.values()}) == len(jobs)


def test_the_least_recently_used_model_is_evicted(image_dir: Path, tmp_path: Path) -> None:
    metrics = MemoryMetrics()
    registry = registry_over(
        ModelLocator(cache_dir=tmp_path, image_dir=image_dir), tmp_path, max_resident=2, metrics=metrics
    )
    fin, eng, swh = (model_id(lang) for lang in LANGUAGES)

    for model in (fin, eng, fin, swh):  # fin is used again after eng: eng is the least recently used
        registry.synthesize([item(model=model)])

    assert registry.stats.evicted == [eng]
    assert registry.resident == [fin, swh]
    assert (registry.stats.loads, registry.stats.hits) == (3, 1)
    assert (metrics.total(Metric.MODEL_LOADS), metrics.total(Metric.MODEL_HITS)) == (3, 1)


def test_one_call_speaks_with_one_model(image_dir: Path, tmp_path: Path) -> None:
    registry = registry_over(ModelLocator(cache_dir=tmp_path, image_dir=image_dir), tmp_path, max_resident=2)
    with pytest.raises(ValueError, match="one model"):
        registry.synthesize([item(model=model_id("fin")), item(model=model_id("eng"))])
    assert registry.stats.loads == 0


def test_an_item_without_a_model_id_is_spoken_by_the_default_model(
    image_dir: Path, alone: dict[str, VitsSynthesizer], tmp_path: Path
) -> None:
    registry = registry_over(ModelLocator(cache_dir=tmp_path, image_dir=image_dir), tmp_path, max_resident=1)

    [result] = registry.synthesize([item()])

    assert np.array_equal(result.waveform, alone["fin"].synthesize([item()])[0].waveform)
    assert registry.resident == [model_id("fin")]
    assert registry.model_id == model_id("fin")


def test_looking_at_a_text_loads_no_weights(image_dir: Path, tmp_path: Path) -> None:
    # Given a registry full with the Finnish model
    registry = registry_over(ModelLocator(cache_dir=tmp_path, image_dir=image_dir), tmp_path, max_resident=1)
    registry.synthesize([item(model=model_id("fin"))])

    # When the core asks about texts for other models
    speakable = registry.is_speakable("hello world", model_id("eng"))
    unspeakable = registry.is_speakable("123 ✓ 456", model_id("swh"))
    rate = registry.sampling_rate_for(model_id("swh"))

    # Then the tokenizers answer, and the resident model stays
    assert speakable
    assert not unspeakable
    assert rate == 16_000
    assert registry.resident == [model_id("fin")]
    assert registry.stats.loads == 1


class CountingLoader:
    """A loader that finds nothing, counting how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def load(self, model_id: str) -> LoadedModel:
        self.asked += 1
        raise ModelNotAvailable(f"no {model_id}", details={"model_id": model_id})

    def front_end(self, model_id: str) -> Any:
        self.asked += 1
        raise ModelNotAvailable(f"no {model_id}", details={"model_id": model_id})

    def reclaim(self) -> None:
        pass


def test_a_missing_model_is_remembered_for_a_while() -> None:
    loader = CountingLoader()
    now = [0.0]
    registry = ModelRegistry(
        loader, default_model="x", max_resident=1, device="cpu", monotonic=lambda: now[0]
    )

    for _ in range(3):
        with pytest.raises(ModelNotAvailable):
            registry.synthesize([item(model="acme/missing")])
    with pytest.raises(ModelNotAvailable):
        registry.is_speakable("hei", "acme/missing")
    assert loader.asked == 1
    now[0] += 61
    with pytest.raises(ModelNotAvailable):
        registry.is_speakable("hei", "acme/missing")
    assert loader.asked == 2
    assert MAX_FRONT_ENDS >= 100


# -- where weights come from ---------------------------------------------------------------------------------


def test_model_dir_names_are_safe_and_one_to_one() -> None:
    assert model_dir_name("facebook/mms-tts-fin") == "facebook--mms-tts-fin"
    assert model_dir_name("tiny-random-fin") == "tiny-random-fin"
    for bad in ("", "../etc", "a/b/c", "a--b/c", "/abs", "a/..", ".hidden", "a b", "a/b\n", "x" * 201):
        with pytest.raises(ValueError, match="is not a model id"):
            model_dir_name(bad)


def upload_as(store: ModelStore, model: str, directory: Path) -> None:
    store.upload(model_dir_name(model), directory)


@pytest.fixture
def store(aws: None) -> ModelStore:
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    return ModelStore(s3_client=s3, bucket=BUCKET, prefix="models/")


def test_a_model_comes_from_the_store_into_the_cache(
    store: ModelStore, image_dir: Path, alone: dict[str, VitsSynthesizer], tmp_path: Path
) -> None:
    # Given the Swahili model in the store under a hub-style id that nothing can generate
    upload_as(store, "acme/mms-tts-swh", image_dir / model_dir_name(model_id("swh")))
    cache = tmp_path / "cache"
    registry = registry_over(ModelLocator(cache_dir=cache, store=store), cache, max_resident=1)

    # When a job asks for it
    [result] = registry.synthesize([item(model="acme/mms-tts-swh")])

    # Then it was downloaded into the cache, ONNX export included, and speaks as the model does alone
    copy = cache / "store" / "acme--mms-tts-swh"
    assert (copy / "config.json").is_file()
    assert list((copy / "onnx").glob("*.onnx"))
    assert not (copy / MANIFEST).exists()
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
    assert registry.stats.sources == {"acme/mms-tts-swh": "store"}
    assert np.array_equal(result.waveform, alone["swh"].synthesize([item()])[0].waveform)
    # and its decoder runs from the export it came with (nothing exported into the cache)
    model = registry.model("acme/mms-tts-swh")
    assert isinstance(model, VitsSynthesizer)
    assert model.cpu_decoder is not None
    assert model.cpu_decoder.path.parent == copy / "onnx"
    assert not (cache / "onnx").exists()


def test_a_cached_store_copy_is_used_without_the_store(
    store: ModelStore, image_dir: Path, tmp_path: Path
) -> None:
    upload_as(store, "acme/mms-tts-fin", image_dir / model_dir_name(model_id("fin")))
    locator = ModelLocator(cache_dir=tmp_path, store=store)
    assert locator.locate("acme/mms-tts-fin").source == "store"

    class NoStore:
        location = "s3://nowhere/"

        def download(self, name: str, target: Path) -> bool:
            raise AssertionError("the store was asked again")

    again = ModelLocator(cache_dir=tmp_path, store=NoStore()).locate("acme/mms-tts-fin")
    assert again.source == "store"
    assert (again.path / "config.json").is_file()


def test_the_image_comes_before_the_store(store: ModelStore, image_dir: Path, tmp_path: Path) -> None:
    upload_as(store, model_id("fin"), image_dir / model_dir_name(model_id("eng")))
    located = ModelLocator(cache_dir=tmp_path, image_dir=image_dir, store=store).locate(model_id("fin"))
    assert (located.source, located.path) == ("image", image_dir / model_id("fin"))


def test_an_upload_without_its_manifest_is_not_a_model(
    store: ModelStore, image_dir: Path, tmp_path: Path
) -> None:
    # Given an upload that stopped before its manifest (the last object written)
    upload_as(store, "acme/mms-tts-eng", image_dir / model_dir_name(model_id("eng")))
    store._s3.delete_object(Bucket=BUCKET, Key=store.key("acme--mms-tts-eng", MANIFEST))

    # Then the model is not available, and nothing half-downloaded is left in the cache
    with pytest.raises(ModelNotAvailable, match="model store"):
        ModelLocator(cache_dir=tmp_path, store=store).locate("acme/mms-tts-eng")
    assert not (tmp_path / "store" / "acme--mms-tts-eng").exists()


def test_a_download_that_does_not_match_its_manifest_leaves_nothing(
    store: ModelStore, image_dir: Path, tmp_path: Path
) -> None:
    upload_as(store, "acme/mms-tts-eng", image_dir / model_dir_name(model_id("eng")))
    store._s3.put_object(Bucket=BUCKET, Key=store.key("acme--mms-tts-eng", "config.json"), Body=b"{}")

    with pytest.raises(ValueError, match="manifest says"):
        store.download("acme--mms-tts-eng", tmp_path / "target")
    assert list(tmp_path.iterdir()) == []


def test_a_cached_copy_that_does_not_load_is_fetched_again(
    store: ModelStore, image_dir: Path, tmp_path: Path
) -> None:
    # Given a cached store copy whose weights were spoiled on disk
    upload_as(store, "acme/mms-tts-fin", image_dir / model_dir_name(model_id("fin")))
    locator = ModelLocator(cache_dir=tmp_path, store=store)
    copy = locator.locate("acme/mms-tts-fin").path
    (copy / "model.safetensors").write_bytes(b"not weights")
    loader = VitsModelLoader(locator, device="cpu", cache_dir=tmp_path)

    # When it is loaded, the load fails (the job is retried) and the copy is gone
    with pytest.raises(ModelLoadError):
        loader.load("acme/mms-tts-fin")
    assert not copy.exists()
    # and the next try downloads it again and loads
    assert loader.load("acme/mms-tts-fin").source == "store"


def test_no_image_no_store_copy_and_no_hub_is_model_not_available(
    store: ModelStore, image_dir: Path, tmp_path: Path
) -> None:
    # Given a worker with an image and a store that lack the model, and the hub not allowed
    registry = registry_over(
        ModelLocator(cache_dir=tmp_path, image_dir=image_dir, store=store, allow_hub=False),
        tmp_path,
        max_resident=1,
    )

    # When a job asks for it
    with pytest.raises(ModelNotAvailable) as raised:
        registry.synthesize([item(model="facebook/mms-tts-xyz")])

    # Then the error names where it looked, and fails the task now with a public reason
    assert "hub (not allowed" in raised.value.message
    assert "model store" in raised.value.message
    assert decide(raised.value, receive_count=1, max_receive_count=3) is Disposition.FAILED
    info = error_info(raised.value, Disposition.FAILED, attempts=1)
    assert info.code == "model_not_available"
    assert "xyz" not in info.message
    # and the worker goes on: other models still load
    assert registry.synthesize([item(model=model_id("eng"))])


def test_the_hub_when_allowed_but_offline_is_model_not_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotAvailable, match="not on the hub"):
        ModelLocator(cache_dir=tmp_path, allow_hub=True).locate("no-such-org/mms-tts-xyz")


def test_a_generated_model_is_built_when_nothing_else_has_it(tmp_path: Path, model_cache_dir: Path) -> None:
    located = ModelLocator(cache_dir=model_cache_dir).locate(model_id("fin"))
    assert located.source == "generated"
    assert (located.path / "config.json").is_file()


def test_a_directory_id_is_loaded_as_it_is(image_dir: Path, tmp_path: Path) -> None:
    path = image_dir / model_id("eng")
    assert ModelLocator(cache_dir=tmp_path).locate(str(path)).source == "directory"
    with pytest.raises(ModelNotAvailable):
        ModelLocator(cache_dir=tmp_path).locate(str(tmp_path / "nothing-here"))


# -- the worker's wiring -------------------------------------------------------------------------------------


def test_the_worker_builds_a_registry_with_its_preloaded_models(
    image_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tts_common.settings import WorkerSettings, load_settings
    from tts_worker.runtime import build_synthesizer

    for key, value in {
        "TASKS_TABLE_NAME": "t",
        "AUDIO_BUCKET_NAME": "audio",
        "JOBS_QUEUE_URL": "q",
        "EVENTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:e",
        "TTS_LANGUAGES": "fin,eng",
        "TTS_MODEL_TEMPLATE": "tiny-random-{language}",
        "TTS_DEVICE": "cpu",
        "TTS_NUM_THREADS": "1",
        "TTS_IMAGE_MODELS_DIR": str(image_dir),
        "TTS_CACHE_DIR": str(tmp_path),
        "TTS_PRELOAD_MODELS": "tiny-random-eng, tiny-random-fin",
    }.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(WorkerSettings)
    assert settings.model_store_bucket == "audio"
    assert settings.tts_model_store_prefix == "models/"
    assert not settings.tts_allow_hub

    metrics = MemoryMetrics()
    registry = build_synthesizer(settings, metrics=metrics)

    assert registry.resident == ["tiny-random-eng", "tiny-random-fin"]
    assert registry.max_resident == 3  # the CPU default
    assert registry.model_id == "tiny-random-fin"  # the default language's model
    assert (registry.device, registry.pads_batches, registry.max_items_per_call) == ("cpu", False, 1)
    assert set(registry.stats.sources.values()) == {"image"}
    assert metrics.total(Metric.MODEL_LOADS) == 2


def test_a_preload_model_that_is_nowhere_stops_the_start(tmp_path: Path) -> None:
    registry = ModelRegistry(
        VitsModelLoader(ModelLocator(cache_dir=tmp_path), device="cpu"),
        default_model="acme/missing",
        max_resident=1,
        device="cpu",
        preload=["acme/missing"],
    )
    with pytest.raises(ModelLoadError, match="TTS_PRELOAD_MODELS"):
        registry.warm_up()


# -- uroman -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def russian(model_cache_dir: Path) -> VitsSynthesizer:
    """A generated model for a Cyrillic-script language: its tokenizer says is_uroman, as MMS Russian's."""
    from tts_worker.synthesizer.random_models import ensure_generated

    return VitsSynthesizer.load(ensure_generated("tiny-random-rus", model_cache_dir), device="cpu")


def test_text_in_a_non_latin_script_is_romanized_for_an_is_uroman_model(
    russian: VitsSynthesizer, alone: dict[str, VitsSynthesizer]
) -> None:
    assert russian.tokenizer.is_uroman
    assert not alone["fin"].tokenizer.is_uroman

    # Cyrillic and Devanagari become Latin characters the vocabulary knows
    assert russian.front_end.prepare("Привет, мир!") == "Privet, mir!"
    assert russian.front_end.prepare("नमस्ते") == "namaste"
    assert russian.front_end.prepare("Hei, maailma!") == "Hei, maailma!"  # ASCII is left alone
    assert russian.front_end.prepare("Да ✓") == "Da "  # what uroman leaves non-Latin goes
    # so the item is speakable, and spoken, while a model without is_uroman keeps nothing of it
    assert russian.is_speakable("Привет мир")
    assert not alone["fin"].is_speakable("Привет мир")
    [result] = russian.synthesize([item("Привет, мир!", seed=2)])
    assert result.duration_s > 0.3
    # and the romanized text is what was spoken
    [latin] = russian.synthesize([item("Privet, mir!", seed=2)])
    assert np.array_equal(result.waveform, latin.waveform)


def test_uroman_works_without_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from tts_worker.synthesizer import text_frontend

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    text_frontend._romanizer.cache_clear()  # load its tables again, now offline
    try:
        assert text_frontend.romanize("Москва", language="rus") == "Moskva"
    finally:
        text_frontend._romanizer.cache_clear()


def test_the_registry_romanizes_for_an_is_uroman_model_through_its_front_end(
    russian: VitsSynthesizer, model_cache_dir: Path, tmp_path: Path
) -> None:
    registry = registry_over(ModelLocator(cache_dir=model_cache_dir), tmp_path, max_resident=1)
    assert registry.is_speakable("Привет", "tiny-random-rus")
    assert registry.stats.loads == 0  # the tokenizer alone answered
    [result] = registry.synthesize([item("Привет", model="tiny-random-rus")])
    assert np.array_equal(result.waveform, russian.synthesize([item("Привет")])[0].waveform)
