"""The FastAPI application: `create_app` for tests and the Lambda handler; `app` for uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tts_api.errors import (
    PayloadTooLarge,
    install_error_handlers,
    payload_too_large,
    strip_default_validation_responses,
)
from tts_api.routes import health, openai_speech, polly, tts, ui, voices
from tts_common import __version__
from tts_common.exceptions import ConfigurationError
from tts_common.settings import ApiSettings, cached_settings
from tts_common.tenancy import API_KEY_HEADER, AUTHORIZATION_HEADER


class _CorsFromSettings:
    """CORS for the origins in the app's settings (CORS_ALLOW_ORIGINS), known only once settings are read."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._inner: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if self._inner is None:
            origins = _settings(scope).cors_origins
            self._inner = (
                CORSMiddleware(
                    self._app,
                    allow_origins=origins,
                    allow_methods=["GET", "POST"],
                    allow_headers=["content-type", API_KEY_HEADER, AUTHORIZATION_HEADER],
                    max_age=600,
                )
                if origins
                else self._app
            )
        await self._inner(scope, receive, send)


def _settings(scope: Scope) -> ApiSettings:
    settings: ApiSettings | None = getattr(scope["app"].state, "settings", None)
    return settings or cached_settings(ApiSettings)


class _BodyLimit:
    """413 for a POST body over MAX_REQUEST_BYTES: at once when Content-Length says so, otherwise as soon as
    the body read so far passes the limit (a chunked upload), before anything parses it. Only POST routes
    read a body; the others never look at one."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        limit = _settings(scope).max_request_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await payload_too_large(limit)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(limit)  # raised inside the route: the error handlers answer it
            return message

        await self._app(scope, limited, send)


class _HeadAsGet:
    """HEAD answers what GET would, without the body (RFC 9110 9.3.2): uptime probes and `curl -I` on any
    GET route, e.g. /health and /ui. FastAPI's routes, unlike Starlette's, do not add HEAD themselves."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self._app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self._app({**scope, "method": "GET"}, receive, headers_only)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Under uvicorn a bad setting fails the start, naming the variable, instead of the first request.
    if getattr(app.state, "settings", None) is None:
        app.state.settings = cached_settings(ApiSettings)
    yield


def create_app(*, settings: ApiSettings | None = None) -> FastAPI:
    """Build the app. Without settings they are read from the environment at start (or first request)."""
    app = FastAPI(
        title="Serverless TTS API",
        version=__version__,
        description="Asynchronous text-to-speech: submit text in a voice (language, speed, format, sample "
        "rate: `GET /api/v1/voices`), poll the conversion, download the audio. "
        'Every error is `{"error": {"code", "message", "details"?}}`.',
        lifespan=_lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(_HeadAsGet)
    app.add_middleware(_BodyLimit)
    app.add_middleware(_CorsFromSettings)  # outermost: a 413 carries CORS headers too
    app.include_router(health.router)
    app.include_router(tts.router)
    app.include_router(voices.router)
    app.include_router(ui.router)
    app.include_router(openai_speech.router)
    app.include_router(polly.router)
    strip_default_validation_responses(app)
    _document_served_languages(app)
    return app


def _document_served_languages(app: FastAPI) -> None:
    """The request bodies' `language` lists this deployment's languages (known once settings are read)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        try:
            settings: ApiSettings = app.state.settings or cached_settings(ApiSettings)
        except ConfigurationError:
            return schema  # no deployment to describe (a schema export without settings): left generic
        served = settings.languages
        named = ", ".join(f"{v.code} ({v.name})" for v in served.voices())
        for name in ("ConvertRequest", "ConvertMultipleRequest"):
            language = schema["components"]["schemas"][name]["properties"]["language"]
            language["description"] = (
                f"{language.get('description', '')} Served here: {named}; default {served.default}."
            )
            language["examples"] = list(served.codes)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


app = create_app()
