"""Nothing stuck: re-enqueue tasks whose submission died half-way; finish or fail tasks gone quiet."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tts_common.adapters.events import EventPublisher
from tts_common.adapters.sqs import JobQueue
from tts_common.domain import TaskStatus
from tts_common.jobs import job_for
from tts_common.messages import ErrorInfo, LifecycleEvent
from tts_common.settings import FANOUT_MAX_RESENDS, FANOUT_STALE_AFTER_S, TaskEventsSettings
from tts_common.storage.plans import PlanLedger
from tts_common.storage.repository import TaskRepository
from tts_common.task import Task


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)  # fanned-out tasks whose parent job was sent again


@dataclass(frozen=True)
class SweepPolicy:
    requeue_after: timedelta  # queued, never marked enqueued: its job may not be on the queue
    stale_after: timedelta  # processing or completed with no lifecycle message for this long
    queued_stale_after: timedelta  # queued this long: SQS has dropped the job (its retention)
    limit: int = 500  # per rule and run; the next run goes on where this one stopped
    # A fanned-out task processing this quiet lost a part or its join (a part reports every few seconds).
    fanout_stale_after: timedelta = timedelta(seconds=FANOUT_STALE_AFTER_S)
    fanout_max_resends: int = FANOUT_MAX_RESENDS


def sweep(
    *,
    repository: TaskRepository,
    queue: JobQueue,
    publisher: EventPublisher,
    now: datetime,
    policy: SweepPolicy,
    ledger: PlanLedger | None = None,
) -> SweepReport:
    """Every decision travels as a lifecycle message, so the record and every subscriber learn it alike.
    A re-enqueued job carries the task's stored voice: the sweeper has no voice settings of its own."""
    report = SweepReport()

    def fail(task: Task, message: str) -> None:
        publisher.publish(
            LifecycleEvent(
                task_id=task.task_id,
                status=TaskStatus.FAILED,
                at=now,
                attempt=task.lifecycle.attempts,
                error=ErrorInfo(code="timed_out", message=message),
            )
        )
        report.timed_out.append(task.task_id)

    quiet_since = now - policy.stale_after
    for task in repository.stalled(TaskStatus.COMPLETED, inactive_since=quiet_since, limit=policy.limit):
        if task.lifecycle.audio is not None:
            # The audio is written and reported; only the final message was lost.
            publisher.publish(
                LifecycleEvent(
                    task_id=task.task_id, status=TaskStatus.DONE, at=now, audio=task.lifecycle.audio
                )
            )
            report.finished.append(task.task_id)
        else:
            fail(task, f"no progress for {int(policy.stale_after.total_seconds())} s after completing")
    if ledger is not None:
        _resend_stalled_fanouts(repository, queue, ledger, now=now, policy=policy, fail=fail, report=report)
    for task in repository.stalled(TaskStatus.PROCESSING, inactive_since=quiet_since, limit=policy.limit):
        if task.task_id in report.timed_out:
            continue
        fail(
            task,
            f"no progress for {int(policy.stale_after.total_seconds())} s (worker lost or job dead-lettered)",
        )
    queued_cutoff = now - policy.queued_stale_after
    for task in repository.stalled(TaskStatus.QUEUED, inactive_since=queued_cutoff, limit=policy.limit):
        fail(task, f"still queued after {int(policy.queued_stale_after.total_seconds())} s")

    # The API marks a task enqueued right after sending its job; a task without the mark may have lost it.
    timed_out = set(report.timed_out)
    for summary in repository.unannounced(submitted_before=now - policy.requeue_after, limit=policy.limit):
        if summary.task_id in timed_out:
            continue
        task = repository.get(summary.task_id, tenant_id=None, consistent=True)  # the index holds no text
        if task.status is not TaskStatus.QUEUED or task.lifecycle.enqueued_at is not None:
            continue
        queue.send(job_for(task))
        repository.mark_enqueued(task.task_id, at=now)
        publisher.publish(LifecycleEvent(task_id=task.task_id, status=TaskStatus.QUEUED, at=now))
        report.requeued.append(task.task_id)
    return report


def _resend_stalled_fanouts(
    repository: TaskRepository,
    queue: JobQueue,
    ledger: PlanLedger,
    *,
    now: datetime,
    policy: SweepPolicy,
    fail: Callable[[Task, str], None],
    report: SweepReport,
) -> None:
    """A fanned-out task gone quiet: send its parent job again, whose plan step re-sends the parts not
    stored (or the join, when all are); after `fanout_max_resends` tries it fails."""
    cutoff = now - policy.fanout_stale_after
    for summary in repository.stalled(TaskStatus.PROCESSING, inactive_since=cutoff, limit=policy.limit):
        plan = ledger.get(summary.task_id)
        if plan is None or plan.failed_reason or plan.join_done_at:
            continue  # not fanned out (the stale_after rule's), or failed or joined already
        if plan.resent_count >= policy.fanout_max_resends:
            fail(
                summary,
                f"parts stalled: {len(plan.stored)} of {plan.parts_total} stored "
                f"after {plan.resent_count} resends",
            )
            continue
        task = repository.get(summary.task_id, tenant_id=None, consistent=True)  # the index holds no text
        queue.send(job_for(task))
        ledger.note_resent(task.task_id, now)
        report.resent.append(task.task_id)


def policy_from(settings: TaskEventsSettings) -> SweepPolicy:
    return SweepPolicy(
        requeue_after=timedelta(seconds=settings.requeue_after_s),
        stale_after=timedelta(seconds=settings.stale_after_s),
        queued_stale_after=timedelta(seconds=settings.queued_stale_after_s),
        limit=settings.sweep_limit,
        fanout_stale_after=timedelta(seconds=settings.fanout_stale_after_s),
    )


def ledger_from(settings: TaskEventsSettings) -> PlanLedger:
    """The fan-out ledger (plan items in the tasks table)."""
    from tts_common.adapters.aws import client

    return PlanLedger(
        dynamodb_client=client("dynamodb", settings),
        table_name=settings.table_name,
        ttl_days=settings.task_ttl_days,
    )
