"""Wait for a conversion to finish, with a progress bar driven by the task's own progress (pieces)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tts_cli.errors import NotReady
from tts_common.domain import TERMINAL_STATUSES, TaskStatus

FIRST_POLL_S = 0.25
MAX_POLL_S = 2.0

Fetch = Callable[[], dict[str, Any]]


def _pieces(task: dict[str, Any]) -> tuple[int, int | None]:
    progress = task.get("progress") or {}
    total = progress.get("pieces_total")
    return int(progress.get("pieces_done") or 0), int(total) if total else None


def wait_until_finished(
    fetch: Fetch,
    *,
    console: Console,
    timeout_s: float | None,
    show: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll `fetch` until the task is done or failed; returns its last state. Raises NotReady on timeout.

    On a terminal the bar redraws in place; otherwise (a pipe, a CI log) each change is one line.
    """
    started = time.monotonic()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.fields[pieces]:>12}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    live = show and console.is_terminal
    progress = Progress(*columns, console=console, disable=not live, transient=False)
    bar = progress.add_task("submitted", total=None, pieces="")
    last: tuple[str, int, int | None] | None = None
    delay = FIRST_POLL_S
    with progress:
        while True:
            task = fetch()
            status = str(task.get("status"))
            done, total = _pieces(task)
            if status == TaskStatus.DONE and total is None:
                done, total = 1, 1
            pieces = f"{done}/{total} pieces" if total else ""
            progress.update(bar, description=status, completed=done, total=total, pieces=pieces)
            if show and not live and (status, done, total) != last:
                elapsed = time.monotonic() - started
                state = " ".join(part for part in (status, pieces) if part)
                console.print(f"{state}  {elapsed:.1f} s", highlight=False)
            last = (status, done, total)
            if status in TERMINAL_STATUSES:
                return task
            if timeout_s is not None and time.monotonic() - started >= timeout_s:
                raise NotReady(f"still {status} after {timeout_s:g} s")
            sleep(delay)
            delay = min(delay * 1.5, MAX_POLL_S)
