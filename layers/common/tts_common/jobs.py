"""A task's work order: built in one place (the API on submit, the sweeper on re-enqueue), and read back
leniently where a job may be malformed (the worker, the jobs DLQ consumer)."""

from __future__ import annotations

import json

from tts_common.domain import audio_key_for
from tts_common.messages import SynthesisJob
from tts_common.task import Task


def job_for(task: Task) -> SynthesisJob:
    """The task's job, from the task alone: its stored voice, never the sender's settings."""
    return SynthesisJob(
        task_id=task.task_id,
        dedupe_key=task.dedupe_key,
        voice=task.voice,
        text=task.text,
        text_key=task.text_key,
        audio_key=audio_key_for(task.task_id, task.voice.format),
        submitted_at=task.submitted_at,
    )


def recover_task_id(body: str) -> str | None:
    """The task id of a job that failed validation, when its JSON still names one plausibly."""
    try:
        raw = json.loads(body)
    except (ValueError, TypeError):
        return None
    task_id = raw.get("task_id") if isinstance(raw, dict) else None
    if isinstance(task_id, str) and 0 < len(task_id) <= 64 and task_id.isprintable():
        return task_id
    return None
