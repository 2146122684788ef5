"""Building a task's work order: one place, used by the API on submit and by the sweeper on re-enqueue."""

from __future__ import annotations

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
