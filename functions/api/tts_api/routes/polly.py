"""Amazon Polly's REST API (`2016-06-10`, as botocore's `polly` client calls it) on this service.

    POST /v1/synthesisTasks             StartSpeechSynthesisTask
    GET  /v1/synthesisTasks/{TaskId}    GetSpeechSynthesisTask
    GET  /v1/synthesisTasks             ListSpeechSynthesisTasks (MaxResults, NextToken, Status)
    POST /v1/speech                     SynthesizeSpeech (synchronous: submit, then a bounded wait)
    GET  /v1/voices                     DescribeVoices

Every request is SigV4-signed for service `polly` with a tenant's credentials (`tts-admin credentials
create`); the signature is verified here, body included (tts_api.sigv4). Behind API Gateway the authorizer
has already checked that the access key exists and names the same tenant. The mapping rules are in
tts_common.polly. Errors are Polly's: the status, `x-amzn-ErrorType: <Name>` and `{"message"}`, so botocore
raises its modeled exceptions. The routes are not in the OpenAPI schema (their contract is botocore's model).

OutputUri: a presigned GET URL of the task's audio (or, for json, its speech marks) in the deployment's
bucket, valid PRESIGN_EXPIRY_S from the answer that carries it; every Get or List mints a fresh one. A json
task asking for one mark type gets a filtered copy, written once beside the marks
(`audio/<id>.polly-word.marks.jsonl`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Coroutine
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from tts_api import service, sigv4
from tts_api.deps import (
    AudioStoreDep,
    ClockDep,
    RepositoryDep,
    SettingsDep,
    Submitter,
    SubmitterDep,
    authorizer_principal,
)
from tts_api.errors import PayloadTooLarge
from tts_api.observability import logger
from tts_api.service import VoiceRequest
from tts_common import polly, wiring
from tts_common.credentials import CredentialStore
from tts_common.domain import AUDIO_PREFIX, MarksFormat, marks_key_for
from tts_common.exceptions import (
    DependencyUnavailable,
    InvalidInput,
    InvalidPageToken,
    TaskNotFound,
    UnsupportedLanguage,
)
from tts_common.polly import PollyError
from tts_common.settings import ApiSettings
from tts_common.task import Task
from tts_common.tenancy import Principal
from tts_common.voice import FORMATS

REQUEST_ID_HEADER = "x-amzn-RequestId"
ERROR_TYPE_HEADER = "x-amzn-ErrorType"
# botocore waits this long (ms) before it retries a 5xx carrying it (SynthesizeSpeech still running).
RETRY_AFTER_HEADER = "x-amz-retry-after"
PENDING_RETRY_MS = 1000
MAX_NEXT_TOKEN_CHARS = 4096
BAD_TOKEN = "the NextToken is not one this listing issued"
# Polly's json speech marks are small (a few hundred bytes per sentence); a bound for reading them back.
MAX_MARKS_BYTES = 4_000_000


def polly_error(exc: Exception) -> Response:
    """Any error raised in a Polly route as Polly answers it."""
    error = _classify(exc)
    headers = {ERROR_TYPE_HEADER: error.name}
    if error.retry_after_ms is not None:
        headers[RETRY_AFTER_HEADER] = str(error.retry_after_ms)
    return JSONResponse({"message": error.message}, status_code=error.status, headers=headers)


def _classify(exc: Exception) -> PollyError:
    match exc:
        case PollyError():
            return exc
        case RequestValidationError():
            return polly.validation_error("request", str(exc.errors()[:1]))
        case PayloadTooLarge():
            return PollyError("ValidationException", 400, exc.detail)
        case InvalidPageToken():
            return PollyError("InvalidNextTokenException", 400, BAD_TOKEN)
        case TaskNotFound():
            return PollyError("SynthesisTaskNotFoundException", 400, "no synthesis task has this TaskId")
        case UnsupportedLanguage():
            return polly.unsupported_language(exc)
        case InvalidInput():
            return PollyError("ValidationException", 400, exc.message)
        case DependencyUnavailable():
            return polly.service_failure(exc.message, retry_after_ms=2000)
    logger.exception("unexpected error in a Polly route")
    return polly.service_failure("the service failed; try again")


class PollyRoute(APIRoute):
    """A route whose every error, its dependencies' included, is answered in Polly's shape; every answer
    carries a request id."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await inner(request)
            except Exception as exc:
                response = polly_error(exc)
            response.headers.setdefault(REQUEST_ID_HEADER, str(uuid.uuid4()))
            return response

        return handler


router = APIRouter(prefix="/v1", route_class=PollyRoute, tags=["polly"], include_in_schema=False)


@lru_cache(maxsize=8)
def credential_store_for(settings: ApiSettings) -> CredentialStore | None:
    table = settings.credentials_table_name or settings.key_table_name
    if table is None:
        return None
    return wiring.credential_store_from(
        settings, table_name=table, kms_key_id=settings.credentials_kms_key_id
    )


