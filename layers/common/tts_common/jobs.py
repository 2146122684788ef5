"""A task's work order: built in one place (the API on submit, the sweeper on re-enqueue), and read back
leniently where a job may be malformed (the worker, the jobs DLQ consumer)."""

from __future__ import annotations

import json

from tts_common.domain import SynthesisParams, audio_key_for
from tts_common.messages import SynthesisJob
from tts_common.task import Task


def job_for(task: Task, params: SynthesisParams) -> SynthesisJob:
    return SynthesisJob(
        task_id=task.task_id,
        dedupe_key=task.dedupe_key,
        language=params.language,
        model_id=params.model_id,
        speaking_rate=params.speaking_rate,
        noise_scale=params.noise_scale,
        noise_scale_duration=params.noise_scale_duration,
        max_piece_chars=params.max_piece_chars,
        text=task.text,
        text_key=task.text_key,
        audio_key=audio_key_for(task.task_id),
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
