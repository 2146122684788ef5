"""The consumer as a long-poll loop, for the local stack (on AWS an SQS event source invokes the handler)."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime

from aws_lambda_powertools import Logger
from pydantic import Field

from tts_common.adapters.aws import client
from tts_common.adapters.sqs import JobQueue
from tts_common.settings import TaskEventsSettings, load_settings
from tts_common.storage.repository import TaskRepository
from tts_common.wiring import job_queue_from, publisher_from, repository_from
from tts_task_events.logic import apply_message
from tts_task_events.sweeper import policy_from, sweep

logger = Logger(service="tts-task-events")


def apply_round(*, events_queue: JobQueue, repository: TaskRepository, wait_s: int) -> int:
    """Receive one batch of lifecycle messages, apply them, delete what was applied; returns how many."""
    messages = events_queue.receive(max_messages=10, wait_s=wait_s)
    done = []
    for message in messages:
        try:
            applied = apply_message(body=message.body, repository=repository)
        except Exception:  # left to the visibility timeout, then the DLQ
            logger.exception("lifecycle message not applied", message_id=message.message_id)
            continue
        if applied.task is None:
            logger.warning(
                "lifecycle message for an unknown task dropped",
                task_id=applied.event.task_id,
                status=str(applied.event.status),
            )
        done.append(message.receipt_handle)
    if done:
        events_queue.delete_many(done)
    return len(done)


def sweep_round(*, settings: TaskEventsSettings, repository: TaskRepository) -> None:
    report = sweep(
        repository=repository,
        queue=job_queue_from(settings),
        publisher=publisher_from(settings),
        params=settings.synthesis_params,
        now=datetime.now(UTC),
        policy=policy_from(settings),
    )
    if report.requeued or report.timed_out or report.finished:
        logger.info("sweep", requeued=report.requeued, timed_out=report.timed_out, finished=report.finished)


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


def main() -> None:
    settings = load_settings(PollerSettings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    queue = JobQueue(sqs_client=client("sqs", settings), queue_url=settings.events_queue_url)
    logger.info("lifecycle consumer started", events_queue=settings.events_queue_url)
    run(settings=settings, events_queue=queue, stop=stop, sweep_every_s=settings.sweep_every_s)


if __name__ == "__main__":
    main()
