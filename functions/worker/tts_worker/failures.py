"""The one place that maps a job's error to retry-or-fail: by type and receive count, never by message.

It also decides what a `failed` event tells the client: a stable code and a message written here, never the
exception's own text (which can carry bytes of the input, ARNs or a path). The detail goes to the logs.
"""

from __future__ import annotations

from enum import StrEnum

from tts_common.adapters import DEPENDENCY_ERRORS
from tts_common.exceptions import (
    DependencyUnavailable,
    EmptyTokenization,
    JobError,
    MalformedJob,
    ModelNotAvailable,
    PermanentJobError,
    SynthesisFailed,
    TransientJobError,
    TTSError,
)
from tts_common.messages import ErrorInfo

INTERNAL_ERROR = "internal_error"
DEPENDENCY_ERROR = "dependency_error"

# What a client reads for each kind of error, looked up along the exception's MRO.
_PUBLIC_MESSAGES: dict[type[Exception], str] = {
    MalformedJob: "the job message is not a valid synthesis job",
    EmptyTokenization: "the text has no characters this model can speak",
    ModelNotAvailable: "this voice's model is not available on this deployment",
    SynthesisFailed: "the model could not synthesize this text",
    PermanentJobError: "the job cannot be synthesized",
    TransientJobError: "a temporary error stopped the synthesis",
    JobError: "the synthesis failed",
}
_DEPENDENCY_MESSAGE = "a storage or messaging dependency did not answer"
_INTERNAL_MESSAGE = "an internal error stopped the synthesis"


class Disposition(StrEnum):
    """What the transport does with a message after the core has seen it."""

    SUCCEEDED = "succeeded"  # audio written and reported (or found already written): delete
    FAILED = "failed"  # cannot succeed, `failed` published: delete
    RETRY = "retry"  # leave it: the queue redelivers it after the visibility timeout
    DEAD_LETTER = "dead_letter"  # last attempt failed, `failed` published: leave it for the DLQ redrive
    DROPPED = "dropped"  # no such task: nothing to do or to report: delete

    @property
    def settled(self) -> bool:
        """Whether the message is finished with and should be deleted from the queue."""
        return self in (Disposition.SUCCEEDED, Disposition.FAILED, Disposition.DROPPED)

    @property
    def publishes_failed(self) -> bool:
        return self in (Disposition.FAILED, Disposition.DEAD_LETTER)


def decide(exc: BaseException, *, receive_count: int, max_receive_count: int) -> Disposition:
    """Permanent errors fail now; anything else retries until the queue's last delivery, then fails."""
    if isinstance(exc, PermanentJobError):
        return Disposition.FAILED
    if receive_count >= max_receive_count:
        return Disposition.DEAD_LETTER
    return Disposition.RETRY


def _public(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, (*DEPENDENCY_ERRORS, DependencyUnavailable)):
        return DEPENDENCY_ERROR, _DEPENDENCY_MESSAGE
    for cls in type(exc).__mro__:
        if cls in _PUBLIC_MESSAGES:
            assert isinstance(exc, TTSError)
            return exc.code, _PUBLIC_MESSAGES[cls]
    return INTERNAL_ERROR, _INTERNAL_MESSAGE


def error_info(exc: BaseException, disposition: Disposition, *, attempts: int) -> ErrorInfo:
    """The reason a `failed` event carries: a stable code and a fixed message, with the attempt count when
    retries ran out."""
    code, message = _public(exc)
    if disposition is Disposition.DEAD_LETTER:
        return ErrorInfo(code=code, message=f"gave up after {attempts} attempts: {message}")
    return ErrorInfo(code=code, message=message)


def error_detail(exc: BaseException) -> str:
    """What the logs get instead: the exception's type and text, cut to a readable size."""
    return f"{type(exc).__name__}: {exc}"[:2000]
