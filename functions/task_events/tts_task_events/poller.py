"""The consumer as a long-poll loop, for the local stack (on AWS an SQS event source invokes the handler)."""

from __future__ import annotations

import signal
import threading
import time
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


def run(
    *,
    settings: TaskEventsSettings,
    events_queue: JobQueue,
    stop: threading.Event,
    sweep_every_s: float = 30.0,
    wait_s: int = 1,
) -> None:
    """Apply lifecycle messages until `stop` is set; sweep stuck tasks every `sweep_every_s`."""
    repository: TaskRepository = repository_from(settings)
    jobs, publisher = job_queue_from(settings), publisher_from(settings)
    next_sweep = 0.0
    while not stop.is_set():
        try:
            messages = events_queue.receive(max_messages=10, wait_s=wait_s)
            done = []
            for message in messages:
                try:
                    apply_message(body=message.body, repository=repository)
                    done.append(message.receipt_handle)
                except Exception:  # left to the visibility timeout, then the DLQ
                    logger.exception("lifecycle message not applied", message_id=message.message_id)
            if done:
                events_queue.delete_many(done)
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + sweep_every_s
                report = sweep(
                    repository=repository,
                    queue=jobs,
                    publisher=publisher,
                    params=settings.synthesis_params,
                    now=datetime.now(UTC),
                    policy=policy_from(settings),
                )
                if report.requeued or report.timed_out or report.finished:
                    logger.info(
                        "sweep",
                        requeued=report.requeued,
                        timed_out=report.timed_out,
                        finished=report.finished,
                    )
        except Exception:  # one bad round (a dependency hiccup) must not stop the consumer
            logger.exception("consumer round failed; going on")
            stop.wait(1.0)


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
