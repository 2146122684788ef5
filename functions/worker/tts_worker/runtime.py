"""Wiring shared by both entry points: settings, the loaded synthesizer, the adapters, the core."""

from __future__ import annotations

from tts_common.settings import WorkerSettings
from tts_common.wiring import audio_store_from, publisher_from, repository_from
from tts_worker.core import CoreConfig, WorkerCore
from tts_worker.ports import MetricsSink
from tts_worker.synthesizer.base import Synthesizer
from tts_worker.synthesizer.loader import load_synthesizer

# Finished jobs' S3 puts and SNS publishes overlap the next group's synthesis (boto3 clients are thread-safe).
IO_WORKERS = 4


def build_synthesizer(settings: WorkerSettings) -> Synthesizer:
    return load_synthesizer(
        settings.tts_model,
        device=settings.tts_device,
        dtype=settings.tts_dtype,
        num_threads=settings.tts_num_threads,
        decoder_runtime=settings.tts_decoder_runtime,
        cache_dir=settings.tts_cache_dir,
    )


def build_core(
    settings: WorkerSettings,
    *,
    metrics: MetricsSink | None = None,
    synthesizer: Synthesizer | None = None,
) -> WorkerCore:
    return WorkerCore(
        synthesizer=synthesizer or build_synthesizer(settings),
        store=audio_store_from(settings),
        events=publisher_from(settings),
        tasks=repository_from(settings),
        config=CoreConfig.from_settings(settings, io_workers=IO_WORKERS),
        metrics=metrics,
    )
