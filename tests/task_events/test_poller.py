"""The local stack's lifecycle consumer loop: events applied while a sweep runs, unknown tasks logged."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import boto3
import pytest

from tests.task_events.test_task_events import make_task
from tts_common.adapters.sqs import JobQueue
from tts_common.domain import TaskStatus
from tts_common.messages import LifecycleEvent
from tts_common.settings import TaskEventsSettings, load_settings
from tts_task_events import poller


@pytest.fixture
def events_queue(resources) -> JobQueue:
    return JobQueue(
        sqs_client=boto3.client("sqs", region_name="us-east-1"), queue_url=resources.events_queue_url
    )


def send(queue: JobQueue, event: LifecycleEvent) -> None:
    queue._sqs.send_message(QueueUrl=queue._url, MessageBody=event.model_dump_json())


def test_an_event_for_an_unknown_task_is_dropped_with_a_log_line(events_queue, repository, caplog) -> None:
    # Given an event for a task that does not exist
    send(events_queue, LifecycleEvent(task_id="f" * 32, status=TaskStatus.PROCESSING, at=datetime.now(UTC)))

    # When one round runs
    with caplog.at_level(logging.WARNING):
        applied = poller.apply_round(events_queue=events_queue, repository=repository, wait_s=0)

    # Then it is deleted (nothing can apply it later) and the drop is logged with the task id
    assert applied == 1
    assert events_queue.receive(wait_s=0) == []
    [record] = [r for r in caplog.records if "unknown task" in r.getMessage()]
    assert record.task_id == "f" * 32  # type: ignore[attr-defined]


def test_events_are_applied_while_a_sweep_is_stuck(events_queue, repository, resources, monkeypatch) -> None:
    # Given a sweep that hangs (a slow sweep over thousands of tasks)
    sweeping, release = threading.Event(), threading.Event()

    def stuck_sweep(**_: object) -> None:
        sweeping.set()
        release.wait(30)

    monkeypatch.setattr(poller, "sweep_round", stuck_sweep)
    task = make_task(repository, at=datetime.now(UTC))
    stop = threading.Event()
    consumer = threading.Thread(
        target=poller.run,
        kwargs={
            "settings": load_settings(TaskEventsSettings),
            "events_queue": events_queue,
            "stop": stop,
            "sweep_every_s": 0.01,
            "wait_s": 0,
        },
    )
    consumer.start()
    try:
        assert sweeping.wait(10)
        # When an event arrives during the sweep
        send(
            events_queue,
            LifecycleEvent(task_id=task.task_id, status=TaskStatus.PROCESSING, at=datetime.now(UTC)),
        )

        # Then it is applied without waiting for the sweep
        deadline = time.monotonic() + 10
        while repository.get(task.task_id, tenant_id=None).status is not TaskStatus.PROCESSING:
            assert time.monotonic() < deadline, "the event waited for the sweep"
            time.sleep(0.05)
    finally:
        stop.set()
        release.set()
        consumer.join(10)
