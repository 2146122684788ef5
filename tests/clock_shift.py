"""`--clock-shift-days=N`: the whole session N days away from today, to catch tests that depend on the date.

time-machine moves `datetime.now()`, `time.time()` and friends for every thread of this process, from
configuration to the end of the session, and lets the clock tick; `time.monotonic()` (timeouts, waits) is
left alone. It cannot reach other processes: the e2e tests, which start the local stack as processes, are
skipped, and a test that runs a tool as a subprocess (cfn-lint, hadolint, node for the CDK) runs that tool
on the real date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

OPTION = "--clock-shift-days"


@dataclass(frozen=True)
class _Shift:
    days: int
    real: datetime
    shifted: datetime
    traveller: Any


_SHIFT = pytest.StashKey[_Shift]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("clock shift").addoption(
        OPTION,
        dest="clock_shift_days",
        type=int,
        default=None,
        metavar="N",
        help="run the session with the wall clock moved N days (negative: back) by time-machine; "
        "skips the e2e tests, which the shift cannot reach",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    days = config.getoption("clock_shift_days")
    if days is None:
        return
    import time_machine

    real = datetime.now(UTC)
    shifted = real + timedelta(days=days)
    traveller = time_machine.travel(shifted, tick=True)
    traveller.start()
    config.stash[_SHIFT] = _Shift(days=days, real=real, shifted=shifted, traveller=traveller)


def pytest_unconfigure(config: pytest.Config) -> None:
    shift = config.stash.get(_SHIFT, None)
    if shift is not None:
        shift.traveller.stop()
        del config.stash[_SHIFT]


def pytest_report_header(config: pytest.Config) -> str | None:
    shift = config.stash.get(_SHIFT, None)
    if shift is None:
        return None
    return (
        f"clock shifted {shift.days:+d} days: now is {shift.shifted:%Y-%m-%d %H:%M} UTC "
        f"(really {shift.real:%Y-%m-%d %H:%M} UTC); e2e tests are skipped"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shift = config.stash.get(_SHIFT, None)
    if shift is None:
        return
    skip = pytest.mark.skip(
        reason=f"{OPTION}={shift.days}: the e2e tests start the local stack as processes, "
        "which the shifted clock cannot reach"
    )
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(skip)
