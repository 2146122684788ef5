"""Service info and health: `/` always answers 200; `/health` answers 503 when a dependency is down."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from tts_api import service
from tts_api.deps import AudioStoreDep, ClockDep, JobQueueDep, RepositoryDep, SettingsDep
from tts_api.errors import error_responses
from tts_api.schemas import HealthChecks, HealthReport, ServiceInfo

SERVICE_NAME = "serverless-tts"

router = APIRouter(tags=["health"])


@router.get("/", response_model=ServiceInfo, responses=error_responses(), summary="Service name and version")
def root(settings: SettingsDep, clock: ClockDep) -> ServiceInfo:
    return ServiceInfo(name=SERVICE_NAME, version=settings.service_version, timestamp=clock())


@router.get(
    "/health",
    response_model=HealthReport,
    responses={
        **error_responses(),
        503: {"model": HealthReport, "description": "At least one check failed; the body says which."},
    },
    summary="Whether the table, the bucket and the jobs queue answer",
)
def health(
    settings: SettingsDep,
    clock: ClockDep,
    repository: RepositoryDep,
    audio_store: AudioStoreDep,
    job_queue: JobQueueDep,
) -> HealthReport | JSONResponse:
    result = service.check_health(repository=repository, audio_store=audio_store, job_queue=job_queue)
    report = HealthReport(
        name=SERVICE_NAME,
        version=settings.service_version,
        timestamp=clock(),
        checks=HealthChecks(table=result.table, bucket=result.bucket, queue=result.queue),
    )
    if not result.ok:
        return JSONResponse(status_code=503, content=report.model_dump(mode="json"))
    return report
