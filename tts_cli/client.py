"""The HTTP API as the CLI sees it: one method per call, every failure turned into a typed CliError.

The key rides only on calls to the API; presigned S3 URLs are fetched by a client that never holds it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tts_cli.errors import AuthFailed, BadInput, NotFound, NotReady, ServerError, TaskFailed
from tts_common.tenancy import API_KEY_HEADER

DEFAULT_API_URL = "http://127.0.0.1:8000"
API_URL_ENV = "TTS_API_URL"
API_KEY_ENV = "TTS_API_KEY"
TIMEOUT_S = 30.0
API_PREFIX = "/api/v1"

_KEY_HINT = f"pass --api-key or set {API_KEY_ENV} (`make run` prints a development key)"


@dataclass(frozen=True)
class Config:
    api_url: str
    api_key: str | None = field(default=None, repr=False)  # never printed, not even in a repr


def _error_body(response: httpx.Response) -> tuple[str, str, dict[str, Any]]:
    """(code, message, details) of an error: the API's typed body, API Gateway's {"message"}, or text."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = response.text.strip().splitlines()
        return "http_error", (text[0][:200] if text else response.reason_phrase), {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return (
            str(error.get("code", "error")),
            str(error.get("message", "")),
            dict(error.get("details") or {}),
        )
    if isinstance(body, dict) and "message" in body:
        return "gateway_error", str(body["message"]), {}
    return "http_error", response.reason_phrase, {}


def raise_for_error(response: httpx.Response) -> None:
    """Map an API error response to the CliError of its kind (and exit code)."""
    status = response.status_code
    if status < 400:
        return
    code, message, details = _error_body(response)
    line = f"{message} ({code})" if message else code
    if status in (401, 403):
        raise AuthFailed(f"not authorized: {line}", hint=_KEY_HINT)
    if status == 404:
        raise NotFound(line)
    if status == 409:
        if details.get("status") == "failed":
            raise TaskFailed(line)
        raise NotReady(line)
    if status in (400, 413, 422):
        raise BadInput(line)
    if status == 429:
        raise ServerError(f"throttled: {line}", hint="try again in a moment")
    raise ServerError(f"the API answered {status}: {line}")


class ApiClient:
    """The service's API at one base URL, with the key in `x-api-key` on every call."""

    def __init__(self, config: Config, *, timeout_s: float = TIMEOUT_S) -> None:
        self._config = config
        headers = {"user-agent": "tts-cli"}
        if config.api_key:
            headers[API_KEY_HEADER] = config.api_key
        self._http = httpx.Client(base_url=config.api_url.rstrip("/"), headers=headers, timeout=timeout_s)
        # Presigned URLs carry their own signature: the key must not travel to the bucket.
        self._plain = httpx.Client(timeout=timeout_s, follow_redirects=True)

    def close(self) -> None:
        self._http.close()
        self._plain.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _reaching(self, what: str) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException:
            raise ServerError(f"{what} did not answer within {TIMEOUT_S:.0f} s") from None
        except httpx.TransportError as exc:
            raise ServerError(
                f"cannot reach {what}: {exc}", hint=f"is the API running? (--api-url or {API_URL_ENV})"
            ) from None

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._reaching(f"the API at {self._config.api_url}"):
            response = self._http.request(method, f"{API_PREFIX}{path}", **kwargs)
        raise_for_error(response)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ServerError(f"the API answered {response.status_code} with a body not in JSON") from None

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/tts/convert", json=body)
        return result

    def task(self, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/tts/{_path_id(task_id)}")
        return result

    def tasks(self, *, status: str | None, limit: int, next_token: str | None = None) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": limit}
        if status:
            params["status"] = status
        if next_token:
            params["next_token"] = next_token
        result: dict[str, Any] = self._call("GET", "/tts", params=params)
        return result

    def download_link(self, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/tts/{_path_id(task_id)}/download")
        return result

    def marks_link(self, task_id: str, fmt: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/tts/{_path_id(task_id)}/marks", params={"format": fmt})
        return result

    def voices(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/voices")
        return result

    def fetch(self, url: str) -> bytes:
        """GET a presigned URL into memory (marks, small files)."""
        with self._reaching("the audio bucket"):
            response = self._plain.get(url)
        if response.status_code >= 400:
            raise ServerError(f"the bucket answered {response.status_code} for the presigned URL")
        return response.content

    def save(self, url: str, target: Path) -> int:
        """GET a presigned URL into `target`, through a partial file: a failed download leaves no file."""
        partial = target.with_name(f".{target.name}.part")
        written = 0
        try:
            with self._reaching("the audio bucket"), self._plain.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise ServerError(f"the bucket answered {response.status_code} for the presigned URL")
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        written += out.write(chunk)
            partial.replace(target)
        except OSError as exc:
            raise BadInput(f"cannot write {target}: {exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)
        return written


def _path_id(task_id: str) -> str:
    """An id as one path segment: a '/' or '?' in it must not reach another route."""
    if not task_id or any(c in task_id for c in "/?#\\") or task_id in (".", ".."):
        raise BadInput(f"not a conversion id: {task_id!r}")
    return task_id
