"""The one place that turns errors into HTTP responses, and documents them in the OpenAPI schema.

Every error body is `{"error": {"code", "message", "details"?}}`:
- typed service errors (TTSError subclasses) map by type, never by message;
- a request that breaks the schema is 422 `validation_error` with `details.errors` [{loc, msg, type}];
- a body that is not valid JSON is 400 `malformed_json` (FastAPI would say 422; 400 is what it is);
- a request without a valid key is 401 `missing_api_key` / `invalid_api_key`, with `WWW-Authenticate: Bearer`
  (and `error="invalid_token"` when a Bearer key was refused, RFC 6750);
- routing errors keep their status (404 `not_found`, 405 `method_not_allowed`);
- a body over MAX_REQUEST_BYTES is 413 `payload_too_large`, refused before it is parsed (app._BodyLimit);
- anything else is 500 `internal_error`, logged here and never echoed to the client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tts_api.observability import logger
from tts_api.schemas import ErrorResponse
from tts_common.exceptions import (
    ConcurrentUpdate,
    DependencyUnavailable,
    InvalidApiKey,
    InvalidCallbackUrl,
    InvalidInput,
    InvalidPageToken,
    MarksNotAvailable,
    TaskNotFound,
    TaskNotReady,
    TTSError,
    Unauthenticated,
)

# Looked up along the exception's MRO, so a subclass (UnsupportedLanguage) inherits its parent's status.
STATUS_BY_ERROR: dict[type[TTSError], int] = {
    InvalidInput: 422,
    InvalidPageToken: 400,
    InvalidCallbackUrl: 400,
    Unauthenticated: 401,
    TaskNotFound: 404,
    MarksNotAvailable: 404,
    TaskNotReady: 409,
    DependencyUnavailable: 503,
    ConcurrentUpdate: 503,
}
RETRY_AFTER_S = "2"
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def status_for(exc: TTSError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def error_response(
    *,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse(status_code=status, content={"error": body}, headers=headers)


async def _tts_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TTSError)
    status = status_for(exc)
    if status == 500:
        # A configuration or programming error: the message may name internals, so it stays in the log.
        logger.exception("request failed", extra={"code": exc.code, "path": request.url.path})
        return error_response(status=500, code="internal_error", message="Internal server error")
    headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else None
    if isinstance(exc, Unauthenticated):
        headers = {"WWW-Authenticate": www_authenticate(exc)}
    if status == 503:
        logger.warning("dependency unavailable", extra={"code": exc.code, "details": exc.details})
    return error_response(
        status=status, code=exc.code, message=exc.message, details=exc.details, headers=headers
    )


REALM = "tts"


def www_authenticate(exc: Unauthenticated) -> str:
    """The challenge of a 401: Bearer always (RFC 7235 asks for one); why, when a Bearer key was refused."""
    challenge = f'Bearer realm="{REALM}"'
    if exc.bearer and isinstance(exc, InvalidApiKey):
        challenge += ', error="invalid_token"'
    return challenge


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = exc.errors()
    if any(err.get("type") == "json_invalid" for err in raw):
        first = next(err for err in raw if err.get("type") == "json_invalid")
        position = first["loc"][1] if len(first["loc"]) > 1 else None
        return error_response(
            status=400,
            code="malformed_json",
            message="the request body is not valid JSON",
            details={"position": position, "reason": str(first.get("ctx", {}).get("error", ""))},
        )
    # Only loc, msg and type go back: `input` may echo a megabyte of text and `ctx` may hold exceptions.
    errors = [{"loc": list(err["loc"]), "msg": str(err["msg"]), "type": str(err["type"])} for err in raw]
    message = f"{_location(errors[0]['loc'])}: {errors[0]['msg']}" if errors else "invalid request"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return error_response(status=422, code="validation_error", message=message, details={"errors": errors})


class PayloadTooLarge(StarletteHTTPException):
    """Raised while a request body is read, once it has grown past the limit."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(413, too_large_message(limit_bytes))
        self.limit_bytes = limit_bytes


def too_large_message(limit_bytes: int) -> str:
    return f"the request body is larger than {limit_bytes} bytes"


def payload_too_large(limit_bytes: int) -> JSONResponse:
    return error_response(
        status=413,
        code="payload_too_large",
        message=too_large_message(limit_bytes),
        details={"limit_bytes": limit_bytes},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, PayloadTooLarge):
        return payload_too_large(exc.limit_bytes)
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    return error_response(
        status=status, code=_HTTP_CODES.get(status, "http_error"), message=message, headers=exc.headers
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", extra={"path": request.url.path})
    return error_response(status=500, code="internal_error", message="Internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TTSError, _tts_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


# -- OpenAPI ------------------------------------------------------------------------------------------------

_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request (`malformed_json`, `invalid_page_token`, `bad_request`); a page token issued "
    "to another tenant or for another filter is `invalid_page_token`.",
    401: "No API key (`missing_api_key`), or an unknown or revoked one (`invalid_api_key`); send "
    "`x-api-key: KEY` or `Authorization: Bearer KEY`. Carries `WWW-Authenticate: Bearer`.",
    404: "No such conversion (`task_not_found`), also for ids that are not 32 lowercase hex characters "
    "and for another tenant's conversions.",
    409: "The audio is not available: the conversion is not done yet, or it failed (`task_not_ready`).",
    413: "The request body is larger than MAX_REQUEST_BYTES (`payload_too_large`); `details.limit_bytes`.",
    422: "Invalid input (`validation_error`, `unsupported_language`).",
    500: "Unexpected error (`internal_error`); no internals are disclosed.",
    503: "A dependency (table, bucket, queue) did not answer (`service_unavailable`, `concurrent_update`); "
    "retry after the `Retry-After` seconds.",
}


def strip_default_validation_responses(app: FastAPI) -> None:
    """Drop the 422 FastAPI adds by itself to routes with parameters that cannot fail validation.

    Routes that can answer 422 declare it (with ErrorResponse) through `error_responses`; FastAPI's own
    entry, with its HTTPValidationError model, would document a status and a body this API never sends.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if "HTTPValidationError" in str(responses.get("422", "")):
                    del responses["422"]
        schemas = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" not in str(schema.get("paths")):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the error statuses a route can return (500 always included)."""
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        for status in sorted({*statuses, 500})
    }
