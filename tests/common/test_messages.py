"""Lifecycle messages are bounded in every field: a forged one cannot write absurd values into a record."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tts_common import messages
from tts_common.messages import LifecycleEvent

AT = "2030-01-01T00:00:00Z"


def event(**fields: Any) -> dict[str, Any]:
    return {"task_id": "a" * 32, "status": "processing", "at": AT, **fields}


DONE_AUDIO = {
    "audio_key": "audio/x.wav",
    "file_size": 44,
    "sampling_rate": 16000,
    "duration_s": 1.0,
    "device": "cpu",
}


@pytest.mark.parametrize(
    "fields",
    [
        {"attempt": 10**40},
        {"attempt": -1},
        {"progress": {"pieces_done": 10**40, "pieces_total": 10**40}},
        {"progress": {"pieces_done": 3, "pieces_total": 2}},
        {"task_id": "x" * 65},
        {"task_id": "../../etc"},
        {"status": "done", "audio": {**DONE_AUDIO, "file_size": -5}},
        {"status": "done", "audio": {**DONE_AUDIO, "sampling_rate": 10**12}},
        {"status": "done", "audio": {**DONE_AUDIO, "duration_s": float("nan")}},
        {"status": "done", "audio": {**DONE_AUDIO, "audio_key": "k" * 5000}},
        {"status": "failed", "error": {"code": "c" * 500, "message": "m"}},
        {"status": "failed", "error": {"code": "c", "message": "m" * 100_000}},
    ],
)
def test_out_of_bound_fields_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LifecycleEvent.model_validate_json(json.dumps(event(**fields)))


@given(
    attempt=st.integers(0, messages.MAX_ATTEMPTS),
    total=st.integers(1, messages.MAX_PIECES),
    data=st.data(),
)
def test_every_value_the_service_can_produce_is_accepted(
    attempt: int, total: int, data: st.DataObject
) -> None:
    done = data.draw(st.integers(0, total))
    parsed = LifecycleEvent.model_validate_json(
        json.dumps(event(attempt=attempt, progress={"pieces_done": done, "pieces_total": total}))
    )
    assert (parsed.attempt, parsed.progress.pieces_done if parsed.progress else None) == (attempt, done)
