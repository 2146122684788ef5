"""The local stack (`python -m local.stack`, as `make run` starts it) on free ports, for end-to-end tests."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is e2e, marked or not: it talks to processes that the clock shift
    (tests/clock_shift.py) cannot reach, so `-m "not e2e"` must leave it out."""
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LocalStack:
    url: str  # the API
    key: str  # the development key the stack was started with (LOCAL_API_KEY)
    moto_url: str
    log: Path


@contextmanager
def run_local_stack(
    workdir: Path, *, key: str | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[LocalStack]:
    """Start the stack, wait for its banner, yield it; Ctrl-C it afterwards and check its ports are closed.
    `key`: the development key (LOCAL_API_KEY); a fresh one by default."""
    api_port, moto_port = free_port(), free_port()
    key = key or "tts_e2e_" + secrets.token_urlsafe(24)
    log = workdir / "stack.log"
    env = {
        **os.environ,
        "TTS_CACHE_DIR": str(workdir / "models"),
        "API_PORT": str(api_port),
        "MOTO_PORT": str(moto_port),
        "LOCAL_API_KEY": key,
        "PYTHONPATH": os.pathsep.join(
            ["layers/common", "functions/api", "functions/worker", "functions/task_events", "."]
        ),
        **(extra_env or {}),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "local.stack"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while "local stack is up" not in log.read_text(errors="replace"):
                assert proc.poll() is None, f"local stack exited early:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"local stack did not start:\n{log.read_text()}"
                time.sleep(0.3)
            yield LocalStack(
                url=f"http://127.0.0.1:{api_port}", key=key, moto_url=f"http://127.0.0.1:{moto_port}", log=log
            )
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
    for port in (api_port, moto_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open after Ctrl-C"


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One local stack per test module."""
    with run_local_stack(tmp_path_factory.mktemp("stack")) as stack:
        yield stack
