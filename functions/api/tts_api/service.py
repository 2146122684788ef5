"""What the API does, apart from HTTP: submit conversions, read them back, hand out download links.

Collaborators come in as arguments (the routes get them from `deps`); nothing here imports boto3 or PynamoDB.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tts_api.observability import logger
from tts_common.adapters import DEPENDENCY_ERRORS
from tts_common.adapters.events import EventPublisher
from tts_common.adapters.s3 import AudioStore, PresignedDownload
from tts_common.adapters.sqs import JobQueue
from tts_common.domain import (
    MARKS_FORMATS,
    TERMINAL_STATUSES,
    MarksFormat,
    TaskStatus,
    download_filename,
    marks_filename,
    marks_key_for,
    text_key_for,
    validate_custom_filename,
    validate_text,
)
from tts_common.exceptions import (
    DependencyUnavailable,
    InvalidInput,
    MarksNotAvailable,
    TaskNotFound,
    TaskNotReady,
    TTSError,
)
from tts_common.jobs import job_for
from tts_common.messages import AudioInfo, LifecycleEvent
from tts_common.settings import ApiSettings
from tts_common.storage.repository import TaskRepository
from tts_common.task import Task, TaskPage, TaskStats
from tts_common.voice import (
    FORMATS,
    AudioFormat,
    UnsupportedSampleRate,
    VoiceSpec,
    check_sample_rate,
    dedupe_key,
)
from tts_common.webhooks import check_url

Clock = Callable[[], datetime]
IdFactory = Callable[[], str]

# Conversion ids are uuid4 hex. Anything else is answered 404 before it reaches the table.
_TASK_ID = re.compile(r"[0-9a-f]{32}")


def new_task_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Submission:
    task: Task
    created: bool


@dataclass(frozen=True, slots=True)
class DownloadLink:
    url: str
    expires_at: datetime
    filename: str


@contextmanager
def _dependency(what: str) -> Iterator[None]:
    """Turn a failure of a call into AWS into a 503; typed errors and our own bugs pass through unchanged."""
    try:
        yield
    except TTSError:
        raise
    except DEPENDENCY_ERRORS as exc:
        logger.exception("dependency call failed", extra={"dependency": what})
        raise DependencyUnavailable(
            f"the {what} did not answer; try again",
            details={"dependency": what, "reason": type(exc).__name__},
        ) from exc


def _field_error(loc: Sequence[str | int], message: str, kind: str, **ctx: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"loc": list(loc), "msg": message, "type": kind}
    if ctx:
        entry["ctx"] = ctx
    return entry


def _invalid(errors: list[dict[str, Any]]) -> InvalidInput:
    first = errors[0]
    message = ".".join(str(p) for p in first["loc"]) + ": " + first["msg"]
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return InvalidInput(message, details={"errors": errors})


@dataclass(frozen=True, slots=True)
class VoiceRequest:
    """What a request chose of its voice; None: the deployment's default."""

    language: str | None = None
    speed: float | None = None
    format: AudioFormat | None = None
    sample_rate: int | None = None


def voice_for(request: VoiceRequest, *, settings: ApiSettings) -> VoiceSpec:
    """The task's voice, built once at submit from the request and the deployment's defaults. A language
    it does not serve is UnsupportedLanguage; a rate the format cannot hold is a 422 on `sample_rate`."""
    languages = settings.languages
    language = languages.resolve(request.language)
    audio_format = request.format or settings.tts_format
    if request.sample_rate is not None:
        try:
            check_sample_rate(audio_format, request.sample_rate)
        except UnsupportedSampleRate as exc:
            raise _invalid(
                [
                    _field_error(
                        ["body", "sample_rate"],
                        str(exc),
                        "unsupported_sample_rate",
                        format=str(audio_format),
                        sample_rate=request.sample_rate,
                    )
                ]
            ) from None
    return VoiceSpec(
        language=language,
        model_id=languages.model_id(language),
        speed=settings.tts_speed if request.speed is None else request.speed,
        noise_scale=settings.tts_noise_scale,
        noise_scale_duration=settings.tts_noise_scale_duration,
        format=audio_format,
        sample_rate=request.sample_rate,
        max_piece_chars=settings.tts_max_piece_chars,
    )


