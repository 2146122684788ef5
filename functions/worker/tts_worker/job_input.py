"""Reading a job off the queue without trusting it."""

from __future__ import annotations

import json

from pydantic import ValidationError

from tts_common.domain import audio_key_for
from tts_common.exceptions import MalformedJob
from tts_common.jobs import recover_task_id
from tts_common.messages import JoinJob, PartJob, SynthesisJob

__all__ = ["parse_any_job", "parse_job", "recover_task_id"]


def parse_job(body: str) -> SynthesisJob:
    """A validated job, or MalformedJob: bad JSON, a schema error (the voice's bounds are VoiceSpec's own),
    or an audio key not derived from the task and its format."""
    try:
        job = SynthesisJob.model_validate_json(body)
    except ValidationError as exc:
        raise MalformedJob(f"job body is not a valid SynthesisJob: {exc.error_count()} error(s)") from exc
    if job.audio_key != audio_key_for(job.task_id, job.voice.format):
        raise MalformedJob("audio_key is not the key derived from task_id and the voice's format")
    return job


def parse_any_job(body: str) -> SynthesisJob | PartJob | JoinJob:
    """A whole job, a part of a long text or its join (by `kind`; a body without one is a whole job)."""
    try:
        raw = json.loads(body)
    except (ValueError, TypeError):
        raw = None
    kind = raw.get("kind") if isinstance(raw, dict) else None
    if kind not in ("part", "join"):
        return parse_job(body)
    model: type[PartJob] | type[JoinJob] = PartJob if kind == "part" else JoinJob
    try:
        job = model.model_validate_json(body)
    except ValidationError as exc:
        raise MalformedJob(f"job body is not a valid {model.__name__}: {exc.error_count()} error(s)") from exc
    if job.audio_key != audio_key_for(job.task_id, job.voice.format):
        raise MalformedJob("audio_key is not the key derived from task_id and the voice's format")
    return job
