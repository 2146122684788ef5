"""The consumer as a long-poll loop, for the local stack (on AWS an SQS event source invokes the handler)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from aws_lambda_powertools import Logger
from pydantic import Field

from tts_common.adapters.aws import client
from tts_common.adapters.events import EventPublisher
from tts_common.adapters.sqs import JobQueue, ReceivedMessage
from tts_common.settings import TaskEventsSettings, load_settings
from tts_common.storage.plans import PlanLedger
from tts_common.storage.repository import TaskRepository
from tts_common.wiring import job_queue_from, publisher_from, repository_from
from tts_task_events.dead_letters import fail_dead_lettered
from tts_task_events.logic import apply_message
from tts_task_events.sweeper import ledger_from, policy_from, sweep

logger = Logger(service="tts-task-events")


def _consume_round(
    *, queue: JobQueue, handle: Callable[[ReceivedMessage], None], wait_s: int, what: str
) -> int:
    """Receive one batch, handle each message, delete what was handled; returns how many. A message whose
    handling raised stays, for the visibility timeout and then the queue's DLQ."""
    done = []
    for message in queue.receive(max_messages=10, wait_s=wait_s):
        try:
            handle(message)
        except Exception:
            logger.exception(f"{what} not handled", message_id=message.message_id)
            continue
        done.append(message.receipt_handle)
    if done:
        queue.delete_many(done)
    return len(done)


def apply_round(*, events_queue: JobQueue, repository: TaskRepository, wait_s: int) -> int:
    """Apply one batch of lifecycle messages to their task records."""

    def apply(message: ReceivedMessage) -> None:
        applied = apply_message(body=message.body, repository=repository)
        if applied.task is None:
            logger.warning(
                "lifecycle message for an unknown task dropped",
                task_id=applied.event.task_id,
                status=str(applied.event.status),
            )

    return _consume_round(queue=events_queue, handle=apply, wait_s=wait_s, what="lifecycle message")


def sweep_round(*, settings: TaskEventsSettings, repository: TaskRepository) -> None:
    report = sweep(
        repository=repository,
        queue=job_queue_from(settings),
        publisher=publisher_from(settings),
        now=datetime.now(UTC),
        policy=policy_from(settings),
        ledger=ledger_from(settings),
    )
    if report.requeued or report.timed_out or report.finished:
        logger.info("sweep", requeued=report.requeued, timed_out=report.timed_out, finished=report.finished)


def dead_letter_round(
    *,
    jobs_dlq: JobQueue,
    repository: TaskRepository,
    publisher: EventPublisher,
    wait_s: int,
    ledger: PlanLedger | None = None,
) -> int:
    """Fail the tasks of one batch of dead-lettered jobs (a part's also fails its parent's plan)."""

    def fail(message: ReceivedMessage) -> None:
        fail_dead_lettered(
            body=message.body,
            receive_count=message.receive_count,
            repository=repository,
            publisher=publisher,
            clock=lambda: datetime.now(UTC),
            ledger=ledger,
        )

    return _consume_round(queue=jobs_dlq, handle=fail, wait_s=wait_s, what="dead-lettered job")


def _dead_letter_loop(
    *, settings: TaskEventsSettings, jobs_dlq: JobQueue, repository: TaskRepository, stop: threading.Event
) -> None:
    publisher = publisher_from(settings)
    ledger = ledger_from(settings)
    while not stop.is_set():
        try:
            dead_letter_round(
                jobs_dlq=jobs_dlq, repository=repository, publisher=publisher, wait_s=1, ledger=ledger
            )
        except Exception:
            logger.exception("jobs DLQ round failed; going on")
            stop.wait(1.0)


def _sweep_loop(
    *, settings: TaskEventsSettings, repository: TaskRepository, stop: threading.Event, every_s: float
) -> None:
    """The sweeper on its own thread, as on AWS it is its own function: a slow sweep never delays events."""
    while not stop.wait(every_s):
        try:
            sweep_round(settings=settings, repository=repository)
        except Exception:
            logger.exception("sweep failed; the next one goes on")


def run(
    *,
    settings: TaskEventsSettings,
    events_queue: JobQueue,
    stop: threading.Event,
    sweep_every_s: float = 30.0,
    wait_s: int = 1,
    jobs_dlq: JobQueue | None = None,
    parts_dlq: JobQueue | None = None,
) -> None:
    """Apply lifecycle messages until `stop` is set; sweep every `sweep_every_s` on a thread of its own."""
    repository: TaskRepository = repository_from(settings)
    sweeper = threading.Thread(
        target=_sweep_loop,
        kwargs={"settings": settings, "repository": repository, "stop": stop, "every_s": sweep_every_s},
        name="sweeper",
        daemon=True,
    )
    sweeper.start()
    for name, dlq in (("jobs-dlq", jobs_dlq), ("parts-dlq", parts_dlq)):
        if dlq is not None:
            threading.Thread(
                target=_dead_letter_loop,
                kwargs={"settings": settings, "jobs_dlq": dlq, "repository": repository, "stop": stop},
                name=name,
                daemon=True,
            ).start()
    while not stop.is_set():
        try:
            apply_round(events_queue=events_queue, repository=repository, wait_s=wait_s)
        except Exception:  # one bad round (a dependency hiccup) must not stop the consumer
            logger.exception("consumer round failed; going on")
            stop.wait(1.0)
    sweeper.join(timeout=5)


class PollerSettings(TaskEventsSettings):
    """The local stack's consumer also needs the events queue, which on AWS is the Lambda's event source."""

    events_queue_url: str = Field(validation_alias="EVENTS_QUEUE_URL", min_length=1)
    sweep_every_s: float = Field(default=30.0, validation_alias="SWEEP_EVERY_S", gt=0)
    # The jobs DLQ, whose messages fail their tasks at once (on AWS, its own function's event source).
    jobs_dlq_url: str | None = Field(default=None, validation_alias="JOBS_DLQ_URL")
    # The parts DLQ (fan-out): a dead-lettered part fails its parent task the same way.
    parts_dlq_url: str | None = Field(default=None, validation_alias="PARTS_DLQ_URL")


def main() -> None:
    settings = load_settings(PollerSettings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sqs = client("sqs", settings)
    queue = JobQueue(sqs_client=sqs, queue_url=settings.events_queue_url)
    jobs_dlq = JobQueue(sqs_client=sqs, queue_url=settings.jobs_dlq_url) if settings.jobs_dlq_url else None
    logger.info(
        "lifecycle consumer started", events_queue=settings.events_queue_url, jobs_dlq=settings.jobs_dlq_url
    )
    run(
        settings=settings,
        events_queue=queue,
        stop=stop,
        sweep_every_s=settings.sweep_every_s,
        jobs_dlq=jobs_dlq,
        parts_dlq=JobQueue(sqs_client=sqs, queue_url=settings.parts_dlq_url)
        if settings.parts_dlq_url
        else None,
    )


if __name__ == "__main__":
    main()
