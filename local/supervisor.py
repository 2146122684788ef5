"""Keep the local stack's child processes running: restart one that exits, with exponential backoff.

A child that exits is started again after 1 s, then 2 s, 4 s ... up to 30 s while it keeps failing; one that
stayed up for a minute before exiting starts again from 1 s. The clock and the process factory are injected,
so that the policy is tested without processes or waiting.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol


class Process(Protocol):
    """What the supervisor needs of a child (subprocess.Popen has it)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 1.0
    max_s: float = 30.0
    reset_after_s: float = 60.0  # a child up this long before it exits is not "still failing"

    def delay(self, failures: int) -> float:
        """The wait before restart number `failures` of a run of quick failures (1, 2, ...)."""
        return min(self.max_s, self.initial_s * 2.0 ** max(0, failures - 1))


@dataclass
class _Child:
    name: str
    spawn: Callable[[], Process]
    proc: Process | None = None
    started_at: float = 0.0
    failures: int = 0  # quick exits in a row
    restart_at: float | None = None  # set while waiting to restart


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Supervisor:
    def __init__(
        self,
        spawners: Mapping[str, Callable[[], Process]],
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        log: Callable[[str], None] = _stderr,
    ) -> None:
        self._children = [_Child(name, spawn) for name, spawn in spawners.items()]
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._log = log

    def start(self) -> None:
        for child in self._children:
            self._spawn(child)

    def processes(self) -> dict[str, Process | None]:
        return {c.name: c.proc for c in self._children}

    def check(self) -> None:
        """One step (never blocks): note the children that exited, restart those whose wait is over."""
        now = self._clock()
        for child in self._children:
            if child.restart_at is None:
                code = child.proc.poll() if child.proc is not None else None
                if code is None:
                    continue
                uptime = now - child.started_at
                child.failures = 1 if uptime >= self._backoff.reset_after_s else child.failures + 1
                delay = self._backoff.delay(child.failures)
                child.restart_at = now + delay
                self._log(
                    f"{child.name} exited with {code} after {uptime:.0f} s; restarting it in {delay:g} s"
                )
            elif now >= child.restart_at:
                self._spawn(child)
                assert child.proc is not None
                self._log(f"{child.name} restarted (pid {child.proc.pid})")

    def stop(self, *, timeout_s: float = 15.0) -> None:
        """SIGTERM every running child, then SIGKILL those still running after `timeout_s`."""
        running = [c.proc for c in self._children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.terminate()
        deadline = self._clock() + timeout_s
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - self._clock()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _spawn(self, child: _Child) -> None:
        child.proc = child.spawn()
        child.started_at = self._clock()
        child.restart_at = None
