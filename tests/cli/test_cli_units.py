"""The CLI's parts that need no service: error mapping to exit codes, waiting, configuration."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from rich.console import Console

from tts_cli.client import Config, raise_for_error
from tts_cli.errors import AuthFailed, BadInput, ExitCode, NotFound, NotReady, ServerError, TaskFailed
from tts_cli.waiting import wait_until_finished


def _error(status: int, code: str = "x", message: str = "m", details: dict | None = None) -> httpx.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return httpx.Response(status, json={"error": body})


@pytest.mark.parametrize(
    ("response", "error", "exit_code"),
    [
        (_error(422, "validation_error"), BadInput, 2),
        (_error(400, "malformed_json"), BadInput, 2),
        (_error(413, "payload_too_large"), BadInput, 2),
        (_error(401, "invalid_api_key"), AuthFailed, 3),
        (httpx.Response(403, json={"message": "Forbidden"}), AuthFailed, 3),  # API Gateway's own body
        (_error(404, "task_not_found"), NotFound, 4),
        (_error(409, "task_not_ready", details={"status": "processing"}), NotReady, 5),
        (_error(409, "task_not_ready", details={"status": "failed"}), TaskFailed, 6),
        (_error(429, "throttled"), ServerError, 7),
        (_error(503, "dependency_unavailable"), ServerError, 7),
        (httpx.Response(502, text="<html>Bad Gateway</html>"), ServerError, 7),
    ],
)
def test_each_kind_of_error_has_its_exit_code(response, error, exit_code) -> None:
    with pytest.raises(error) as raised:
        raise_for_error(response)

    assert raised.value.exit_code == ExitCode(exit_code)
    assert "\n" not in raised.value.message


def test_success_raises_nothing() -> None:
    raise_for_error(httpx.Response(200, json={}))


def test_the_key_never_shows_in_the_config_repr() -> None:
    assert "secret" not in repr(Config(api_url="http://x", api_key="tts_secret_value"))


def _states(*states: tuple[str, int, int] | str) -> Any:
    """A fetch that answers these task states in turn."""
    answers = iter(states)

    def fetch() -> dict[str, Any]:
        state = next(answers)
        if isinstance(state, str):
            return {"status": state, "progress": None}
        status, done, total = state
        return {"status": status, "progress": {"pieces_done": done, "pieces_total": total}}

    return fetch


def test_waiting_reports_each_change_once_off_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=100)

    task = wait_until_finished(
        _states("queued", "queued", ("processing", 1, 3), ("processing", 2, 3), ("done", 3, 3)),
        console=console,
        timeout_s=None,
        sleep=lambda _: None,
    )

    assert task["status"] == "done"
    lines = [line.rsplit("  ", 1)[0] for line in out.getvalue().splitlines()]
    assert lines == ["queued", "processing 1/3 pieces", "processing 2/3 pieces", "done 3/3 pieces"]


def test_waiting_past_the_timeout_is_not_ready() -> None:
    console = Console(file=io.StringIO())

    with pytest.raises(NotReady, match="still queued after 0 s"):
        wait_until_finished(_states("queued", "queued"), console=console, timeout_s=0, sleep=lambda _: None)
