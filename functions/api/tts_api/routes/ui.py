"""/ui: a page to try the service in a browser (static files shipped in this package; no build step).

Every response carries a Content-Security-Policy without inline script or third-party origins: the page
talks to this API (same origin) and plays audio from the bucket's presigned URLs, whose origin is learnt
by presigning a probe key (no call to S3), so it follows the deployment (moto locally, S3 on AWS).
Asset URLs in the page are relative, so it works under an API Gateway stage prefix (`/prod/ui`) too.
"""

from __future__ import annotations

from functools import cache, lru_cache
from importlib import resources
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse, Response

from tts_api.deps import AudioStoreDep
from tts_common.adapters.s3 import AudioStore

router = APIRouter(prefix="/ui", tags=["ui"], include_in_schema=False)

PAGE = "index.html"
ASSETS = {
    PAGE: "text/html; charset=utf-8",
    "ui.js": "text/javascript; charset=utf-8",
    "ui.css": "text/css; charset=utf-8",
}
_PROBE_KEY = "audio/ui-origin-probe.wav"


@cache
def _asset(name: str) -> bytes:
    return resources.files("tts_api").joinpath("static", name).read_bytes()


@lru_cache(maxsize=8)
def bucket_origin(audio_store: AudioStore) -> str:
    """The scheme and host of this deployment's presigned URLs (where audio and marks come from)."""
    link = audio_store.presign_download(
        _PROBE_KEY, filename="probe.wav", content_type="audio/wav", expires_in_s=60
    )
    parts = urlsplit(link.url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(media_origin: str) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",  # the page's icon is a data: URL (no request, no 404)
            f"connect-src 'self' {media_origin}",  # the API, and the marks file behind a presigned URL
            f"media-src {media_origin}",  # the audio behind a presigned URL
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(media_origin: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(media_origin),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",  # a presigned URL or the page's query never leaks to another site
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }


def _serve(name: str, audio_store: AudioStore) -> Response:
    return Response(
        content=_asset(name), media_type=ASSETS[name], headers=security_headers(bucket_origin(audio_store))
    )


@router.get("", summary="The try-it page")
def page(audio_store: AudioStoreDep) -> Response:
    return _serve(PAGE, audio_store)


@router.get("/", summary="The try-it page, without the slash its relative links expect")
def page_with_slash() -> RedirectResponse:
    # Relative, so that a stage prefix (/prod/ui/ -> /prod/ui) survives.
    return RedirectResponse("../ui", status_code=308)


@router.get("/{name}", summary="The page's script and style sheet")
def asset(name: str, audio_store: AudioStoreDep) -> Response:
    if name not in ASSETS or name == PAGE:
        raise HTTPException(status_code=404, detail=f"no such file: {name}")
    return _serve(name, audio_store)
