"""The task store on moto: race-free dedupe, claims released by failure, versioned lifecycle writes, stats."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.voices import make_voice
from tts_common.domain import TaskStatus
from tts_common.exceptions import InvalidPageToken, TaskNotFound
from tts_common.messages import AudioInfo, ErrorInfo, LifecycleEvent
from tts_common.task import Task
from tts_common.voice import AudioFormat, dedupe_key

TENANT = "acme"

VOICE = make_voice(format="mp3", sample_rate=24_000, speed=1.25)
KEY = dedupe_key("Hyvää huomenta", VOICE, tenant_id=TENANT)


def new_task(key: str = KEY, *, at: datetime | None = None) -> Task:
    return Task(
        task_id=uuid.uuid4().hex,
        dedupe_key=key,
        voice=VOICE,
        text_chars=14,
        submitted_at=at or datetime.now(UTC),
        text="Hyvää huomenta",
        tenant_id=TENANT,
    )


def test_concurrent_identical_submissions_create_one_task(repository) -> None:
    # Given 32 threads submitting the same text at once
    results: list[tuple[Task, bool]] = []
    barrier = threading.Barrier(32)

    def submit() -> None:
        task = new_task()
        barrier.wait()
        results.append(repository.create_or_get(task))

    threads = [threading.Thread(target=submit) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then exactly one created a task and all got its id
    assert len(results) == 32
    assert sum(created for _, created in results) == 1
    assert len({t.task_id for t, _ in results}) == 1
    stats = repository.stats(tenant_id=TENANT)
    assert stats.submitted == 1
    assert stats.dedupe_hits == 31
    assert stats.counts[TaskStatus.QUEUED] == 1


def test_a_failed_task_does_not_block_a_new_submission(repository) -> None:
    first, created = repository.create_or_get(new_task())
    assert created
    repository.apply_events(
        first.task_id,
        [
            LifecycleEvent(
                task_id=first.task_id,
                status=TaskStatus.FAILED,
                at=datetime.now(UTC),
                error=ErrorInfo(code="synthesis_failed", message="boom"),
            )
        ],
    )
    second, created = repository.create_or_get(new_task())
    assert created
    assert second.task_id != first.task_id
    # while a live task keeps its claim
    third, created = repository.create_or_get(new_task())
    assert not created
    assert third.task_id == second.task_id


def test_events_update_the_record_and_the_counters(repository) -> None:
    task, _ = repository.create_or_get(new_task())
    t0 = datetime.now(UTC)
    audio = AudioInfo(
        audio_key=f"audio/{task.task_id}.mp3",
        file_size=100,
        format=AudioFormat.MP3,
        sampling_rate=24000,
        duration_s=1.5,
        device="cpu",
    )
    repository.apply_events(
        task.task_id, [LifecycleEvent(task_id=task.task_id, status=TaskStatus.PROCESSING, at=t0, attempt=1)]
    )
    done = repository.apply_events(
        task.task_id,
        [
            LifecycleEvent(
                task_id=task.task_id,
                status=TaskStatus.DONE,
                at=t0 + timedelta(seconds=2),
                attempt=1,
                audio=audio,
            )
        ],
    )
    assert done is not None
    assert done.status is TaskStatus.DONE
    stored = repository.get(task.task_id, tenant_id=None)
    assert stored.lifecycle.audio == audio
    assert stored.lifecycle.started_at == t0
    listed = repository.list_tasks(status=TaskStatus.DONE, limit=10, next_token=None, tenant_id=TENANT).items
    assert [t.lifecycle.audio for t in listed] == [audio]  # the format is in the index projection too
    stats = repository.stats(tenant_id=TENANT)
    assert stats.counts[TaskStatus.DONE] == 1
    assert stats.counts[TaskStatus.QUEUED] == 0
    assert stats.average_processing_s == pytest.approx(2.0)


def test_a_tasks_voice_is_kept_with_it_and_shown_in_lists(repository) -> None:
    # Given: a task submitted in a voice other than the defaults
    voice = make_voice(language="swh", model_id="facebook/mms-tts-swh", format="ogg_opus", sample_rate=48_000)
    task, _ = repository.create_or_get(
        replace(new_task(dedupe_key("Habari", voice, tenant_id=TENANT)), voice=voice)
    )

    # When / Then: the record and both list indexes give the same spec back
    assert repository.get(task.task_id, tenant_id=None).voice == voice
    for status in (None, TaskStatus.QUEUED):
        [listed] = repository.list_tasks(status=status, limit=10, next_token=None, tenant_id=TENANT).items
        assert listed.voice == voice


def test_an_event_for_an_unknown_task_is_dropped(repository) -> None:
    assert (
        repository.apply_events(
            "f" * 32, [LifecycleEvent(task_id="f" * 32, status=TaskStatus.PROCESSING, at=datetime.now(UTC))]
        )
        is None
    )
    with pytest.raises(TaskNotFound):
        repository.get("f" * 32, tenant_id=None)


def test_pages_are_newest_first_without_repeats(repository, now: datetime) -> None:
    # Submitted minutes apart, an hour before the `now` the store judges expiry by
    base = now - timedelta(hours=1)
    made = [
        repository.create_or_get(new_task(f"{i:064x}", at=base + timedelta(minutes=i)))[0] for i in range(7)
    ]
    seen, token = [], None
    while True:
        page = repository.list_tasks(status=None, limit=3, next_token=token, tenant_id=TENANT)
        seen += [t.task_id for t in page.items]
        token = page.next_token
        if token is None:
            break
    assert seen == [t.task_id for t in reversed(made)]


@pytest.mark.parametrize("token", ["garbage", "e30", "eyJrIjp7fSwicyI6bnVsbH0"])
def test_foreign_page_tokens_are_refused(repository, token: str) -> None:
    with pytest.raises(InvalidPageToken):
        repository.list_tasks(status=None, limit=3, next_token=token, tenant_id=TENANT)


def test_a_token_is_bound_to_its_status_filter(repository) -> None:
    for i in range(3):
        repository.create_or_get(new_task(f"{i:064x}"))
    page = repository.list_tasks(status=TaskStatus.QUEUED, limit=1, next_token=None, tenant_id=TENANT)
    assert page.next_token
    with pytest.raises(InvalidPageToken):
        repository.list_tasks(status=None, limit=1, next_token=page.next_token, tenant_id=TENANT)


def _repo_at(resources, when: datetime):
    from tts_common.storage.models import records_for
    from tts_common.storage.repository import TaskRepository

    return TaskRepository(
        records_for(resources.table_name, "us-east-1", None), ttl_days=30, clock=lambda: when
    )


def test_an_expired_task_is_gone_and_its_text_gets_a_new_task(resources, now: datetime) -> None:
    # Given a task submitted 31 days ago (DynamoDB's TTL deletes lazily: the item is still there)
    then = now - timedelta(days=31)
    old, _ = _repo_at(resources, then).create_or_get(new_task(at=then))
    repo_now = _repo_at(resources, now)
    # Then reading it says not found, and the same text makes a new task instead of a dedupe hit
    with pytest.raises(TaskNotFound):
        repo_now.get(old.task_id, tenant_id=TENANT)
    fresh, created = repo_now.create_or_get(new_task(at=now))
    assert created
    assert fresh.task_id != old.task_id
    assert [
        t.task_id for t in repo_now.list_tasks(status=None, limit=10, next_token=None, tenant_id=TENANT).items
    ] == [fresh.task_id]


def test_a_dedupe_hit_never_returns_a_task_about_to_expire(resources, now: datetime) -> None:
    nearly = now - timedelta(days=29, hours=12)
    old, _ = _repo_at(resources, nearly).create_or_get(new_task(at=nearly))
    fresh, created = _repo_at(resources, now).create_or_get(new_task(at=now))
    assert created
    assert fresh.task_id != old.task_id


def _token(payload: dict) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "key",
    [
        {"pk": {"S": "x"}},
        {"pk": {"S": "task#" + "a" * 32}, "list_pk": {"S": "other"}, "submitted_sk": {"S": "x"}},
        {
            "pk": {"S": "task#" + "a" * 32},
            "list_pk": {"S": "task"},
            "submitted_sk": {"S": "2026-11-27T10:00:00.000000Z#" + "b" * 32},
        },
        {"pk": {"S": "task#" + "a" * 32}, "list_pk": {"S": "task"}, "submitted_sk": {"N": "1"}},
    ],
)
def test_well_formed_but_forged_tokens_are_refused(repository, key: dict) -> None:
    with pytest.raises(InvalidPageToken):
        repository.list_tasks(
            status=None, limit=3, next_token=_token({"k": key, "s": None}), tenant_id=TENANT
        )


def test_processing_time_stat_does_not_depend_on_event_order(resources, now: datetime) -> None:
    t0 = now
    audio = AudioInfo(
        audio_key="a", file_size=1, format=AudioFormat.WAV, sampling_rate=16000, duration_s=1.0, device="cpu"
    )
    averages = []
    for order in ([0, 1, 2], [1, 2, 0], [2, 0, 1]):
        repo = _repo_at(resources, now)
        task, _ = repo.create_or_get(new_task(f"{len(averages):064x}", at=now))
        events = [
            LifecycleEvent(task_id=task.task_id, status=TaskStatus.PROCESSING, at=t0, attempt=1),
            LifecycleEvent(
                task_id=task.task_id, status=TaskStatus.PROCESSING, at=t0 + timedelta(seconds=100), attempt=2
            ),
            LifecycleEvent(
                task_id=task.task_id, status=TaskStatus.DONE, at=t0 + timedelta(seconds=110), audio=audio
            ),
        ]
        for i in order:
            repo.apply_events(task.task_id, [events[i]])
        averages.append(repo.stats(tenant_id=TENANT).average_processing_s)
    # every task took 110 s from its first start, whatever order its events came in
    assert averages == [pytest.approx(110.0)] * 3


def test_a_transaction_conflict_counts_as_a_lost_race() -> None:
    from pynamodb.exceptions import CancellationReason, TransactWriteError

    from tts_common.storage.repository import _cancel_reasons, _lost_a_race

    class Conflict(TransactWriteError):
        cause_response_code = "TransactionCanceledException"
        cancellation_reasons = [None, CancellationReason(code="TransactionConflict")]

    exc = Conflict("cancelled")
    assert _lost_a_race(exc)
    assert _cancel_reasons(exc) == {"TransactionConflict"}
