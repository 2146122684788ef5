"""The jobs DLQ consumer: a job that used up its deliveries fails its task at once, with a typed reason.

The worker publishes `failed` on a job's last attempt, but a job can also reach the DLQ without that: its
receives were used up while no worker finished it (a stall, a crash loop, a throttled Lambda). Without this
consumer such a task would stay `processing` until the sweeper's STALE_AFTER_S (it stays the backstop).
Transport-free: the Lambda handler (SQS event source on the jobs DLQ) and the local poller call it.

The parts DLQ (fan-out) comes here too: a dead-lettered part also marks its parent's plan failed in the
ledger (tts_common.storage.plans), so the other parts stop at their next piece and no join is sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tts_common.adapters.events import EventPublisher
from tts_common.domain import TERMINAL_STATUSES, TaskStatus
from tts_common.exceptions import TaskNotFound
from tts_common.jobs import recover_task_id
from tts_common.messages import ErrorInfo, LifecycleEvent
from tts_common.storage.plans import PlanLedger
from tts_common.storage.repository import TaskRepository

logger = logging.getLogger(__name__)

DEAD_LETTERED = "dead_lettered"
DEAD_LETTERED_MESSAGE = "the job was delivered as often as the queue allows without finishing"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What became of one dead-lettered job: the task it named (if any), and whether it was failed now."""

    task_id: str | None
    failed: bool
    # A fan-out part whose parent's plan it marked failed now (the parts DLQ's count).
    part: bool = False


def _part_of(body: str) -> tuple[int, int] | None:
    """(part, parts_total) of a part job's body (tts_common.messages.PartJob), else None."""
    try:
        raw = json.loads(body)
    except (ValueError, TypeError):
        return None
    if not isinstance(raw, dict) or raw.get("kind") != "part":
        return None
    part, total = raw.get("part"), raw.get("parts_total")
    if isinstance(part, int) and isinstance(total, int):
        return part, total
    return None


def fail_dead_lettered(
    *,
    body: str,
    receive_count: int,
    repository: TaskRepository,
    publisher: EventPublisher,
    clock: Callable[[], datetime],
    ledger: PlanLedger | None = None,
) -> DeadLetter:
    """Publish `failed` (dead_lettered) for the job's task unless it has ended (redeliveries are no-ops);
    for a part job, mark its parent's plan failed first (with `ledger`)."""
    task_id = recover_task_id(body)
    if task_id is None:
        logger.error("dead-lettered job names no task; dropped", extra={"body_head": body[:200]})
        return DeadLetter(task_id=None, failed=False)
    try:
        task = repository.get(task_id, tenant_id=None, consistent=True)
    except TaskNotFound:
        logger.warning("dead-lettered job for an unknown task; dropped", extra={"task_id": task_id})
        return DeadLetter(task_id=task_id, failed=False)
    if task.status in TERMINAL_STATUSES:
        return DeadLetter(task_id=task_id, failed=False)  # its own last attempt already said so
    part = _part_of(body)
    message = DEAD_LETTERED_MESSAGE
    if part is not None:
        message = f"part {part[0] + 1} of {part[1]}: {DEAD_LETTERED_MESSAGE}"
        if ledger is not None:
            ledger.fail(task_id, message)
    publisher.publish(
        LifecycleEvent(
            task_id=task_id,
            status=TaskStatus.FAILED,
            at=clock(),
            attempt=max(task.lifecycle.attempts, receive_count),
            error=ErrorInfo(code=DEAD_LETTERED, message=message),
        )
    )
    logger.warning(
        "dead-lettered job failed its task",
        extra={"task_id": task_id, "status": str(task.status), "part": None if part is None else part[0]},
    )
    return DeadLetter(task_id=task_id, failed=True, part=part is not None and ledger is not None)
