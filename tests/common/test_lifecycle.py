"""Order-free lifecycle: any order and any duplication of one task's events folds to the same record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

from hypothesis import given, settings
from hypothesis import strategies as st

from tts_common.domain import STATUS_RANK, TaskStatus
from tts_common.lifecycle import LifecycleState, apply_event
from tts_common.messages import AudioInfo, ErrorInfo, LifecycleEvent, Progress
from tts_common.voice import AudioFormat

# Any instant will do: the fold orders events by their own times and never reads a clock.
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TASK = "0" * 32


def _audio(device: str) -> AudioInfo:
    return AudioInfo(
        audio_key=f"audio/{TASK}.wav",
        file_size=3244,
        format=AudioFormat.WAV,
        sampling_rate=16000,
        duration_s=0.1,
        device=device,
    )


@st.composite
def event_histories(draw: st.DrawFn) -> list[LifecycleEvent]:
    """A plausible set of events for one task, from one or more attempts, some of them failing."""
    events = [LifecycleEvent(task_id=TASK, status=TaskStatus.QUEUED, at=T0)]
    attempts = draw(st.integers(min_value=1, max_value=3))
    for attempt in range(1, attempts + 1):
        start = T0 + timedelta(seconds=draw(st.integers(0, 600)))
        total = draw(st.integers(1, 5))
        events.append(
            LifecycleEvent(
                task_id=TASK,
                status=TaskStatus.PROCESSING,
                at=start,
                attempt=attempt,
                progress=Progress(pieces_done=0, pieces_total=total),
            )
        )
        done_pieces = draw(st.integers(0, total))
        if done_pieces:
            events.append(
                LifecycleEvent(
                    task_id=TASK,
                    status=TaskStatus.PROCESSING,
                    at=start + timedelta(seconds=1),
                    attempt=attempt,
                    progress=Progress(pieces_done=done_pieces, pieces_total=total),
                )
            )
        outcome = draw(st.sampled_from(["done", "failed", "crashed", "completed-only"]))
        end = start + timedelta(seconds=draw(st.integers(1, 60)))
        audio = _audio(draw(st.sampled_from(["cpu", "cuda"])))
        if outcome in ("done", "completed-only"):
            progress = Progress(pieces_done=total, pieces_total=total)
            events.append(
                LifecycleEvent(
                    task_id=TASK,
                    status=TaskStatus.COMPLETED,
                    at=end,
                    attempt=attempt,
                    audio=audio,
                    progress=progress,
                )
            )
            if outcome == "done":
                events.append(
                    LifecycleEvent(
                        task_id=TASK,
                        status=TaskStatus.DONE,
                        at=end,
                        attempt=attempt,
                        audio=audio,
                        progress=progress,
                    )
                )
        elif outcome == "failed":
            events.append(
                LifecycleEvent(
                    task_id=TASK,
                    status=TaskStatus.FAILED,
                    at=end,
                    attempt=attempt,
                    error=ErrorInfo(code=draw(st.sampled_from(["a", "b"])), message="m"),
                )
            )
    return events


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[LifecycleEvent], list[LifecycleEvent]]:
    """The events, and one at-least-once, any-order delivery of them."""
    events = draw(event_histories())
    duplicates = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    delivered = draw(st.permutations(events + duplicates))
    return events, delivered


@settings(max_examples=400, deadline=None)
@given(deliveries())
def test_any_order_and_duplication_gives_the_same_record(case: tuple[list, list]) -> None:
    # Given a task's events, When they arrive in any order with duplicates,
    events, delivered = case
    in_order = reduce(apply_event, events, LifecycleState())
    shuffled = reduce(apply_event, delivered, LifecycleState())
    # Then the record is the same as when they arrive once, in order.
    assert shuffled == in_order


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_status_never_moves_backwards(case: tuple[list, list]) -> None:
    _, delivered = case
    state = LifecycleState()
    for event in delivered:
        after = apply_event(state, event)
        assert STATUS_RANK[after.status] >= STATUS_RANK[state.status]
        state = after


def test_done_wins_over_a_late_failure_and_failure_over_progress() -> None:
    audio = _audio("cpu")
    done = LifecycleEvent(task_id=TASK, status=TaskStatus.DONE, at=T0, audio=audio)
    failed = LifecycleEvent(
        task_id=TASK, status=TaskStatus.FAILED, at=T0, error=ErrorInfo(code="x", message="y")
    )
    processing = LifecycleEvent(task_id=TASK, status=TaskStatus.PROCESSING, at=T0)
    assert reduce(apply_event, [done, failed], LifecycleState()).status is TaskStatus.DONE
    assert reduce(apply_event, [failed, processing], LifecycleState()).status is TaskStatus.FAILED


def test_a_done_event_alone_finishes_the_record() -> None:
    audio = _audio("cpu")
    state = apply_event(
        LifecycleState(), LifecycleEvent(task_id=TASK, status=TaskStatus.DONE, at=T0, audio=audio)
    )
    assert state.status is TaskStatus.DONE
    assert state.audio == audio
    assert state.completed_at == T0
