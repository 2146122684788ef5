"""Reading a job off the queue without trusting it."""

from __future__ import annotations

import math

from pydantic import ValidationError

from tts_common.domain import audio_key_for
from tts_common.exceptions import MalformedJob
from tts_common.jobs import recover_task_id
from tts_common.messages import SynthesisJob

__all__ = ["parse_job", "recover_task_id"]

# Bounds a job's voice parameters must respect (the API's settings use the same ones).
_SPEAKING_RATE_MAX = 4.0
_NOISE_MAX = 2.0


def parse_job(body: str) -> SynthesisJob:
    """A validated job, or MalformedJob: bad JSON, a schema error, an audio key not derived from the task,
    or voice parameters out of range."""
    try:
        job = SynthesisJob.model_validate_json(body)
    except ValidationError as exc:
        raise MalformedJob(f"job body is not a valid SynthesisJob: {exc.error_count()} error(s)") from exc
    if job.audio_key != audio_key_for(job.task_id):
        raise MalformedJob("audio_key is not the key derived from task_id")
    if not (0 < job.speaking_rate <= _SPEAKING_RATE_MAX):
        raise MalformedJob(f"speaking_rate must be in (0, {_SPEAKING_RATE_MAX}]")
    for name in ("noise_scale", "noise_scale_duration"):
        value = getattr(job, name)
        if not (math.isfinite(value) and 0 <= value <= _NOISE_MAX):
            raise MalformedJob(f"{name} must be in [0, {_NOISE_MAX}]")
    return job