def get_credential_store(settings: SettingsDep) -> CredentialStore | None:
    return credential_store_for(settings)


CredentialStoreDep = Annotated[CredentialStore | None, Depends(get_credential_store)]


async def get_polly_principal(request: Request, store: CredentialStoreDep, clock: ClockDep) -> Principal:
    """The tenant whose credentials signed this request (signature, body and clock checked). Behind API
    Gateway the authorizer has resolved the access key already; it must name the same tenant."""
    body = await request.body()
    if store is None:
        raise polly.service_failure("SigV4 credentials are not configured here (TTS_CREDENTIALS_TABLE)")
    principal: Principal = await run_in_threadpool(
        sigv4.verify,
        method=request.method,
        path=sigv4.signed_path(request.scope),
        query=list(request.query_params.multi_items()),
        headers=dict(request.headers.items()),
        body=body,
        now=clock(),
        lookup=store.lookup,
    )
    gateway = authorizer_principal(request.scope.get("aws.event"))
    if gateway is not None and gateway.tenant_id != principal.tenant_id:
        raise PollyError("AccessDeniedException", 403, "the credentials do not match the authorized tenant")
    return principal


PollyPrincipalDep = Annotated[Principal, Depends(get_polly_principal)]


def _voices(settings: ApiSettings) -> polly.PollyVoices:
    return polly.PollyVoices(languages=settings.languages, aliases=settings.tts_polly_voices)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"{}")
    except (UnicodeDecodeError, ValueError):
        raise PollyError("SerializationException", 400, "the request body is not JSON") from None


def _marks_key(task: Task, mark_types: tuple[str, ...]) -> str:
    if mark_types == polly.MARK_TYPES:
        return marks_key_for(task.task_id, MarksFormat.JSON)
    return f"{AUDIO_PREFIX}{task.task_id}.polly-{'-'.join(mark_types)}.marks.jsonl"


def _marks(task: Task, mark_types: tuple[str, ...], *, store: Any) -> bytes:
    """A json task's speech marks of the asked types (Polly's JSON lines)."""
    lines = store.get_audio(marks_key_for(task.task_id, MarksFormat.JSON), MAX_MARKS_BYTES) or b""
    return lines if mark_types == polly.MARK_TYPES else polly.filter_marks(lines, mark_types)


def _output_key(task: Task, *, store: Any) -> tuple[str | None, bool]:
    """Where the task's Polly output is, and whether it is there (a json task without marks has none).
    A json task of one mark type has its filtered copy written here on first sight."""
    audio = task.lifecycle.audio
    if audio is None:
        return None, True
    mark_types = polly.wants_marks(task)
    if not mark_types:
        return audio.audio_key, True
    if MarksFormat.JSON not in audio.marks:
        return None, False
    key = _marks_key(task, mark_types)
    if mark_types != polly.MARK_TYPES and not store.exists(key):
        store.put_marks(
            key,
            _marks(task, mark_types, store=store),
            content_type=polly.CONTENT_TYPES[polly.MARKS_OUTPUT],
            task_id=task.task_id,
        )
    return key, True


def _shown(task: Task, *, settings: ApiSettings, store: Any) -> dict[str, Any]:
    """The task as a `SynthesisTask`, with a fresh OutputUri while it has output."""
    try:
        key, ready = _output_key(task, store=store)
        uri = None
        if key is not None:
            audio = task.lifecycle.audio
            assert audio is not None
            is_marks = bool(polly.wants_marks(task))
            content_type = (
                polly.CONTENT_TYPES[polly.MARKS_OUTPUT] if is_marks else FORMATS[audio.format].content_type
            )
            extension = "marks" if is_marks else FORMATS[audio.format].extension
            uri = service.presigned_link(
                key,
                filename=f"{task.task_id}.{extension}",
                content_type=content_type,
                settings=settings,
                audio_store=store,
            ).url
    except Exception as exc:
        if isinstance(exc, PollyError | DependencyUnavailable):
            raise
        logger.exception("the output of a task could not be linked", extra={"task_id": task.task_id})
        raise DependencyUnavailable("the audio bucket did not answer") from exc
    return polly.synthesis_task(task, output_uri=uri, output_ready=ready)


async def _submit(request: polly.PollyRequest, *, principal: Principal, submitter: Submitter) -> Task:
    submissions = await run_in_threadpool(
        submitter.submit,
        tenant_id=principal.tenant_id,
        texts=[request.text],
        voice=VoiceRequest(
            language=request.language, format=request.audio_format, sample_rate=request.sample_rate
        ),
        client_request=request.client_request(),
    )
    return submissions[0].task


