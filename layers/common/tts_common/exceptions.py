"""Typed errors. The API maps them to HTTP in one place; the worker maps them to retry-or-fail."""

from __future__ import annotations

from typing import Any


class TTSError(Exception):
    """Base of every error this service raises on purpose."""

    code: str = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigurationError(TTSError):
    """A setting is missing or invalid; raised at start, naming the variable."""

    code = "configuration_error"


class InvalidInput(TTSError):
    """A request value that passed the schema but breaks a domain rule."""

    code = "validation_error"


class UnsupportedLanguage(InvalidInput):
    code = "unsupported_language"


class InvalidCallbackUrl(TTSError):
    """A callback_url the notifier may not call: not https, malformed, or resolving to a private, loopback,
    link-local or metadata address (tts_common.webhooks.check_url). `details.reason` says which."""

    code = "invalid_callback_url"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, details={"reason": reason})
        self.reason = reason


class TaskNotFound(TTSError):
    code = "task_not_found"

    def __init__(self, task_id: str) -> None:
        super().__init__(f"No conversion with id {task_id!r}", details={"conversion_id": task_id})
        self.task_id = task_id


class TaskNotReady(TTSError):
    """The audio is asked for before the task is done."""

    code = "task_not_ready"

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(
            f"Conversion {task_id!r} is {status}; audio is available once it is done",
            details={"conversion_id": task_id, "status": status},
        )
        self.task_id = task_id
        self.status = status


class MarksNotAvailable(TTSError):
    """A done task has no marks in the asked format (spoken before marks existed, or by a synthesizer that
    does not report its tokens' durations)."""

    code = "marks_not_available"

    def __init__(self, task_id: str, marks_format: str) -> None:
        super().__init__(
            f"Conversion {task_id!r} has no {marks_format} marks",
            details={"conversion_id": task_id, "format": marks_format},
        )
        self.task_id = task_id


class InvalidPageToken(TTSError):
    code = "invalid_page_token"

    def __init__(self) -> None:
        super().__init__("next_token is not a token this API issued")


class Unauthenticated(TTSError):
    """The request carries no key, or one that is unknown or revoked (told apart only by `code`).
    `bearer`: the key came (or was attempted) as `Authorization: Bearer`."""

    code = "unauthenticated"

    def __init__(self, message: str, *, bearer: bool = False) -> None:
        super().__init__(message)
        self.bearer = bearer


class MissingApiKey(Unauthenticated):
    code = "missing_api_key"

    def __init__(self, *, bearer: bool = False) -> None:
        super().__init__(
            "an API key is required: send `x-api-key: KEY` or `Authorization: Bearer KEY`", bearer=bearer
        )


class InvalidApiKey(Unauthenticated):
    """Unknown, malformed or revoked: one answer for all three, so a key's state is not disclosed."""

    code = "invalid_api_key"

    def __init__(self, *, bearer: bool = False) -> None:
        super().__init__("the API key is not valid (unknown or revoked)", bearer=bearer)


class ApiKeyNotFound(TTSError):
    code = "api_key_not_found"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"No API key with id {key_id!r}", details={"key_id": key_id})
        self.key_id = key_id


class DependencyUnavailable(TTSError):
    """An AWS dependency (table, bucket, queue, channel) did not answer."""

    code = "service_unavailable"


class ConcurrentUpdate(TTSError):
    """An optimistic write lost its race too many times."""

    code = "concurrent_update"


# Worker-side errors: the worker decides retry-or-fail by type, never by message.
class JobError(TTSError):
    """Base of errors raised while processing one job."""

    code = "job_error"


class PermanentJobError(JobError):
    """The job cannot succeed however often it is retried: fail the task now."""

    code = "permanent_job_error"


class MalformedJob(PermanentJobError):
    code = "malformed_job"


class EmptyTokenization(PermanentJobError):
    code = "empty_tokenization"


class ModelNotAvailable(PermanentJobError):
    """The job's model has weights in none of the places this worker may take them from (the image, the
    model store, the hub when allowed): its task fails now, and the worker goes on with other jobs."""

    code = "model_not_available"


class TransientJobError(JobError):
    """Worth retrying (model hiccup, S3 or SNS error): the message goes back to the queue."""

    code = "transient_job_error"


class SynthesisFailed(TransientJobError):
    code = "synthesis_failed"


class ModelLoadError(TTSError):
    code = "model_load_error"