def _normalize_texts(texts: Sequence[str], *, settings: ApiSettings, batch: bool) -> list[str]:
    """Validate every text before anything is created: one 422 names every bad one."""
    if batch and len(texts) > settings.max_batch_texts:
        raise _invalid(
            [
                _field_error(
                    ["body", "texts"],
                    f"at most {settings.max_batch_texts} texts per request, got {len(texts)}",
                    "too_many_texts",
                    max_batch_texts=settings.max_batch_texts,
                )
            ]
        )
    normalized: list[str] = []
    errors: list[dict[str, Any]] = []
    for index, text in enumerate(texts):
        loc: list[str | int] = ["body", "texts", index] if batch else ["body", "text"]
        try:
            normalized.append(validate_text(text, max_chars=settings.max_text_chars))
        except InvalidInput as exc:
            errors.append(_field_error(loc, exc.message, "invalid_text", **(exc.details or {})))
    if errors:
        raise _invalid(errors)
    return normalized


def submit_texts(
    *,
    tenant_id: str,
    texts: Sequence[str],
    custom_filename: str | None,
    voice: VoiceRequest,
    batch: bool,
    settings: ApiSettings,
    repository: TaskRepository,
    audio_store: AudioStore,
    job_queue: JobQueue,
    publisher: EventPublisher,
    clock: Clock,
    new_id: IdFactory = new_task_id,
    callback_url: str | None = None,
    client_request: Mapping[str, Any] | None = None,
) -> list[Submission]:
    """Create (or find) one of the tenant's tasks per text, enqueue a job for each new one, then announce it
    as queued. Dedupe is within the tenant: another tenant's identical text is another task.

    Order matters for recovery: a task whose job could not be sent is not marked enqueued, so the sweeper
    re-enqueues it after REQUEUE_AFTER_S; the client gets a 503 and a retry returns the same id. The mark is
    written here, right after the send, never inferred from the lifecycle consumer's progress.
    `client_request`: a compatibility API's request fields (tts_common.polly), stored on each task and
    hashed into its dedupe key.
    """
    spec = voice_for(voice, settings=settings)
    normalized = _normalize_texts(texts, settings=settings, batch=batch)
    if callback_url is not None:
        # Refused now (400) rather than found undeliverable later; the notifier checks again at each
        # delivery and connects to the address it checked (DNS rebinding).
        check_url(callback_url, allow_loopback=settings.webhook_allow_loopback)
    submissions = [
        _create_or_get(
            tenant_id=tenant_id,
            text=text,
            voice=spec,
            custom_filename=custom_filename,
            settings=settings,
            repository=repository,
            audio_store=audio_store,
            submitted_at=clock(),
            task_id=new_id(),
            callback_url=callback_url,
            client_request=client_request,
        )
        for text in normalized
    ]
    created = [s.task for s in submissions if s.created]
    if created:
        with _dependency("jobs queue"):
            job_queue.send_many([job_for(task) for task in created])
        _mark_enqueued(created, repository=repository, clock=clock)
        _announce_queued(created, publisher=publisher, clock=clock)
    return submissions


def _create_or_get(
    *,
    tenant_id: str,
    text: str,
    voice: VoiceSpec,
    custom_filename: str | None,
    settings: ApiSettings,
    repository: TaskRepository,
    audio_store: AudioStore,
    submitted_at: datetime,
    task_id: str,
    callback_url: str | None = None,
    client_request: Mapping[str, Any] | None = None,
) -> Submission:
    large = len(text.encode("utf-8")) > settings.inline_text_max_bytes
    task = Task(
        task_id=task_id,
        tenant_id=tenant_id,
        dedupe_key=dedupe_key(text, voice, tenant_id=tenant_id, client_request=client_request),
        voice=voice,
        text_chars=len(text),
        submitted_at=submitted_at,
        custom_filename=custom_filename,
        text=None if large else text,
        text_key=text_key_for(task_id) if large else None,
        callback_url=callback_url,
        client_request=dict(client_request) if client_request else None,
    )
    if task.text_key is not None:
        # Written before the task exists, so a task never points at a missing text. On a dedupe hit the
        # object is left behind under inputs/ (the bucket's lifecycle rule expires it).
        with _dependency("audio bucket"):
            audio_store.put_text(task.text_key, text)
    with _dependency("task table"):
        stored, created = repository.create_or_get(task)
    return Submission(task=stored, created=created)


