"""Wiring shared by both entry points: settings, the model registry, the adapters, the core."""

from __future__ import annotations

import logging
import time

from tts_common.adapters.aws import client
from tts_common.adapters.model_store import ModelStore
from tts_common.settings import WorkerSettings
from tts_common.storage.plans import PlanLedger
from tts_common.wiring import audio_store_from, publisher_from, repository_from
from tts_worker.core import CoreConfig, WorkerCore
from tts_worker.fanout import FanoutPorts, PartStore, QueueSender
from tts_worker.ports import MetricsSink
from tts_worker.synthesizer.base import Synthesizer
from tts_worker.synthesizer.registry import ModelRegistry, VitsModelLoader
from tts_worker.synthesizer.sources import ModelLocator

logger = logging.getLogger(__name__)

# Finished jobs' S3 puts and SNS publishes overlap the next group's synthesis (boto3 clients are thread-safe).
IO_WORKERS = 4

# Models kept loaded when TTS_MAX_RESIDENT_MODELS is unset. An MMS model is 36M parameters, ~145 MB of
# float32 weights. Measured on mms-random (the MMS shape), each loaded model adds ~155 MiB to the process
# with its decoder on torch and ~205 MiB with its ONNX Runtime decoder session (the CPU default).
#   * CPU (Lambda up to 10 GB, an ECS task a few GB): 3 models ~0.6 GiB, leaving the memory to torch itself
#     and to one item's activations (a long item is decoded in chunks); a model loads from local disk in
#     about a second, so a miss costs little next to a job's synthesis.
#   * CUDA (16-141 GB of GPU memory): 32 models ~4.6 GB of weights, leaving the rest to padded float16
#     batches (TTS_MAX_BATCH x the longest piece); a 16 GB card keeps ~10 GB for activations.
DEFAULT_MAX_RESIDENT_MODELS = {"cpu": 3, "cuda": 32}


def default_max_resident_models(device: str) -> int:
    return DEFAULT_MAX_RESIDENT_MODELS.get(device, DEFAULT_MAX_RESIDENT_MODELS["cpu"])


def model_store_from(settings: WorkerSettings) -> ModelStore:
    return ModelStore(
        s3_client=client("s3", settings),
        bucket=settings.model_store_bucket,
        prefix=settings.tts_model_store_prefix,
    )


def build_synthesizer(settings: WorkerSettings, *, metrics: MetricsSink | None = None) -> ModelRegistry:
    """The model registry, with TTS_PRELOAD_MODELS loaded and warmed up (none: nothing loads until a job).

    Items without a model_id are spoken with the default language's model (TTS_DEFAULT_LANGUAGE, else the
    first of TTS_LANGUAGES), loaded on first use like any other.
    """
    # torch and transformers load here, not at import: the core and its tests do not need them.
    from transformers.utils import logging as hf_logging

    from tts_worker.synthesizer.cpu_threads import pin_this_thread, usable_cores
    from tts_worker.synthesizer.random_models import default_cache_dir
    from tts_worker.synthesizer.vits import resolve_device

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # progress bars are noise in logs
    pin_this_thread(settings.tts_num_threads or usable_cores())
    device = resolve_device(settings.tts_device)
    cache_dir = settings.tts_cache_dir or default_cache_dir()
    locator = ModelLocator(
        cache_dir=cache_dir,
        image_dir=settings.tts_image_models_dir,
        store=model_store_from(settings),
        allow_hub=settings.tts_allow_hub,
    )
    loader = VitsModelLoader(
        locator,
        device=settings.tts_device,
        dtype=settings.tts_dtype,
        decoder_runtime=settings.tts_decoder_runtime,
        cpu_graph=settings.tts_cpu_graph,
        cache_dir=cache_dir,
    )
    batch_forward = device.type == "cuda"  # as VitsSynthesizer decides: one padded forward on a GPU
    registry = ModelRegistry(
        loader,
        default_model=settings.languages.model_id(settings.languages.default),
        max_resident=settings.tts_max_resident_models or default_max_resident_models(device.type),
        device=device.type,
        pads_batches=batch_forward,
        max_items_per_call=None if batch_forward else 1,
        preload=settings.preload_models,
        metrics=metrics,
    )
    started = time.perf_counter()
    registry.warm_up()
    logger.info(
        "model registry ready",
        extra={
            "device": registry.device,
            "max_resident_models": registry.max_resident,
            "preloaded": registry.resident,
            "sources": locator.sources,
            "default_model": registry.model_id,
            "start_s": round(time.perf_counter() - started, 3),
        },
    )
    return registry


def fanout_from(settings: WorkerSettings) -> FanoutPorts | None:
    """The fan-out's collaborators, or None when it is off (no PARTS_QUEUE_URL, or TTS_FANOUT=false)."""
    if not settings.fanout_enabled or settings.parts_queue_url is None:
        return None
    sqs = client("sqs", settings)
    return FanoutPorts(
        ledger=PlanLedger(
            dynamodb_client=client("dynamodb", settings),
            table_name=settings.table_name,
            ttl_days=settings.task_ttl_days,
        ),
        parts=PartStore(s3_client=client("s3", settings), bucket=settings.bucket_name),
        parts_queue=QueueSender(sqs_client=sqs, queue_url=settings.parts_queue_url),
        jobs_queue=QueueSender(sqs_client=sqs, queue_url=settings.jobs_queue_url),
        part_chars=settings.tts_part_chars,
        min_chars=settings.tts_fanout_min_chars,
        ttl_days=settings.task_ttl_days,
    )


def build_core(
    settings: WorkerSettings,
    *,
    metrics: MetricsSink | None = None,
    synthesizer: Synthesizer | None = None,
) -> WorkerCore:
    return WorkerCore(
        synthesizer=synthesizer or build_synthesizer(settings, metrics=metrics),
        store=audio_store_from(settings),
        events=publisher_from(settings),
        tasks=repository_from(settings),
        config=CoreConfig.from_settings(settings, io_workers=IO_WORKERS),
        metrics=metrics,
        fanout=fanout_from(settings),
    )
