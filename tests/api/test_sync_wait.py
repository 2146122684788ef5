"""service.wait_for_end and sync_deadline: the bounded wait behind the synchronous routes, on a fake clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tts_common.domain import TaskStatus
from tts_common.exceptions import DependencyUnavailable, TaskNotFound
from tts_common.lifecycle import LifecycleState
from tts_common.messages import AudioInfo
from tts_common.task import Task
from tts_common.voice import AudioFormat, VoiceSpec

TASK_ID = "a" * 32
AUDIO = AudioInfo(
    audio_key=f"audio/{TASK_ID}.wav",
    file_size=100,
    format=AudioFormat.WAV,
    sampling_rate=16000,
    duration_s=1.0,
    device="cpu",
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _task(status: TaskStatus, audio: AudioInfo | None = None) -> Task:
    return Task(
        task_id=TASK_ID,
        tenant_id="acme",
        dedupe_key="k",
        voice=VoiceSpec(language="fin", model_id="m"),
        text_chars=5,
        submitted_at=datetime.now(UTC),
        text="hello",
        lifecycle=LifecycleState(status=status, audio=audio),
    )


class ScriptedRepository:
    """Answers `get` with the next task of a script (the last one forever), recording each call."""

    def __init__(self, *tasks: Task | Exception) -> None:
        self.script = list(tasks)
        self.calls: list[dict] = []

    def get(self, task_id: str, *, tenant_id: str | None, consistent: bool = False) -> Task:
        self.calls.append({"task_id": task_id, "tenant_id": tenant_id, "consistent": consistent})
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return item


def _wait(repository, clock: FakeClock, *, budget: float = 20.0) -> Task:
    from tts_api.service import wait_for_end

    return wait_for_end(
        task_id=TASK_ID,
        tenant_id="acme",
        deadline_s=clock() + budget,
        repository=repository,
        clock=clock,
        sleep=clock.sleep,
    )


def test_returns_once_done_reading_consistently_within_the_tenant():
    clock = FakeClock()
    repo = ScriptedRepository(
        _task(TaskStatus.QUEUED), _task(TaskStatus.PROCESSING), _task(TaskStatus.DONE, AUDIO)
    )
    task = _wait(repo, clock)
    assert task.status is TaskStatus.DONE
    assert len(repo.calls) == 3
    assert all(c == {"task_id": TASK_ID, "tenant_id": "acme", "consistent": True} for c in repo.calls)
    assert clock.sleeps == [0.2, pytest.approx(0.3)]


@pytest.mark.parametrize(
    "ended", [_task(TaskStatus.FAILED), _task(TaskStatus.COMPLETED, AUDIO)], ids=["failed", "completed"]
)
def test_failed_or_audio_written_ends_the_wait(ended):
    clock = FakeClock()
    assert _wait(ScriptedRepository(ended), clock) == ended
    assert clock.sleeps == []


def test_gives_up_at_the_deadline_with_the_task_as_it_stands():
    clock = FakeClock()
    running = replace(_task(TaskStatus.PROCESSING))
    task = _wait(ScriptedRepository(running), clock, budget=20.0)
    assert task.status is TaskStatus.PROCESSING
    assert clock.now == pytest.approx(120.0)  # never sleeps past the deadline
    assert max(clock.sleeps) == 1.0  # the poll interval grows to 1 s
    assert len(clock.sleeps) < 30


def test_unknown_id_and_a_hung_table():
    from botocore.exceptions import EndpointConnectionError

    clock = FakeClock()
    with pytest.raises(TaskNotFound):
        _wait(ScriptedRepository(TaskNotFound(TASK_ID)), clock)
    with pytest.raises(DependencyUnavailable):
        _wait(ScriptedRepository(EndpointConnectionError(endpoint_url="http://x")), clock)
    from tts_api.service import wait_for_end

    with pytest.raises(TaskNotFound):  # not an id: answered before any read
        wait_for_end(task_id="../x", tenant_id="acme", deadline_s=0, repository=ScriptedRepository())


def test_sync_deadline_is_the_setting_cut_by_the_lambda_time_left():
    from tts_api.service import LAMBDA_ANSWER_RESERVE_S, sync_deadline
    from tts_common.settings import ApiSettings

    settings = ApiSettings.model_construct(sync_wait_s=20.0)

    class Context:
        def __init__(self, ms: int) -> None:
            self.ms = ms

        def get_remaining_time_in_millis(self) -> int:
            return self.ms

    clock = FakeClock()
    assert sync_deadline(settings=settings, clock=clock) == 120.0
    assert sync_deadline(settings=settings, lambda_context=Context(60_000), clock=clock) == 120.0
    cut = sync_deadline(settings=settings, lambda_context=Context(10_000), clock=clock)
    assert cut == pytest.approx(100.0 + 10.0 - LAMBDA_ANSWER_RESERVE_S)
    assert sync_deadline(settings=settings, lambda_context=Context(1_000), clock=clock) == 100.0


def test_get_audio_reads_up_to_max_bytes_and_refuses_larger(resources):
    from tests.api.support import aws_client
    from tts_common.adapters.s3 import AudioStore

    s3 = aws_client("s3")
    s3.put_object(Bucket=resources.bucket_name, Key="audio/x.mp3", Body=b"0123456789")
    store = AudioStore(s3_client=s3, bucket=resources.bucket_name)
    assert store.get_audio("audio/x.mp3", 10) == b"0123456789"
    assert store.get_audio("audio/x.mp3", 9) is None