def _mark_enqueued(tasks: list[Task], *, repository: TaskRepository, clock: Clock) -> None:
    """Record on each task that its job is on the queue, so the sweeper leaves it alone. A failure is only
    logged: the job is queued, and at worst the sweeper sends it once more (the worker is idempotent)."""
    for task in tasks:
        try:
            repository.mark_enqueued(task.task_id, at=clock())
        except DEPENDENCY_ERRORS:
            logger.exception("could not mark the task enqueued", extra={"task_id": task.task_id})


def _announce_queued(tasks: list[Task], *, publisher: EventPublisher, clock: Clock) -> None:
    """Publish `queued` for tasks whose job is on the queue. A failure here is logged, not returned:
    the job is already queued, and at worst the sweeper sends it once more (the worker is idempotent)."""
    for task in tasks:
        try:
            publisher.publish(LifecycleEvent(task_id=task.task_id, status=TaskStatus.QUEUED, at=clock()))
        except Exception:
            logger.exception("could not publish the queued event", extra={"task_id": task.task_id})


def is_task_id(value: str) -> bool:
    """Whether `value` has the form of a conversion id (uuid4 hex)."""
    return _TASK_ID.fullmatch(value) is not None


def _checked_id(task_id: str) -> str:
    if not _TASK_ID.fullmatch(task_id):
        raise TaskNotFound(task_id[:64])
    return task_id


def get_task(*, tenant_id: str, task_id: str, repository: TaskRepository) -> Task:
    """The tenant's task; another tenant's id is TaskNotFound, exactly as an unknown one."""
    checked = _checked_id(task_id)
    with _dependency("task table"):
        return repository.get(checked, tenant_id=tenant_id)


# What a synchronous answer keeps of the Lambda's remaining time after the wait: reading the audio from S3,
# base64 for API Gateway, and the answer's way out (the API's dependency budget is 4 s).
LAMBDA_ANSWER_RESERVE_S = 6.0
_FIRST_POLL_S = 0.2
_MAX_POLL_S = 1.0


def sync_deadline(
    *, settings: ApiSettings, lambda_context: Any | None = None, clock: Callable[[], float] = time.monotonic
) -> float:
    """The `clock` value a synchronous route waits until: SYNC_WAIT_S from now, cut to the Lambda's remaining
    time less LAMBDA_ANSWER_RESERVE_S when there is a Lambda context (Mangum: scope["aws.context"])."""
    now = clock()
    budget = settings.sync_wait_s
    remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        budget = min(budget, remaining() / 1000 - LAMBDA_ANSWER_RESERVE_S)
    return now + max(budget, 0.0)


