"""Retry-or-fail: decided by the error's type and the receive count, in one place."""

from __future__ import annotations

import pytest

from tts_common.exceptions import (
    EmptyTokenization,
    MalformedJob,
    PermanentJobError,
    SynthesisFailed,
    TransientJobError,
)
from tts_worker.failures import Disposition, decide, error_info

PERMANENT = [PermanentJobError("x"), MalformedJob("x"), EmptyTokenization("x")]
RETRYABLE = [TransientJobError("x"), SynthesisFailed("x"), RuntimeError("x"), KeyError("x")]


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("receive_count", [1, 2, 3, 7])
def test_permanent_errors_fail_now_whatever_the_count(exc: Exception, receive_count: int) -> None:
    assert decide(exc, receive_count=receive_count, max_receive_count=3) is Disposition.FAILED


@pytest.mark.parametrize("exc", RETRYABLE, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize(
    ("receive_count", "expected"),
    [
        (1, Disposition.RETRY),
        (2, Disposition.RETRY),
        (3, Disposition.DEAD_LETTER),
        (4, Disposition.DEAD_LETTER),
    ],
)
def test_other_errors_retry_until_the_last_delivery(
    exc: Exception, receive_count: int, expected: Disposition
) -> None:
    assert decide(exc, receive_count=receive_count, max_receive_count=3) is expected


def test_only_success_and_permanent_failure_delete_the_message() -> None:
    assert {d for d in Disposition if d.settled} == {Disposition.SUCCEEDED, Disposition.FAILED}
    assert {d for d in Disposition if d.publishes_failed} == {Disposition.FAILED, Disposition.DEAD_LETTER}


def test_the_reason_names_the_code_and_when_retries_ran_out_the_type() -> None:
    permanent = error_info(EmptyTokenization("nothing to say"), Disposition.FAILED, attempts=1)
    exhausted = error_info(ValueError("boom"), Disposition.DEAD_LETTER, attempts=3)

    assert (permanent.code, permanent.message) == ("empty_tokenization", "nothing to say")
    assert exhausted.code == "internal_error"
    assert exhausted.message == "gave up after 3 attempts: ValueError: boom"


def test_a_huge_error_message_is_cut() -> None:
    assert len(error_info(RuntimeError("x" * 10_000), Disposition.FAILED, attempts=1).message) <= 1000
