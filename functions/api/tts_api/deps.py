"""FastAPI dependencies: the API's collaborators, built once per settings by cached factories.

Tests override any of them with `app.dependency_overrides[get_x] = ...`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

from aws_lambda_powertools import Metrics
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from tts_api import observability, service
from tts_api.service import Clock, Submission, VoiceRequest
from tts_common import wiring
from tts_common.adapters.events import EventPublisher
from tts_common.adapters.s3 import AudioStore
from tts_common.adapters.sqs import JobQueue
from tts_common.exceptions import InvalidApiKey, MissingApiKey
from tts_common.settings import ApiSettings, cached_settings
from tts_common.storage.repository import TaskRepository
from tts_common.tenancy import (
    API_KEY_HEADER,
    AUTHORIZATION_HEADER,
    BEARER_SCHEME,
    CONTEXT_KEY_ID,
    CONTEXT_TENANT,
    ApiKeyStore,
    Principal,
    extract_key,
)


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


@lru_cache(maxsize=8)
def key_store_for(settings: ApiSettings) -> ApiKeyStore | None:
    if settings.key_table_name is None:
        return None
    return wiring.key_store_from(settings, table_name=settings.key_table_name)


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


def get_key_store(settings: SettingsDep) -> ApiKeyStore | None:
    """The key table, where the API resolves keys itself (TTS_KEY_TABLE set); None: only the authorizer."""
    with _BUILD_LOCK:
        return key_store_for(settings)


KeyStoreDep = Annotated[ApiKeyStore | None, Depends(get_key_store)]


def authorizer_principal(event: Mapping[str, Any] | None) -> Principal | None:
    """The tenant a Lambda authorizer resolved, from the API Gateway event Mangum hands the app: REST (v1)
    `requestContext.authorizer.tenantId`, HTTP API (v2) `requestContext.authorizer.lambda.tenantId`."""
    if not isinstance(event, Mapping):
        return None
    context = event.get("requestContext")
    authorizer = context.get("authorizer") if isinstance(context, Mapping) else None
    if not isinstance(authorizer, Mapping):
        return None
    if isinstance(authorizer.get("lambda"), Mapping):
        authorizer = authorizer["lambda"]
    tenant, key_id = authorizer.get(CONTEXT_TENANT), authorizer.get(CONTEXT_KEY_ID)
    if not isinstance(tenant, str) or not tenant:
        return None
    return Principal(tenant_id=tenant, key_id=key_id if isinstance(key_id, str) else "")


# The two ways to send a key, as OpenAPI security schemes (the docs' Authorize button); the key itself is
# read by tenancy.extract_key, the same code the authorizer runs.
_API_KEY_SCHEME = APIKeyHeader(
    name=API_KEY_HEADER, scheme_name="ApiKey", auto_error=False, description="A tenant's API key."
)
_BEARER_SCHEME = HTTPBearer(
    scheme_name="Bearer", auto_error=False, description="The same key as `Authorization: Bearer KEY`."
)


def get_principal(
    request: Request,
    key_store: KeyStoreDep,
    _api_key: Annotated[str | None, Security(_API_KEY_SCHEME)] = None,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER_SCHEME)] = None,
) -> Principal:
    """Who calls. Behind the authorizer (AWS) its context says; otherwise (the local stack) the request's
    key is resolved here, against the same key table with the same code. No key, or one that is unknown
    or revoked: 401 (errors.py adds `WWW-Authenticate`)."""
    resolved = authorizer_principal(request.scope.get("aws.event"))
    if resolved is not None:
        return resolved
    key = extract_key(request.headers)
    bearer = _bearer_form(request.headers.get(API_KEY_HEADER), request.headers.get(AUTHORIZATION_HEADER))
    if key is None:
        raise MissingApiKey(bearer=bearer)
    principal = key_store.resolve(key, _utcnow()) if key_store is not None else None
    if principal is None:
        raise InvalidApiKey(bearer=bearer)
    return principal


def _bearer_form(api_key: str | None, authorization: str | None) -> bool:
    """Whether the caller tried `Authorization: Bearer` (and sent no x-api-key)."""
    if api_key and api_key.strip():
        return False
    return (authorization or "").strip().lower().startswith(BEARER_SCHEME)


TenantDep = Annotated[Principal, Depends(get_principal)]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def get_clock() -> Clock:
    return _utcnow


@dataclass(frozen=True, slots=True)
class WaitClock:
    """What a synchronous route's bounded wait (service.wait_for_end) reads and sleeps on; tests fake it."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def get_wait_clock() -> WaitClock:
    return WaitClock()


WaitClockDep = Annotated[WaitClock, Depends(get_wait_clock)]


def get_metrics() -> Metrics:
    return observability.metrics


RepositoryDep = Annotated[TaskRepository, Depends(get_repository)]
AudioStoreDep = Annotated[AudioStore, Depends(get_audio_store)]
JobQueueDep = Annotated[JobQueue, Depends(get_job_queue)]
PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]
ClockDep = Annotated[Clock, Depends(get_clock)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


@dataclass(frozen=True, slots=True)
class Submitter:
    """service.submit_texts with the collaborators a submitting route needs (and may read) bound: one
    dependency for the native, OpenAI and Polly routes alike."""

    settings: ApiSettings
    repository: TaskRepository
    audio_store: AudioStore
    job_queue: JobQueue
    publisher: EventPublisher
    clock: Clock

    def submit(
        self,
        *,
        tenant_id: str,
        texts: Sequence[str],
        voice: VoiceRequest,
        batch: bool = False,
        custom_filename: str | None = None,
        callback_url: str | None = None,
        client_request: Mapping[str, Any] | None = None,
    ) -> list[Submission]:
        return service.submit_texts(
            tenant_id=tenant_id,
            texts=texts,
            custom_filename=custom_filename,
            callback_url=callback_url,
            voice=voice,
            batch=batch,
            settings=self.settings,
            repository=self.repository,
            audio_store=self.audio_store,
            job_queue=self.job_queue,
            publisher=self.publisher,
            clock=self.clock,
            client_request=client_request,
        )


def get_submitter(
    settings: SettingsDep,
    repository: RepositoryDep,
    audio_store: AudioStoreDep,
    job_queue: JobQueueDep,
    publisher: PublisherDep,
    clock: ClockDep,
) -> Submitter:
    return Submitter(settings, repository, audio_store, job_queue, publisher, clock)


SubmitterDep = Annotated[Submitter, Depends(get_submitter)]


def clear_caches() -> None:
    """Forget built clients (tests that start a fresh moto between cases)."""
    for factory in (repository_for, audio_store_for, job_queue_for, publisher_for, key_store_for):
        factory.cache_clear()