def wait_for_end(
    *,
    task_id: str,
    tenant_id: str,
    deadline_s: float,
    repository: TaskRepository,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Task:
    """Poll the tenant's task (consistent reads) until it ends or `clock()` reaches `deadline_s` (an absolute
    value of `clock`, see sync_deadline), and return it as last read. It has ended when it is done or failed,
    or when it carries audio (completed: the audio is written, `done` is on its way). Polls start at 0.2 s and
    grow to 1 s: about 25 reads in 20 s. Not ended at the deadline: the task as it stands (the caller answers
    503). TaskNotFound and DependencyUnavailable as get_task."""
    checked = _checked_id(task_id)
    delay = _FIRST_POLL_S
    while True:
        with _dependency("task table"):
            task = repository.get(checked, tenant_id=tenant_id, consistent=True)
        if task.status in TERMINAL_STATUSES or task.lifecycle.audio is not None:
            return task
        left = deadline_s - clock()
        if left <= 0:
            return task
        sleep(min(delay, left))
        delay = min(delay * 1.5, _MAX_POLL_S)


def list_tasks(
    *,
    tenant_id: str,
    status: TaskStatus | None,
    limit: int,
    next_token: str | None,
    repository: TaskRepository,
) -> TaskPage:
    with _dependency("task table"):
        return repository.list_tasks(tenant_id=tenant_id, status=status, limit=limit, next_token=next_token)


def get_stats(*, tenant_id: str, repository: TaskRepository) -> TaskStats:
    with _dependency("task table"):
        return repository.stats(tenant_id=tenant_id)


def download_link(
    *,
    tenant_id: str,
    task_id: str,
    filename: str | None,
    settings: ApiSettings,
    repository: TaskRepository,
    audio_store: AudioStore,
) -> DownloadLink:
    """A presigned URL for a done task's audio, saved as `filename`, else the task's name, else its id."""
    if filename is not None:
        try:
            filename = validate_custom_filename(filename)
        except InvalidInput as exc:
            raise _invalid([_field_error(["query", "filename"], exc.message, "invalid_filename")]) from None
    task = get_task(tenant_id=tenant_id, task_id=task_id, repository=repository)
    audio = _done_audio(task)
    return audio_link(task=task, audio=audio, filename=filename, settings=settings, audio_store=audio_store)


def written_audio(task: Task) -> AudioInfo | None:
    """The task's audio once written (completed or done; `done` may still be on its way), else None."""
    if task.status in (TaskStatus.COMPLETED, TaskStatus.DONE):
        return task.lifecycle.audio
    return None


def read_audio(*, audio: AudioInfo, max_bytes: int, audio_store: AudioStore) -> bytes | None:
    """The audio's bytes for a synchronous answer; None when larger than `max_bytes` (answer with a link)."""
    if audio.file_size > max_bytes:
        return None
    with _dependency("audio bucket"):
        return audio_store.get_audio(audio.audio_key, max_bytes)


def audio_link(
    *, task: Task, audio: AudioInfo, filename: str | None, settings: ApiSettings, audio_store: AudioStore
) -> DownloadLink:
    """A presigned URL for written audio, saved as `filename`, else the task's name, else its id."""
    name = download_filename(filename or task.custom_filename, task.task_id, audio.format)
    return presigned_link(
        audio.audio_key,
        filename=name,
        content_type=FORMATS[audio.format].content_type,
        settings=settings,
        audio_store=audio_store,
    )


def presigned_link(
    key: str, *, filename: str, content_type: str, settings: ApiSettings, audio_store: AudioStore
) -> DownloadLink:
    """A presigned GET URL of an object in the audio bucket, valid PRESIGN_EXPIRY_S, saved as `filename`."""
    with _dependency("audio bucket"):
        signed: PresignedDownload = audio_store.presign_download(
            key, filename=filename, content_type=content_type, expires_in_s=settings.presign_expiry_s
        )
    return DownloadLink(url=signed.url, expires_at=signed.expires_at, filename=filename)


def _done_audio(task: Task) -> AudioInfo:
    """A done task's audio facts; TaskNotReady (with a failed task's error) before it is done."""
    audio = task.lifecycle.audio
    if task.status is not TaskStatus.DONE or audio is None:
        not_ready = TaskNotReady(task.task_id, str(task.status))
        if task.lifecycle.error is not None and not_ready.details is not None:
            not_ready.details["error"] = task.lifecycle.error.model_dump()
        raise not_ready
    return audio


def marks_link(
    *,
    tenant_id: str,
    task_id: str,
    marks_format: MarksFormat,
    settings: ApiSettings,
    repository: TaskRepository,
    audio_store: AudioStore,
) -> DownloadLink:
    """A presigned URL for a done task's speech marks or subtitles in one format."""
    task = get_task(tenant_id=tenant_id, task_id=task_id, repository=repository)
    if marks_format not in _done_audio(task).marks:
        raise MarksNotAvailable(task.task_id, str(marks_format))
    return presigned_link(
        marks_key_for(task.task_id, marks_format),
        filename=marks_filename(task.custom_filename, task.task_id, marks_format),
        content_type=MARKS_FORMATS[marks_format].content_type,
        settings=settings,
        audio_store=audio_store,
    )


@dataclass(frozen=True, slots=True)
class Health:
    table: bool
    bucket: bool
    queue: bool

    @property
    def ok(self) -> bool:
        return self.table and self.bucket and self.queue


def _answers(ping: Callable[[], bool], what: str) -> bool:
    try:
        return ping()
    except Exception:
        logger.exception("health check failed", extra={"dependency": what})
        return False


def check_health(*, repository: TaskRepository, audio_store: AudioStore, job_queue: JobQueue) -> Health:
    """Ping the three at once, so a hung dependency costs one call's timeout, not three in a row."""
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="health") as pool:
        table = pool.submit(_answers, repository.ping, "task table")
        bucket = pool.submit(_answers, audio_store.ping, "audio bucket")
        queue = pool.submit(_answers, job_queue.ping, "jobs queue")
        return Health(table=table.result(), bucket=bucket.result(), queue=queue.result())
