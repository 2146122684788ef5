"""The notifier as a long-poll loop, for the local stack (on AWS the queue is the Lambda's event source)."""

from __future__ import annotations

import signal
import threading

from aws_lambda_powertools import Logger
from pydantic import Field

from tts_common.adapters.aws import client
from tts_common.adapters.sqs import JobQueue
from tts_common.settings import NotifierSettings, load_settings
from tts_notifier.logic import Notifier
from tts_notifier.wiring import notifier_from

logger = Logger(service="tts-notifier")


def notify_round(*, queue: JobQueue, notifier: Notifier, wait_s: int) -> int:
    """Handle one batch; delete what was handled (a raise leaves the message for its visibility timeout)."""
    done = []
    for message in queue.receive(max_messages=10, wait_s=wait_s):
        try:
            outcome = notifier.handle(message.body)
        except Exception:
            logger.exception("notification not handled", message_id=message.message_id)
            continue
        logger.info("notification handled", outcome=str(outcome), message_id=message.message_id)
        done.append(message.receipt_handle)
    if done:
        queue.delete_many(done)
    return len(done)


def run(*, queue: JobQueue, notifier: Notifier, stop: threading.Event, wait_s: int = 1) -> None:
    while not stop.is_set():
        try:
            notify_round(queue=queue, notifier=notifier, wait_s=wait_s)
        except Exception:  # a dependency hiccup must not stop the loop
            logger.exception("notifier round failed; going on")
            stop.wait(1.0)


class PollerSettings(NotifierSettings):
    poll_wait_s: int = Field(default=1, validation_alias="NOTIFIER_POLL_WAIT_S", ge=0, le=20)


def main() -> None:
    settings = load_settings(PollerSettings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    queue = JobQueue(sqs_client=client("sqs", settings), queue_url=settings.notifications_queue_url)
    logger.info(
        "notifier started",
        queue=settings.notifications_queue_url,
        allow_loopback=settings.webhook_allow_loopback,
    )
    run(queue=queue, notifier=notifier_from(settings), stop=stop, wait_s=settings.poll_wait_s)


if __name__ == "__main__":
    main()
