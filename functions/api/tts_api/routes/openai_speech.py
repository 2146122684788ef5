"""OpenAI's `POST /v1/audio/speech`, so `OpenAI(base_url=".../v1", api_key=KEY).audio.speech.create(...)`
works unchanged. Synchronous for the client, asynchronous inside: submit (dedupe), wait up to SYNC_WAIT_S for
the audio, answer its bytes (or 303 to a presigned URL when larger than INLINE_AUDIO_MAX_BYTES); still running
at the deadline: a 503 with `retry-after-ms` that the SDK retries by itself, onto the same task (dedupe).

Rules (README "OpenAI-compatible speech"):
- `model`: one of OPENAI_MODELS (default tts-1, tts-1-hd, gpt-4o-mini-tts) or a dated `gpt-4o-mini-tts-*`
  snapshot; anything else is 400 `model_not_found`. The model never changes the audio (the language's MMS
  model speaks), so it is not part of the voice or the dedupe key.
- `voice` (a string or `{"id": ...}`): a TTS_VOICE_ALIASES alias, else a served language (`fin`, `fi`), else
  one of OpenAI's built-in voice names (the deployment's default language), else 400 `invalid_value`.
- `response_format`: mp3, opus (Ogg Opus), aac (ADTS), flac, wav, pcm (s16le, no header); all at 24 kHz,
  OpenAI's rate. `speed` 0.25-4.0. `input` at most 4,096 characters. `instructions` accepted and ignored;
  `stream_format` `audio` only.
- Errors are OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, for this route only.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from tts_api import service
from tts_api.deps import MetricsDep, SubmitterDep, TenantDep, WaitClockDep
from tts_api.errors import PayloadTooLarge, status_for, www_authenticate
from tts_api.observability import logger, record_submissions
from tts_common.domain import TaskStatus
from tts_common.exceptions import (
    DependencyUnavailable,
    InvalidInput,
    TTSError,
    Unauthenticated,
    UnsupportedLanguage,
)
from tts_common.settings import ApiSettings
from tts_common.task import Task
from tts_common.voice import FORMATS, AudioFormat

OPENAI_MAX_INPUT_CHARS = 4096
# OpenAI's output rate; `pcm` is documented as 24 kHz s16le.
OPENAI_SAMPLE_RATE = 24_000
OPENAI_FORMATS: dict[str, AudioFormat] = {
    "mp3": AudioFormat.MP3,
    "opus": AudioFormat.OGG_OPUS,
    "aac": AudioFormat.AAC,
    "flac": AudioFormat.FLAC,
    "wav": AudioFormat.WAV,
    "pcm": AudioFormat.PCM,
}
# OpenAI's built-in voices: each speaks the deployment's default language, so unchanged code works.
OPENAI_VOICES = frozenset(
    "alloy ash ballad coral echo fable onyx nova sage shimmer verse marin cedar".split()  # noqa: SIM905
)
OPENAI_SNAPSHOT_PREFIX = "gpt-4o-mini-tts-"
# Headers every answer of this route carries about the conversion behind it.
CONVERSION_HEADER = "X-TTS-Conversion-Id"
DEDUPLICATED_HEADER = "X-TTS-Deduplicated"
# A pending answer asks for a retry this soon (the next attempt waits SYNC_WAIT_S again on the server).
PENDING_RETRY_MS = 1000
UNAVAILABLE_RETRY_MS = 2000


class OpenAIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}
        self.extra = extra or {}


def _type_for(status: int) -> str:
    return "server_error" if status >= 500 else "invalid_request_error"


def openai_error_response(exc: OpenAIError) -> JSONResponse:
    body: dict[str, Any] = {
        "message": exc.message,
        "type": _type_for(exc.status),
        "param": exc.param,
        "code": exc.code,
        **exc.extra,
    }
    return JSONResponse({"error": body}, status_code=exc.status, headers=exc.headers)


_VALIDATION_CODES = {
    "missing": "missing_required_parameter",
    "less_than_equal": "decimal_above_max_value",
    "greater_than_equal": "decimal_below_min_value",
    "string_too_short": "string_below_min_length",
    "string_too_long": "string_above_max_length",
    "literal_error": "invalid_value",
}


def _from_validation(exc: RequestValidationError) -> OpenAIError:
    errors = exc.errors()
    invalid_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if invalid_json is not None or not errors:
        return OpenAIError(400, "the request body is not valid JSON", code="invalid_json")
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    # `voice` is a string or {"id"}: pydantic names the branch (voice.str, voice.VoiceRef.id); param: voice.
    param = loc[0] if loc else None
    if not loc:  # the body itself is not an object
        return OpenAIError(400, "the request body must be a JSON object", code="invalid_type")
    message = f"Invalid value for '{'.'.join(loc)}': {first.get('msg', 'invalid')}"
    return OpenAIError(
        400, message, code=_VALIDATION_CODES.get(str(first.get("type")), "invalid_type"), param=param
    )


def _from_tts_error(exc: TTSError) -> OpenAIError:
    if isinstance(exc, Unauthenticated):
        return OpenAIError(
            401, exc.message, code=exc.code, headers={"WWW-Authenticate": www_authenticate(exc)}
        )
    if isinstance(exc, DependencyUnavailable) or status_for(exc) == 503:
        return OpenAIError(
            503,
            exc.message,
            code="service_unavailable",
            headers={
                "Retry-After": str(UNAVAILABLE_RETRY_MS // 1000),
                "retry-after-ms": str(UNAVAILABLE_RETRY_MS),
            },
        )
    if isinstance(exc, InvalidInput):
        errors = (exc.details or {}).get("errors") or []
        field = str(errors[0]["loc"][-1]) if errors and errors[0].get("loc") else None
        param = {"text": "input", "language": "voice", "format": "response_format"}.get(field or "", field)
        if isinstance(exc, UnsupportedLanguage):
            param = "voice"
        return OpenAIError(400, exc.message, code="invalid_value", param=param)
    status = status_for(exc)
    if status >= 500:
        logger.exception("request failed", extra={"code": exc.code})
        return OpenAIError(500, "Internal server error", code="internal_error")
    return OpenAIError(status, exc.message, code=exc.code)


def openai_error(request: Request, exc: Exception) -> Response:
    """Any error raised while answering an OpenAI route, in OpenAI's shape (the SDK maps status to class)."""
    if isinstance(exc, OpenAIError):
        shaped = exc
    elif isinstance(exc, RequestValidationError):
        shaped = _from_validation(exc)
    elif isinstance(exc, TTSError):
        shaped = _from_tts_error(exc)
    elif isinstance(exc, PayloadTooLarge):
        shaped = OpenAIError(413, exc.detail, code="payload_too_large")
    elif isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        shaped = OpenAIError(exc.status_code, detail, code=None, headers=dict(exc.headers or {}))
    else:
        logger.exception("unhandled error", extra={"path": request.url.path})
        shaped = OpenAIError(500, "Internal server error", code="internal_error")
    return openai_error_response(shaped)