@router.post("/synthesisTasks")
async def start_speech_synthesis_task(
    request: Request, principal: PollyPrincipalDep, submitter: SubmitterDep
) -> Response:
    settings = submitter.settings
    parsed = polly.parse_request(
        await _json_body(request),
        voices=_voices(settings),
        max_chars=settings.max_text_chars,
        bucket=settings.bucket_name,
        task=True,
    )
    task = await _submit(parsed, principal=principal, submitter=submitter)
    shown = await run_in_threadpool(_shown, task, settings=settings, store=submitter.audio_store)
    return JSONResponse({"SynthesisTask": shown})


@router.get("/synthesisTasks/{task_id}")
async def get_speech_synthesis_task(
    task_id: str,
    principal: PollyPrincipalDep,
    settings: SettingsDep,
    repository: RepositoryDep,
    audio_store: AudioStoreDep,
) -> Response:
    if not service.is_task_id(task_id):
        raise PollyError("InvalidTaskIdException", 400, "a TaskId is 32 hexadecimal digits")
    task = await run_in_threadpool(
        service.get_task, tenant_id=principal.tenant_id, task_id=task_id, repository=repository
    )
    shown = await run_in_threadpool(_shown, task, settings=settings, store=audio_store)
    return JSONResponse({"SynthesisTask": shown})


@router.get("/synthesisTasks")
async def list_speech_synthesis_tasks(
    request: Request,
    principal: PollyPrincipalDep,
    settings: SettingsDep,
    repository: RepositoryDep,
    audio_store: AudioStoreDep,
) -> Response:
    query = request.query_params
    status = polly.status_filter(query.get("Status"))
    limit = polly.max_results(query.get("MaxResults"))
    token = query.get("NextToken")
    if token is not None and (not token or len(token) > MAX_NEXT_TOKEN_CHARS):
        raise PollyError("InvalidNextTokenException", 400, BAD_TOKEN)
    page = await run_in_threadpool(
        service.list_tasks,
        tenant_id=principal.tenant_id,
        status=status,
        limit=limit,
        next_token=token,
        repository=repository,
    )

    def show_all() -> list[dict[str, Any]]:
        return [_shown(task, settings=settings, store=audio_store) for task in page.items]

    body: dict[str, Any] = {"SynthesisTasks": await run_in_threadpool(show_all)}
    if page.next_token:
        body["NextToken"] = page.next_token  # absent on the last page: botocore's paginator stops there
    return JSONResponse(body)


@router.post("/speech")
async def synthesize_speech(
    request: Request, principal: PollyPrincipalDep, submitter: SubmitterDep
) -> Response:
    """Submit (deduplicated like any submission), wait up to SYNC_WAIT_S for the task to end, answer its
    audio. Still running at the deadline: a 500 ServiceFailureException with `x-amz-retry-after: 1000`, which
    botocore retries (twice by default) onto the same task."""
    settings = submitter.settings
    deadline = service.sync_deadline(settings=settings, lambda_context=request.scope.get("aws.context"))
    parsed = polly.parse_request(
        await _json_body(request),
        voices=_voices(settings),
        max_chars=settings.polly_sync_max_chars,
        task=False,
    )
    task = await _submit(parsed, principal=principal, submitter=submitter)
    task = await run_in_threadpool(
        service.wait_for_end,
        task_id=task.task_id,
        tenant_id=principal.tenant_id,
        deadline_s=deadline,
        repository=submitter.repository,
        clock=time.monotonic,
    )
    body = await run_in_threadpool(_speech, task, parsed, settings=settings, store=submitter.audio_store)
    return Response(
        content=body,
        media_type=polly.CONTENT_TYPES[parsed.output_format],
        headers={"x-amzn-RequestCharacters": str(task.text_chars)},
    )


def _speech(task: Task, request: polly.PollyRequest, *, settings: ApiSettings, store: Any) -> bytes:
    status, reason = polly.status_of(task, output_ready=True)
    if status == "failed":
        raise polly.service_failure(f"the synthesis failed: {reason}")
    audio = task.lifecycle.audio
    if audio is None:
        raise polly.service_failure(
            f"the synthesis is still running (task {task.task_id}); retrying waits on the same task",
            retry_after_ms=PENDING_RETRY_MS,
        )
    if request.marks:
        if MarksFormat.JSON not in audio.marks:
            raise polly.service_failure("speech marks could not be made for this text")
        return _marks(task, request.mark_types, store=store)
    body = store.get_audio(audio.audio_key, settings.inline_audio_max_bytes)
    if body is None:
        raise PollyError(
            "TextLengthExceededException",
            400,
            f"the audio ({audio.file_size} bytes) is larger than a synchronous answer carries; "
            "use StartSpeechSynthesisTask",
        )
    return bytes(body)


@router.get("/voices")
async def describe_voices(request: Request, principal: PollyPrincipalDep, settings: SettingsDep) -> Response:
    query = request.query_params
    if query.get("NextToken") is not None:
        raise PollyError("InvalidNextTokenException", 400, "the voices are one page; there is no NextToken")
    voices = _voices(settings).describe(language_code=query.get("LanguageCode"), engine=query.get("Engine"))
    return JSONResponse({"Voices": voices})
