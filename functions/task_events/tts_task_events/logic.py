"""Apply one lifecycle message to its task record; transport-free (the Lambda handler and poller call it)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from tts_common.exceptions import MalformedJob
from tts_common.messages import LifecycleEvent
from tts_common.storage.repository import TaskRepository
from tts_common.task import Task


@dataclass(frozen=True, slots=True)
class Applied:
    event: LifecycleEvent
    task: Task | None  # None: no such task (expired or never created); the event is dropped


def parse_event(body: str) -> LifecycleEvent:
    """A raw lifecycle message, or one wrapped in an SNS envelope (raw delivery off)."""
    try:
        payload = json.loads(body)
        if isinstance(payload, dict) and payload.get("Type") == "Notification" and "Message" in payload:
            payload = json.loads(payload["Message"])
        return LifecycleEvent.model_validate(payload)
    except (ValueError, ValidationError) as exc:
        raise MalformedJob(f"not a lifecycle message: {type(exc).__name__}") from exc


def apply_message(*, body: str, repository: TaskRepository) -> Applied:
    event = parse_event(body)
    return Applied(event=event, task=repository.apply_events(event.task_id, [event]))
