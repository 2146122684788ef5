"""The jobs DLQ consumer: a dead-lettered job fails its task at once, with the typed reason dead_lettered."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import boto3
import pytest

from tests.sqs_support import drain
from tests.task_events.test_task_events import audio_of, make_task
from tts_common.adapters.events import EventPublisher
from tts_common.adapters.sqs import JobQueue
from tts_common.domain import TaskStatus
from tts_common.jobs import job_for
from tts_common.messages import ErrorInfo, LifecycleEvent
from tts_common.settings import TaskEventsSettings, load_settings
from tts_task_events import poller
from tts_task_events.dead_letters import DEAD_LETTERED, fail_dead_lettered

NOW = datetime(2030, 1, 1, tzinfo=UTC)  # only stamps events; never compared with the wall clock


@pytest.fixture
def publisher(resources) -> EventPublisher:
    return EventPublisher(
        sns_client=boto3.client("sns", region_name="us-east-1"), topic_arn=resources.events_topic_arn
    )


def events(resources) -> list[LifecycleEvent]:
    return [LifecycleEvent.model_validate_json(b) for b in drain(resources.events_queue_url)]


def job_body(task) -> str:
    return job_for(task).model_dump_json()


def test_a_dead_lettered_job_of_a_processing_task_fails_it_with_a_typed_reason(
    resources, repository, publisher
) -> None:
    # Given a task stuck in processing whose job used up its deliveries
    task = make_task(repository, at=datetime.now(UTC))
    repository.apply_events(
        task.task_id, [LifecycleEvent(task_id=task.task_id, status=TaskStatus.PROCESSING, at=NOW, attempt=2)]
    )

    # When the DLQ consumer sees it
    outcome = fail_dead_lettered(
        body=job_body(task), receive_count=1, repository=repository, publisher=publisher, clock=lambda: NOW
    )

    # Then a failed event with the typed reason goes out on the channel
    assert outcome.failed
    [failed] = events(resources)
    assert (failed.task_id, failed.status, failed.attempt) == (task.task_id, TaskStatus.FAILED, 2)
    assert failed.error is not None
    assert failed.error.code == DEAD_LETTERED


@pytest.mark.parametrize("final", [TaskStatus.DONE, TaskStatus.FAILED])
def test_a_task_that_already_ended_is_left_alone(resources, repository, publisher, final) -> None:
    # Given a task that ended (its own last attempt reported it)
    task = make_task(repository, at=datetime.now(UTC))
    audio = audio_of(task)
    ending = LifecycleEvent(
        task_id=task.task_id,
        status=final,
        at=NOW,
        audio=audio if final is TaskStatus.DONE else None,
        error=ErrorInfo(code="x", message="y") if final is TaskStatus.FAILED else None,
    )
    repository.apply_events(task.task_id, [ending])

    # When its job is dead-lettered, Then nothing more is said
    outcome = fail_dead_lettered(
        body=job_body(task), receive_count=3, repository=repository, publisher=publisher, clock=lambda: NOW
    )
    assert not outcome.failed
    assert events(resources) == []


@pytest.mark.parametrize("body", ["{not json", '{"task_id": "' + "e" * 32 + '"}'])
def test_poison_and_unknown_tasks_are_dropped(resources, repository, publisher, body) -> None:
    outcome = fail_dead_lettered(
        body=body, receive_count=3, repository=repository, publisher=publisher, clock=lambda: NOW
    )
    assert not outcome.failed
    assert events(resources) == []


def test_a_dead_lettered_part_fails_its_parents_plan_and_the_parent(resources, repository, publisher) -> None:
    # Given a fanned-out task in processing, its plan in the ledger, and one of its parts dead-lettered
    from tts_common.messages import PartJob, PartPiece
    from tts_common.storage.plans import PlanLedger

    task = make_task(repository, at=datetime.now(UTC))
    repository.apply_events(
        task.task_id, [LifecycleEvent(task_id=task.task_id, status=TaskStatus.PROCESSING, at=NOW, attempt=1)]
    )
    ledger = PlanLedger(
        dynamodb_client=boto3.client("dynamodb", region_name="us-east-1"), table_name=resources.table_name
    )
    ledger.create(task.task_id, parts_total=3, pieces_total=6, join_job="{}", now=NOW)
    job = job_for(task)
    part = PartJob(
        task_id=task.task_id,
        dedupe_key=job.dedupe_key,
        voice=job.voice,
        audio_key=job.audio_key,
        submitted_at=job.submitted_at,
        seed_key="0" * 64,
        part=1,
        parts_total=3,
        pieces_total=6,
        pieces=(
            PartPiece(index=2, position=2, text="Kolmas."),
            PartPiece(index=3, position=3, text="Neljäs."),
        ),
    )

    # When the DLQ consumer sees it
    outcome = fail_dead_lettered(
        body=part.model_dump_json(),
        receive_count=3,
        repository=repository,
        publisher=publisher,
        clock=lambda: NOW,
        ledger=ledger,
    )

    # Then the plan is failed (the other parts stop, no join is sent) and so is the parent, naming the part
    assert outcome.failed
    assert outcome.part
    plan = ledger.get(task.task_id)
    assert plan is not None
    assert plan.failed_reason is not None
    assert "part 2 of 3" in plan.failed_reason
    [failed] = events(resources)
    assert failed.error is not None
    assert (failed.status, failed.error.code) == (TaskStatus.FAILED, DEAD_LETTERED)
    assert "part 2 of 3" in failed.error.message
    # A plain job's dead letter leaves the ledger alone.
    plain = fail_dead_lettered(
        body=job_body(task), receive_count=3, repository=repository, publisher=publisher, clock=lambda: NOW
    )
    assert not plain.part


def test_the_local_consumer_fails_a_dead_lettered_job_within_seconds(resources, repository) -> None:
    # Given the local consumer loop watching the jobs DLQ, and a processing task
    sqs = boto3.client("sqs", region_name="us-east-1")
    task = make_task(repository, at=datetime.now(UTC))
    repository.apply_events(
        task.task_id, [LifecycleEvent(task_id=task.task_id, status=TaskStatus.PROCESSING, at=NOW)]
    )
    stop = threading.Event()
    consumer = threading.Thread(
        target=poller.run,
        kwargs={
            "settings": load_settings(TaskEventsSettings),
            "events_queue": JobQueue(sqs_client=sqs, queue_url=resources.events_queue_url),
            "stop": stop,
            "sweep_every_s": 3600,
            "wait_s": 0,
            "jobs_dlq": JobQueue(sqs_client=sqs, queue_url=resources.jobs_dlq_url),
        },
    )
    consumer.start()
    try:
        # When its job lands in the DLQ
        sqs.send_message(QueueUrl=resources.jobs_dlq_url, MessageBody=job_body(task))

        # Then the task ends failed (dead_lettered) at once, not after STALE_AFTER_S
        deadline = time.monotonic() + 15
        while (current := repository.get(task.task_id, tenant_id=None)).status is not TaskStatus.FAILED:
            assert time.monotonic() < deadline, "the dead-lettered task was not failed"
            time.sleep(0.1)
        assert current.lifecycle.error is not None
        assert current.lifecycle.error.code == DEAD_LETTERED
        assert drain(resources.jobs_dlq_url) == []
    finally:
        stop.set()
        consumer.join(10)


def test_the_lambda_handler_fails_the_task_and_reports_nothing_back(resources, repository, lambda_context):
    # Given the DLQ function on a cold start, and a processing task whose job was dead-lettered
    import tts_task_events.handler as module
    from tests.sqs_support import sqs_event
    from tts_common.settings import cached_settings

    module._repository.cache_clear()
    cached_settings.cache_clear()
    task = make_task(repository, at=datetime.now(UTC))
    repository.apply_events(
        task.task_id, [LifecycleEvent(task_id=task.task_id, status=TaskStatus.PROCESSING, at=NOW)]
    )
    try:
        # When it runs on a batch of one
        response = module.dead_letter_handler(sqs_event([job_body(task)], receive_count=1), lambda_context)
    finally:
        module._repository.cache_clear()
        cached_settings.cache_clear()

    # Then the record is handled and the task's failure is on the channel
    assert response == {"batchItemFailures": []}
    [failed] = events(resources)
    assert failed.error is not None
    assert (failed.status, failed.error.code) == (TaskStatus.FAILED, DEAD_LETTERED)
