"""The one place that maps a job's error to retry-or-fail: by type and receive count, never by message."""

from __future__ import annotations

from enum import StrEnum

from tts_common.exceptions import PermanentJobError, TTSError
from tts_common.messages import ErrorInfo

# Keeps a `failed` event small whatever an exception carries.
_MAX_MESSAGE_CHARS = 1000


class Disposition(StrEnum):
    """What the transport does with a message after the core has seen it."""

    SUCCEEDED = "succeeded"  # audio written and reported (or found already written): delete
    FAILED = "failed"  # cannot succeed, `failed` published: delete
    RETRY = "retry"  # leave it: the queue redelivers it after the visibility timeout
    DEAD_LETTER = "dead_letter"  # last attempt failed, `failed` published: leave it for the DLQ redrive

    @property
    def settled(self) -> bool:
        """Whether the message is finished with and should be deleted from the queue."""
        return self in (Disposition.SUCCEEDED, Disposition.FAILED)

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


def error_info(exc: BaseException, disposition: Disposition, *, attempts: int) -> ErrorInfo:
    """The reason a `failed` event carries: the error's code, and its type when retries ran out."""
    code = exc.code if isinstance(exc, TTSError) else "internal_error"
    text = (exc.message if isinstance(exc, TTSError) else str(exc))[:_MAX_MESSAGE_CHARS]
    if disposition is Disposition.DEAD_LETTER:
        return ErrorInfo(
            code=code, message=f"gave up after {attempts} attempts: {type(exc).__name__}: {text}"
        )
    return ErrorInfo(code=code, message=text)