class OpenAIRoute(APIRoute):
    """A route whose every error (validation, auth, body limit, typed errors) is answered in OpenAI's shape;
    the app-wide handlers keep answering the rest of the API in its own."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await inner(request)
            except Exception as exc:
                return openai_error(request, exc)

        return handler


class VoiceRef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=128)


class OpenAISpeechRequest(BaseModel):
    """The body `client.audio.speech.create` sends. Unknown fields are ignored (a newer SDK's)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=128)
    # Its length is checked by hand, as OpenAI counts it (characters before any normalization).
    input: str
    voice: str | VoiceRef
    instructions: str | None = Field(default=None, max_length=4096, description="Accepted and ignored.")
    response_format: str = Field(
        default="mp3", description="mp3, opus, aac, flac, wav or pcm (24 kHz s16le)."
    )
    speed: float = Field(default=1.0, ge=0.25, le=4.0, allow_inf_nan=False)
    stream_format: Literal["audio"] | None = Field(
        default=None, description="`audio` only; `sse` is refused."
    )


def check_model(model: str, *, settings: ApiSettings) -> None:
    if model in settings.openai_models or model.startswith(OPENAI_SNAPSHOT_PREFIX):
        return
    raise OpenAIError(
        400,
        f"The model `{model}` does not exist here; accepted: {', '.join(settings.openai_models)} "
        f"(and {OPENAI_SNAPSHOT_PREFIX}* snapshots). The model does not change the voice: `voice` chooses "
        "the language.",
        code="model_not_found",
        param="model",
    )


def resolve_voice(voice: str | VoiceRef, *, settings: ApiSettings) -> str:
    """The served language a `voice` names: alias, then language code, then an OpenAI voice (the default)."""
    name = (voice.id if isinstance(voice, VoiceRef) else voice).strip()
    aliases = settings.voice_aliases
    languages = settings.languages
    if name.lower() in aliases:
        return aliases[name.lower()]
    try:
        return languages.resolve(name)
    except UnsupportedLanguage:
        pass
    if name.lower() in OPENAI_VOICES:
        return languages.default
    served = ", ".join(languages.codes)
    named = f"; aliases: {', '.join(f'{a}={c}' for a, c in aliases.items())}" if aliases else ""
    raise OpenAIError(
        400,
        f"voice {name!r} is not served here. Served languages: {served}{named}; OpenAI's voice names "
        f"({', '.join(sorted(OPENAI_VOICES))}) speak the default language, {languages.default}.",
        code="invalid_value",
        param="voice",
    )


def resolve_format(response_format: str) -> AudioFormat:
    audio_format = OPENAI_FORMATS.get(response_format.strip().lower())
    if audio_format is None:
        raise OpenAIError(
            400,
            f"response_format {response_format!r} is not served; served: {', '.join(OPENAI_FORMATS)}",
            code="invalid_value",
            param="response_format",
        )
    return audio_format


def voice_request(body: OpenAISpeechRequest, *, settings: ApiSettings) -> service.VoiceRequest:
    """Every rule applied to a request: its voice, or an OpenAIError naming the parameter."""
    if len(body.input) > OPENAI_MAX_INPUT_CHARS:
        raise OpenAIError(
            400,
            f"input is {len(body.input)} characters; at most {OPENAI_MAX_INPUT_CHARS} are spoken per request "
            "(send longer texts to POST /api/v1/tts/convert)",
            code="string_above_max_length",
            param="input",
        )
    if body.stream_format not in (None, "audio"):  # pragma: no cover - the schema refuses it first
        raise OpenAIError(400, "stream_format must be audio", code="invalid_value", param="stream_format")
    check_model(body.model, settings=settings)
    return service.VoiceRequest(
        language=resolve_voice(body.voice, settings=settings),
        speed=body.speed,
        format=resolve_format(body.response_format),
        sample_rate=OPENAI_SAMPLE_RATE,
    )


def _conversion_headers(task: Task, *, deduplicated: bool) -> dict[str, str]:
    return {CONVERSION_HEADER: task.task_id, DEDUPLICATED_HEADER: "true" if deduplicated else "false"}


def _pending(task: Task, *, deduplicated: bool) -> OpenAIError:
    lifecycle = task.lifecycle
    return OpenAIError(
        503,
        "synthesis is still running; retrying the same request waits on the same conversion",
        code="synthesis_pending",
        headers={
            "Retry-After": str(max(1, PENDING_RETRY_MS // 1000)),
            "retry-after-ms": str(PENDING_RETRY_MS),
            "x-should-retry": "true",
            **_conversion_headers(task, deduplicated=deduplicated),
        },
        extra={
            "conversion_id": task.task_id,
            "status": str(task.status),
            "pieces_done": lifecycle.pieces_done,
            "pieces_total": lifecycle.pieces_total,
        },
    )


def _failed(task: Task, *, deduplicated: bool) -> OpenAIError:
    error = task.lifecycle.error
    return OpenAIError(
        500,
        error.message if error is not None else "synthesis failed",
        code="synthesis_failed",
        headers={"x-should-retry": "false", **_conversion_headers(task, deduplicated=deduplicated)},
        extra={"conversion_id": task.task_id, "reason": error.code if error is not None else None},
    )


# Not in this API's OpenAPI schema (its errors are another dialect; OpenAI's own spec describes the route),
# like the Polly routes.
router = APIRouter(prefix="/v1/audio", route_class=OpenAIRoute, tags=["openai"], include_in_schema=False)

_AUDIO_TYPES = sorted({FORMATS[f].content_type for f in OPENAI_FORMATS.values()})


@router.post(
    "/speech",
    response_class=Response,
    summary="OpenAI-compatible speech (synchronous)",
    description="The body `openai`'s `client.audio.speech.create` sends; the answer is the audio itself. "
    "Waits at most SYNC_WAIT_S (20 s: API Gateway cuts requests at 29 s) for the conversion; still running: "
    "503 `synthesis_pending` with `retry-after-ms`, which the SDK retries onto the same conversion. Audio "
    "larger than INLINE_AUDIO_MAX_BYTES is a 303 to a presigned URL (the SDK follows it). Errors are "
    'OpenAI\'s `{"error": {"message", "type", "param", "code"}}`. Authenticate with `Authorization: Bearer '
    "KEY`.",
    responses={
        200: {"description": "The audio.", "content": {t: {} for t in _AUDIO_TYPES}},
        303: {"description": "Audio larger than INLINE_AUDIO_MAX_BYTES: `Location` is a presigned GET URL."},
        400: {"description": "Invalid parameter (`param` names it)."},
        401: {"description": "No key, or an unknown or revoked one."},
        413: {"description": "The body is larger than MAX_REQUEST_BYTES."},
        500: {"description": "The synthesis failed (`synthesis_failed`, `x-should-retry: false`)."},
        503: {"description": "Still running (`synthesis_pending`, `conversion_id`) or a dependency is down."},
    },
)
def create_speech(
    body: OpenAISpeechRequest,
    request: Request,
    principal: TenantDep,
    submitter: SubmitterDep,
    wait_clock: WaitClockDep,
    metrics: MetricsDep,
) -> Response:
    settings, repository, audio_store = submitter.settings, submitter.repository, submitter.audio_store
    # Taken first: the Lambda's remaining time is measured from here.
    deadline = service.sync_deadline(
        settings=settings, lambda_context=request.scope.get("aws.context"), clock=wait_clock.monotonic
    )
    voice = voice_request(body, settings=settings)
    (submission,) = submitter.submit(tenant_id=principal.tenant_id, texts=[body.input], voice=voice)
    deduplicated = not submission.created
    record_submissions(sink=metrics, created=int(submission.created), deduplicated=int(deduplicated))
    task = submission.task
    if service.written_audio(task) is None and task.status is not TaskStatus.FAILED:
        task = service.wait_for_end(
            task_id=task.task_id,
            tenant_id=principal.tenant_id,
            deadline_s=deadline,
            repository=repository,
            clock=wait_clock.monotonic,
            sleep=wait_clock.sleep,
        )
    audio = service.written_audio(task)
    if audio is None:
        raise (
            _failed(task, deduplicated=deduplicated)
            if task.status is TaskStatus.FAILED
            else _pending(task, deduplicated=deduplicated)
        )
    headers = {**_conversion_headers(task, deduplicated=deduplicated), "Cache-Control": "no-store"}
    data = service.read_audio(audio=audio, max_bytes=settings.inline_audio_max_bytes, audio_store=audio_store)
    if data is None:
        link = service.audio_link(
            task=task, audio=audio, filename=None, settings=settings, audio_store=audio_store
        )
        return RedirectResponse(link.url, status_code=303, headers=headers)
    return Response(content=data, media_type=FORMATS[audio.format].content_type, headers=headers)
