"""Nothing stuck: re-enqueue tasks whose submission died half-way; fail tasks that outlived every retry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tts_common.adapters.events import EventPublisher
from tts_common.adapters.sqs import JobQueue
from tts_common.domain import SynthesisParams, TaskStatus
from tts_common.jobs import job_for
from tts_common.messages import ErrorInfo, LifecycleEvent
from tts_common.storage.repository import TaskRepository

UNFINISHED = (TaskStatus.QUEUED, TaskStatus.PROCESSING, TaskStatus.COMPLETED)


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)


def sweep(
    *,
    repository: TaskRepository,
    queue: JobQueue,
    publisher: EventPublisher,
    params: SynthesisParams,
    now: datetime,
    requeue_after: timedelta,
    stale_after: timedelta,
    limit: int = 100,
) -> SweepReport:
    report = SweepReport()
    stale_cutoff = now - stale_after
    for status in UNFINISHED:
        for task in repository.tasks_submitted_before(status, stale_cutoff, limit=limit):
            publisher.publish(
                LifecycleEvent(
                    task_id=task.task_id,
                    status=TaskStatus.FAILED,
                    at=now,
                    attempt=task.lifecycle.attempts,
                    error=ErrorInfo(
                        code="timed_out",
                        message=f"not finished {int(stale_after.total_seconds())} s after submission "
                        f"(last status {task.status})",
                    ),
                )
            )
            report.timed_out.append(task.task_id)

    # The API publishes `queued` only after the job is on the queue; a task without it lost its job.
    for summary in repository.tasks_submitted_before(TaskStatus.QUEUED, now - requeue_after, limit=limit):
        if summary.lifecycle.enqueued_at is not None or summary.task_id in report.timed_out:
            continue
        task = repository.get(summary.task_id, consistent=True)
        if task.status is not TaskStatus.QUEUED or task.lifecycle.enqueued_at is not None:
            continue
        queue.send(job_for(task, params))
        publisher.publish(LifecycleEvent(task_id=task.task_id, status=TaskStatus.QUEUED, at=now))
        report.requeued.append(task.task_id)
    return report
