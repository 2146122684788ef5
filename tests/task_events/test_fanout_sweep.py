"""The sweeper and a fanned-out task (issue 12): a parent whose parts or join went missing is re-sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3

from tests.sqs_support import drain
from tests.task_events.test_task_events import make_task
from tts_common.adapters.events import EventPublisher
from tts_common.adapters.sqs import JobQueue
from tts_common.domain import TaskStatus
from tts_common.messages import LifecycleEvent
from tts_common.storage.plans import PlanLedger
from tts_task_events.sweeper import SweepPolicy, sweep

POLICY = SweepPolicy(
    requeue_after=timedelta(minutes=2),
    stale_after=timedelta(hours=6),
    queued_stale_after=timedelta(days=4),
    fanout_stale_after=timedelta(minutes=30),
    fanout_max_resends=2,
)


def _sweep(resources, repository, ledger, now):
    sqs = boto3.client("sqs", region_name="us-east-1")
    return sweep(
        repository=repository,
        queue=JobQueue(sqs_client=sqs, queue_url=resources.jobs_queue_url),
        publisher=EventPublisher(
            sns_client=boto3.client("sns", region_name="us-east-1"), topic_arn=resources.events_topic_arn
        ),
        now=now,
        policy=POLICY,
        ledger=ledger,
    )


def test_a_quiet_fanned_out_task_is_resent_then_failed(resources, repository) -> None:
    now = datetime.now(UTC)
    quiet = now - timedelta(hours=1)
    task = make_task(repository, at=quiet - timedelta(minutes=5), text="Pitkä teksti osina")
    plain = make_task(repository, at=quiet - timedelta(minutes=5), text="Tavallinen")
    for t in (task, plain):
        repository.apply_events(
            t.task_id, [LifecycleEvent(task_id=t.task_id, status=TaskStatus.PROCESSING, at=quiet, attempt=1)]
        )
    ledger = PlanLedger(
        dynamodb_client=boto3.client("dynamodb", region_name="us-east-1"), table_name=resources.table_name
    )
    ledger.create(task.task_id, parts_total=3, pieces_total=30, join_job="{}", now=quiet)
    ledger.mark_stored(task.task_id, 0, 10)

    # The fanned-out one is sent again (its plan step re-sends the missing parts); the plain one is the
    # stale_after rule's, which is hours away.
    first = _sweep(resources, repository, ledger, now)
    assert first.resent == [task.task_id]
    assert first.timed_out == []
    [body] = drain(resources.jobs_queue_url)
    assert json.loads(body)["task_id"] == task.task_id
    assert "kind" not in json.loads(body)
    assert _sweep(resources, repository, ledger, now).resent == [task.task_id]
    drain(resources.jobs_queue_url)
    # After fanout_max_resends, it fails.
    third = _sweep(resources, repository, ledger, now)
    assert third.resent == []
    assert third.timed_out == [task.task_id]


def test_a_joined_or_failed_plan_is_left_to_the_other_rules(resources, repository) -> None:
    now = datetime.now(UTC)
    quiet = now - timedelta(hours=1)
    ledger = PlanLedger(
        dynamodb_client=boto3.client("dynamodb", region_name="us-east-1"), table_name=resources.table_name
    )
    joined = make_task(repository, at=quiet, text="Yhdistetty")
    failed = make_task(repository, at=quiet, text="Epäonnistunut")
    for t in (joined, failed):
        repository.apply_events(
            t.task_id, [LifecycleEvent(task_id=t.task_id, status=TaskStatus.PROCESSING, at=quiet, attempt=1)]
        )
        ledger.create(t.task_id, parts_total=2, pieces_total=4, join_job="{}", now=quiet)
    ledger.join_done(joined.task_id, quiet)
    ledger.fail(failed.task_id, "part 2 of 2: boom")
    report = _sweep(resources, repository, ledger, now)
    assert report.resent == []
    assert report.timed_out == []
