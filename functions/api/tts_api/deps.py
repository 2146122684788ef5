"""FastAPI dependencies: the API's collaborators, built once per settings by cached factories.

Tests override any of them with `app.dependency_overrides[get_x] = ...`.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated

from aws_lambda_powertools import Metrics
from fastapi import Depends, Request

from tts_api import observability
from tts_api.service import Clock
from tts_common import wiring
from tts_common.adapters.events import EventPublisher
from tts_common.adapters.s3 import AudioStore
from tts_common.adapters.sqs import JobQueue
from tts_common.settings import ApiSettings, cached_settings
from tts_common.storage.repository import TaskRepository


def get_settings(request: Request) -> ApiSettings:
    """The settings given to `create_app`, else the environment's (read once per process)."""
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, ApiSettings) else cached_settings(ApiSettings)


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


# Settings are frozen, hence hashable: one set of clients per configuration and process (warm starts).
@lru_cache(maxsize=8)
def repository_for(settings: ApiSettings) -> TaskRepository:
    return wiring.repository_from(settings)


@lru_cache(maxsize=8)
def audio_store_for(settings: ApiSettings) -> AudioStore:
    return wiring.audio_store_from(settings)


@lru_cache(maxsize=8)
def job_queue_for(settings: ApiSettings) -> JobQueue:
    return wiring.job_queue_from(settings)


@lru_cache(maxsize=8)
def publisher_for(settings: ApiSettings) -> EventPublisher:
    return wiring.publisher_from(settings)


# boto3's default session is not thread-safe while it builds clients (uvicorn serves from a thread pool).
_BUILD_LOCK = threading.Lock()


def get_repository(settings: SettingsDep) -> TaskRepository:
    with _BUILD_LOCK:
        return repository_for(settings)


def get_audio_store(settings: SettingsDep) -> AudioStore:
    with _BUILD_LOCK:
        return audio_store_for(settings)


def get_job_queue(settings: SettingsDep) -> JobQueue:
    with _BUILD_LOCK:
        return job_queue_for(settings)


def get_publisher(settings: SettingsDep) -> EventPublisher:
    with _BUILD_LOCK:
        return publisher_for(settings)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def get_clock() -> Clock:
    return _utcnow


def get_metrics() -> Metrics:
    return observability.metrics


RepositoryDep = Annotated[TaskRepository, Depends(get_repository)]
AudioStoreDep = Annotated[AudioStore, Depends(get_audio_store)]
JobQueueDep = Annotated[JobQueue, Depends(get_job_queue)]
PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]
ClockDep = Annotated[Clock, Depends(get_clock)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def clear_caches() -> None:
    """Forget built clients (tests that start a fresh moto between cases)."""
    for factory in (repository_for, audio_store_for, job_queue_for, publisher_for):
        factory.cache_clear()
