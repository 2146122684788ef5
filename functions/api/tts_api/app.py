"""The FastAPI application: `create_app` for tests and the Lambda handler; `app` for uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from tts_common import __version__
from tts_common.settings import ApiSettings, cached_settings

from tts_api.errors import install_error_handlers, strip_default_validation_responses
from tts_api.routes import health, tts


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
        description="Asynchronous text-to-speech: submit text, poll the conversion, download the WAV. "
        "Every error is `{\"error\": {\"code\", \"message\", \"details\"?}}`.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(tts.router)
    strip_default_validation_responses(app)
    return app


app = create_app()
