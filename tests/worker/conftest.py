"""Worker fixtures: the tiny-random model (built once per session), fakes for the core, moto resources."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.worker.support import TINY, FakeSynthesizer, MemoryEvents, MemoryMetrics, MemoryStore, WorkerAws
from tts_worker.synthesizer.base import Synthesizer


@pytest.fixture
def fake_synthesizer() -> FakeSynthesizer:
    return FakeSynthesizer()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def events() -> MemoryEvents:
    return MemoryEvents()


@pytest.fixture
def metrics() -> MemoryMetrics:
    return MemoryMetrics()


# -- the real model path -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tts-cache")


@pytest.fixture(scope="session")
def tiny_model_dir(model_cache_dir: Path) -> Path:
    """tiny-random generated and saved once per session."""
    from tts_worker.synthesizer.random_models import ensure_generated

    return ensure_generated(TINY, model_cache_dir)


@pytest.fixture(scope="session")
def tiny_synthesizer(tiny_model_dir: Path, model_cache_dir: Path) -> Synthesizer:
    """Loaded through from_pretrained from the saved directory, warmed up, on the CPU."""
    from tts_worker.synthesizer.loader import load_synthesizer

    # One thread: the tiny model gains nothing from more, and it keeps timings steady on a busy machine.
    return load_synthesizer(TINY, device="cpu", num_threads=1, cache_dir=model_cache_dir)


@pytest.fixture
def worker_aws_factory(
    aws: None, monkeypatch: pytest.MonkeyPatch, model_cache_dir: Path
) -> Callable[..., WorkerAws]:
    """Provision on moto with the given queue settings; the worker's environment points at it."""
    import boto3

    from local.provision import provision

    def make(*, jobs_visibility_timeout_s: int = 900, max_receive_count: int = 3) -> WorkerAws:
        resources = provision(
            prefix="worker",
            jobs_visibility_timeout_s=jobs_visibility_timeout_s,
            max_receive_count=max_receive_count,
        )
        for key, value in resources.environment().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("TTS_MODEL_OVERRIDES", f"fin={TINY}")
        monkeypatch.setenv("TTS_DEVICE", "cpu")
        monkeypatch.setenv("TTS_NUM_THREADS", "1")
        monkeypatch.setenv("TTS_CACHE_DIR", str(model_cache_dir))
        monkeypatch.setenv("POLL_WAIT_S", "0")
        return WorkerAws(
            resources=resources,
            sqs=boto3.client("sqs", region_name="us-east-1"),
            s3=boto3.client("s3", region_name="us-east-1"),
        )

    return make


@pytest.fixture
def worker_aws(worker_aws_factory: Callable[..., WorkerAws]) -> WorkerAws:
    return worker_aws_factory()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Entry points reconfigure the package loggers (Powertools JSON); undo it for the tests that follow."""
    names = ("tts_worker", "tts_common")
    saved = {n: (lg.handlers[:], lg.level, lg.propagate) for n in names for lg in [logging.getLogger(n)]}
    yield
    for name, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers, lg.level, lg.propagate = handlers, level, propagate
