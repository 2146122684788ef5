"""/api/v1/tts: submit conversions, follow them, download their audio. Every route acts within the caller's
tenant (TenantDep): another tenant's conversion answers exactly as an unknown one."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Metrics
from fastapi import APIRouter, Query, status
from fastapi.responses import RedirectResponse

from tts_api import service
from tts_api.deps import AudioStoreDep, MetricsDep, RepositoryDep, SettingsDep, SubmitterDep, TenantDep
from tts_api.errors import error_responses
from tts_api.observability import record_submissions
from tts_api.schemas import (
    BatchAccepted,
    Conversion,
    ConversionAccepted,
    ConversionPage,
    ConvertMultipleRequest,
    ConvertRequest,
    Download,
    Stats,
)
from tts_common.domain import MAX_FILENAME_CHARS, MarksFormat, TaskStatus

router = APIRouter(prefix="/api/v1/tts", tags=["tts"])

_SUBMIT_ERRORS = error_responses(400, 401, 413, 422, 503)
# A presigned link (download, marks): 200 with it, or 307 to it with `redirect=true`.
_LINK_RESPONSES: dict[int | str, dict[str, Any]] = {
    307: {
        "description": "With `redirect=true`: the presigned URL in `Location` (no body).",
        "headers": {"Location": {"description": "The presigned S3 URL", "schema": {"type": "string"}}},
    },
    **error_responses(401, 404, 409, 422, 503),
}
RedirectQuery = Annotated[bool, Query(description="Answer 307 to the URL instead of 200 with it.")]


def _link_answer(link: service.DownloadLink, *, redirect: bool) -> Download | RedirectResponse:
    if redirect:
        return RedirectResponse(link.url, status_code=307, headers={"Cache-Control": "no-store"})
    return Download(url=link.url, expires_at=link.expires_at, filename=link.filename)


def _voice(body: ConvertRequest | ConvertMultipleRequest) -> service.VoiceRequest:
    return service.VoiceRequest(
        language=body.language, speed=body.speed, format=body.format, sample_rate=body.sample_rate
    )


def _accepted(submissions: list[service.Submission], *, metrics: Metrics) -> list[ConversionAccepted]:
    created = sum(1 for s in submissions if s.created)
    record_submissions(sink=metrics, created=created, deduplicated=len(submissions) - created)
    return [ConversionAccepted.from_task(s.task, deduplicated=not s.created) for s in submissions]


@router.post(
    "/convert",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ConversionAccepted,
    responses=_SUBMIT_ERRORS,
    summary="Submit one text",
    description="Queues a conversion, or returns the existing one for the same text and voice "
    "(`deduplicated: true`). The voice (language, speed, format, sample rate) is fixed at submit and kept "
    "with the conversion. The filename does not enter the dedupe key: on a hit the first submission's "
    "`custom_filename` stands, and so does its `callback_url` (answered in `callback_url`: a dedupe hit "
    "with another URL is accepted, and that URL is not called). With `callback_url`, the end of the "
    "conversion is POSTed there, signed (README: Webhooks).",
)
def convert(
    body: ConvertRequest, principal: TenantDep, submitter: SubmitterDep, metrics: MetricsDep
) -> ConversionAccepted:
    submissions = submitter.submit(
        tenant_id=principal.tenant_id,
        texts=[body.text],
        custom_filename=body.custom_filename,
        callback_url=body.callback_url,
        voice=_voice(body),
    )
    return _accepted(submissions, metrics=metrics)[0]


@router.post(
    "/convert-multiple",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchAccepted,
    responses=_SUBMIT_ERRORS,
    summary="Submit several texts",
    description="One conversion per text, in order. Every text is validated before any is created: one bad "
    "text refuses the whole request (422, `details.errors[].loc` names each bad index).",
)
def convert_multiple(
    body: ConvertMultipleRequest, principal: TenantDep, submitter: SubmitterDep, metrics: MetricsDep
) -> BatchAccepted:
    submissions = submitter.submit(
        tenant_id=principal.tenant_id,
        texts=body.texts,
        callback_url=body.callback_url,
        voice=_voice(body),
        batch=True,
    )
    return BatchAccepted(items=_accepted(submissions, metrics=metrics))


@router.get(
    "",
    response_model=ConversionPage,
    responses=error_responses(400, 401, 422, 503),
    summary="List conversions, newest first",
)
def list_conversions(
    principal: TenantDep,
    repository: RepositoryDep,
    status_filter: Annotated[TaskStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    next_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> ConversionPage:
    page = service.list_tasks(
        tenant_id=principal.tenant_id,
        status=status_filter,
        limit=limit,
        next_token=next_token,
        repository=repository,
    )
    return ConversionPage(items=[Conversion.from_task(t) for t in page.items], next_token=page.next_token)


# Registered before /{conversion_id}, which would otherwise take "stats" for an id.
@router.get(
    "/stats",
    response_model=Stats,
    responses=error_responses(401, 503),
    summary="Counts and timings of the caller's conversions",
)
def stats(principal: TenantDep, repository: RepositoryDep) -> Stats:
    return Stats.from_stats(service.get_stats(tenant_id=principal.tenant_id, repository=repository))


@router.get(
    "/{conversion_id}",
    response_model=Conversion,
    responses=error_responses(401, 404, 503),
    summary="One conversion's status and audio facts",
)
def get_conversion(conversion_id: str, principal: TenantDep, repository: RepositoryDep) -> Conversion:
    return Conversion.from_task(
        service.get_task(tenant_id=principal.tenant_id, task_id=conversion_id, repository=repository)
    )


@router.get(
    "/{conversion_id}/download",
    response_model=Download,
    responses=_LINK_RESPONSES,
    summary="A presigned link to the audio of a done conversion",
    description="A failed conversion answers 409 `task_not_ready` with `details.status = failed` and the "
    "error; it will never be ready (submit the text again for a new attempt).",
)
def download(
    conversion_id: str,
    principal: TenantDep,
    settings: SettingsDep,
    repository: RepositoryDep,
    audio_store: AudioStoreDep,
    redirect: RedirectQuery = False,
    filename: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_FILENAME_CHARS,
            description="Save under this plain name instead of the conversion's `custom_filename`.",
        ),
    ] = None,
) -> Download | RedirectResponse:
    link = service.download_link(
        tenant_id=principal.tenant_id,
        task_id=conversion_id,
        filename=filename,
        settings=settings,
        repository=repository,
        audio_store=audio_store,
    )
    return _link_answer(link, redirect=redirect)


@router.get(
    "/{conversion_id}/marks",
    response_model=Download,
    responses=_LINK_RESPONSES,
    summary="A presigned link to the speech marks or subtitles of a done conversion",
    description="Timed from the model's own token durations, in milliseconds of the delivered audio. "
    "`json`: Amazon Polly speech marks, one JSON object per line "
    '(`{"time": ms, "type": "sentence"|"word", "start": byte, "end": byte, "value": "..."}`, with `start` '
    "and `end` UTF-8 byte offsets into the conversion's text after NFC and whitespace collapsing); "
    "`vtt` and `srt`: one cue per sentence (long sentences cut between words); `words.vtt`: one cue per "
    "word. 409 `task_not_ready` before the conversion is done; 404 `marks_not_available` when it was "
    "done without marks (the conversion's `marks` lists what it has).",
)
def marks(
    conversion_id: str,
    principal: TenantDep,
    settings: SettingsDep,
    repository: RepositoryDep,
    audio_store: AudioStoreDep,
    marks_format: Annotated[
        MarksFormat, Query(alias="format", description="Which marks: speech marks or subtitles.")
    ] = MarksFormat.JSON,
    redirect: RedirectQuery = False,
) -> Download | RedirectResponse:
    link = service.marks_link(
        tenant_id=principal.tenant_id,
        task_id=conversion_id,
        marks_format=marks_format,
        settings=settings,
        repository=repository,
        audio_store=audio_store,
    )
    return _link_answer(link, redirect=redirect)
