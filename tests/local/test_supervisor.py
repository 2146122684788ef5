"""local/supervisor.py and the local stack's supervision: backoff on a fake clock, and one real child."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from local.supervisor import Backoff, Supervisor


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeProcess:
    pid: int
    returncode: int | None = None
    exits_on_terminate: bool = True
    signals: list[str] = field(default_factory=list)

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        self.signals.append("TERM")
        if self.exits_on_terminate:
            self.returncode = -15

    def kill(self) -> None:
        self.signals.append("KILL")
        self.returncode = -9

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            raise subprocess.TimeoutExpired("fake", timeout or 0)
        return self.returncode


class Spawner:
    """Makes FakeProcesses for one child name and remembers them."""

    def __init__(self) -> None:
        self.procs: list[FakeProcess] = []

    def __call__(self) -> FakeProcess:
        self.procs.append(FakeProcess(pid=100 + len(self.procs)))
        return self.procs[-1]

    @property
    def current(self) -> FakeProcess:
        return self.procs[-1]


def _supervisor(**backoff: float) -> tuple[Supervisor, FakeClock, dict[str, Spawner], list[str]]:
    clock = FakeClock()
    spawners = {"api": Spawner(), "worker": Spawner()}
    log: list[str] = []
    sup = Supervisor(spawners, backoff=Backoff(**backoff), clock=clock, log=log.append)
    sup.start()
    return sup, clock, spawners, log


def test_backoff_doubles_from_one_second_to_thirty() -> None:
    assert [Backoff().delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert Backoff(initial_s=0.5, max_s=3).delay(4) == 3


def test_an_exited_child_is_restarted_after_its_delay_and_logged() -> None:
    sup, clock, spawners, log = _supervisor()
    worker = spawners["worker"]
    clock.now += 5
    worker.current.returncode = -9
    sup.check()
    assert log == ["worker exited with -9 after 5 s; restarting it in 1 s"]
    clock.now += 0.9
    sup.check()
    assert len(worker.procs) == 1  # still waiting
    clock.now += 0.1
    sup.check()
    assert len(worker.procs) == 2
    assert log[-1] == "worker restarted (pid 101)"
    assert len(spawners["api"].procs) == 1  # the others are left alone
    assert sup.processes() == {"api": spawners["api"].current, "worker": worker.current}


def test_quick_failures_back_off_and_a_long_run_resets_the_delay() -> None:
    sup, clock, spawners, log = _supervisor()
    worker = spawners["worker"]
    delays = []
    for _ in range(7):
        clock.now += 2  # up for 2 s each time: still failing
        worker.current.returncode = 1
        sup.check()
        delays.append(log[-1].rsplit(" in ", 1)[1])
        clock.now += 30
        sup.check()  # restarted
    assert delays == ["1 s", "2 s", "4 s", "8 s", "16 s", "30 s", "30 s"]
    clock.now += 60  # then it stays up a minute before exiting
    worker.current.returncode = 1
    sup.check()
    assert log[-1] == "worker exited with 1 after 60 s; restarting it in 1 s"


def test_stop_terminates_then_kills_what_does_not_exit() -> None:
    sup, _, spawners, _ = _supervisor()
    stubborn = spawners["worker"].current
    stubborn.exits_on_terminate = False
    sup.stop(timeout_s=0)
    assert spawners["api"].current.signals == ["TERM"]
    assert stubborn.signals == ["TERM", "KILL"]


def test_a_child_waiting_to_restart_is_not_stopped_twice() -> None:
    sup, _, spawners, _ = _supervisor()
    spawners["worker"].current.returncode = 2
    sup.check()
    sup.stop()
    assert spawners["worker"].current.signals == []
    assert len(spawners["worker"].procs) == 1


def test_a_real_child_that_exits_is_restarted() -> None:
    log: list[str] = []
    sup = Supervisor(
        {"flaky": lambda: subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])},
        backoff=Backoff(initial_s=0.05, max_s=0.2),
        log=log.append,
    )
    sup.start()
    deadline = time.monotonic() + 20
    try:
        while sum("restarted" in line for line in log) < 2 and time.monotonic() < deadline:
            sup.check()
            time.sleep(0.02)
    finally:
        sup.stop(timeout_s=5)
    assert log[0].startswith("flaky exited with 3 after ")
    assert log[0].endswith("; restarting it in 0.05 s")
    assert log[1].startswith("flaky restarted (pid ")
    assert sum("restarted" in line for line in log) >= 2
    assert "restarting it in 0.1 s" in log[2]


# -- the stack's parts around it ----------------------------------------------------------------------------


def test_each_child_logs_under_its_own_service_name() -> None:
    from local.stack import SERVICE_NAMES, child_environment

    env = {"POWERTOOLS_SERVICE_NAME": "inherited", "X": "1"}
    names = {name: child_environment(env, name)["POWERTOOLS_SERVICE_NAME"] for name in SERVICE_NAMES}
    assert names == {
        "api": "tts-api",
        "worker": "tts-worker",
        "task-events": "tts-task-events",
        "notifier": "tts-notifier",
    }
    assert child_environment(env, "api")["X"] == "1"


def test_moto_is_seen_to_stop() -> None:
    from moto.server import ThreadedMotoServer

    from local.stack import _moto_problem

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    try:
        assert _moto_problem(moto, "127.0.0.1", port, probe=True) is None
    finally:
        moto.stop()
    assert _moto_problem(moto, "127.0.0.1", port, probe=False) == "its server thread has stopped"


def test_a_live_thread_with_a_closed_port_is_a_problem() -> None:
    import threading

    from local.stack import _moto_problem

    class Alive:
        _thread = threading.current_thread()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        problem = _moto_problem(Alive(), "127.0.0.1", port, probe=True)
    assert problem is not None
    assert problem.startswith(f"its port {port} does not accept connections")
    assert _moto_problem(Alive(), "127.0.0.1", port, probe=False) is None
