"""Retry-or-fail: decided by the error's type and the receive count, in one place."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tts_common.exceptions import (
    DependencyUnavailable,
    EmptyTokenization,
    MalformedJob,
    PermanentJobError,
    SynthesisFailed,
    TransientJobError,
)
from tts_worker.failures import Disposition, decide, error_detail, error_info

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
    assert {d for d in Disposition if d.settled} == {
        Disposition.SUCCEEDED,
        Disposition.FAILED,
        Disposition.DROPPED,
    }
    assert {d for d in Disposition if d.publishes_failed} == {Disposition.FAILED, Disposition.DEAD_LETTER}


def test_the_reason_names_the_code_and_when_retries_ran_out_the_attempts() -> None:
    permanent = error_info(EmptyTokenization("nothing to say"), Disposition.FAILED, attempts=1)
    exhausted = error_info(ValueError("boom"), Disposition.DEAD_LETTER, attempts=3)

    assert (permanent.code, permanent.message) == (
        "empty_tokenization",
        "the text has no characters this model can speak",
    )
    assert exhausted.code == "internal_error"
    assert exhausted.message == "gave up after 3 attempts: an internal error stopped the synthesis"


SECRET = "arn:aws:s3:::private-bucket/inputs/abc.txt \udcff\x00 /opt/model/secret"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (RuntimeError(SECRET), "internal_error"),
        (
            UnicodeDecodeError("utf-8", SECRET.encode("utf-8", "surrogatepass"), 0, 1, SECRET),
            "internal_error",
        ),
        (SynthesisFailed(f"inference failed: RuntimeError: {SECRET}"), "synthesis_failed"),
        (MalformedJob(f"bad body {SECRET}"), "malformed_job"),
        (
            ClientError({"Error": {"Code": "AccessDenied", "Message": SECRET}}, "GetObject"),
            "dependency_error",
        ),
        (DependencyUnavailable(SECRET), "dependency_error"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v,
)
@pytest.mark.parametrize("disposition", [Disposition.FAILED, Disposition.DEAD_LETTER])
def test_no_exception_text_reaches_the_failed_event(
    exc: Exception, code: str, disposition: Disposition
) -> None:
    # When
    error = error_info(exc, disposition, attempts=3)

    # Then: a stable code and a message written by us; the exception's own words only in the logs
    assert error.code == code
    for fragment in ("arn:aws", "private-bucket", "secret", "AccessDenied", type(exc).__name__):
        assert fragment not in error.message
    assert "private-bucket" in error_detail(exc) or isinstance(exc, UnicodeDecodeError)


def test_the_log_detail_is_cut() -> None:
    assert len(error_detail(RuntimeError("x" * 10_000))) <= 2000
