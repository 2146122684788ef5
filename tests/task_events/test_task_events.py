"""The lifecycle consumer (Lambda handler, partial failures) and the sweeper, on moto."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.support import aws_client
from tests.sqs_support import drain, sqs_event
from tests.voices import make_voice
from tts_common.domain import TaskStatus, audio_key_for
from tts_common.messages import AudioInfo, LifecycleEvent, SynthesisJob
from tts_common.task import Task
from tts_common.voice import AudioFormat, VoiceSpec, dedupe_key

TENANT = "acme"


def make_task(
    repository,
    *,
    at: datetime,
    text: str = "Hei maailma",
    voice: VoiceSpec | None = None,
    tenant: str = TENANT,
) -> Task:
    voice = voice or make_voice()
    key = dedupe_key(text, voice, tenant_id=tenant)
    task, _ = repository.create_or_get(
        Task(
            task_id=uuid.uuid4().hex,
            dedupe_key=key,
            voice=voice,
            text_chars=len(text),
            submitted_at=at,
            text=text,
            tenant_id=tenant,
        )
    )
    return task


def audio_of(task: Task) -> AudioInfo:
    """The facts of an empty WAV written for the task, as a done event carries them."""
    return AudioInfo(
        audio_key=f"audio/{task.task_id}.wav",
        file_size=44,
        format=AudioFormat.WAV,
        sampling_rate=16000,
        duration_s=0.0,
        device="cpu",
    )


@pytest.fixture
def handler_module(resources):
    import tts_task_events.handler as module

    module._repository.cache_clear()
    from tts_common.settings import cached_settings

    cached_settings.cache_clear()
    yield module
    module._repository.cache_clear()
    cached_settings.cache_clear()


def test_handler_applies_events_and_reports_only_bad_records(
    handler_module, repository, lambda_context
) -> None:
    # Given a task and a batch with a good event, a malformed body and an event for an unknown task
    task = make_task(repository, at=datetime.now(UTC))
    audio = audio_of(task)
    good = LifecycleEvent(task_id=task.task_id, status=TaskStatus.DONE, at=datetime.now(UTC), audio=audio)
    unknown = LifecycleEvent(task_id="e" * 32, status=TaskStatus.PROCESSING, at=datetime.now(UTC))
    event = sqs_event([good.model_dump_json(), "{not json", unknown.model_dump_json()])
    # When the handler runs
    result = handler_module.handler(event, lambda_context)
    # Then only the malformed record is reported (it goes back, and to the DLQ after maxReceiveCount)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert repository.get(task.task_id, tenant_id=None).status is TaskStatus.DONE


def test_handler_unwraps_an_sns_envelope(handler_module, repository, lambda_context) -> None:
    task = make_task(repository, at=datetime.now(UTC))
    inner = LifecycleEvent(
        task_id=task.task_id, status=TaskStatus.PROCESSING, at=datetime.now(UTC), attempt=1
    )
    envelope = json.dumps({"Type": "Notification", "Message": inner.model_dump_json()})
    assert handler_module.handler(sqs_event([envelope]), lambda_context) == {"batchItemFailures": []}
    assert repository.get(task.task_id, tenant_id=None).status is TaskStatus.PROCESSING


def test_sweeper_requeues_a_task_whose_submission_died(
    handler_module, resources, repository, lambda_context, monkeypatch
) -> None:
    # Given a task written 10 minutes ago whose job never reached the queue (no `queued` event applied)
    monkeypatch.setenv("REQUEUE_AFTER_S", "120")
    stuck = make_task(repository, at=datetime.now(UTC) - timedelta(minutes=10))
    enqueued = make_task(repository, at=datetime.now(UTC) - timedelta(minutes=10), text="Toinen")
    repository.apply_events(
        enqueued.task_id,
        [LifecycleEvent(task_id=enqueued.task_id, status=TaskStatus.QUEUED, at=datetime.now(UTC))],
    )
    fresh = make_task(repository, at=datetime.now(UTC), text="Tuore")
    # When the sweeper runs
    report = handler_module.sweep_handler({}, lambda_context)
    # Then only the stuck task's job is sent again, and a queued event is published for it
    assert report == {"requeued": [stuck.task_id], "timed_out": [], "finished": []}
    jobs = [SynthesisJob.model_validate_json(b) for b in drain(resources.jobs_queue_url)]
    assert [j.task_id for j in jobs] == [stuck.task_id]
    assert jobs[0].text == "Hei maailma"
    events = [LifecycleEvent.model_validate_json(b) for b in drain(resources.events_queue_url)]
    assert [(e.task_id, e.status) for e in events] == [(stuck.task_id, TaskStatus.QUEUED)]
    assert fresh.task_id not in report["requeued"]


def test_the_sweeper_requeues_a_task_with_its_own_stored_spec_whatever_its_environment_says(
    handler_module, resources, repository, lambda_context, monkeypatch
) -> None:
    # Given: a task submitted in Swahili as mp3 at 24 kHz and speed 1.5, whose job never reached the queue
    monkeypatch.setenv("REQUEUE_AFTER_S", "120")
    voice = make_voice(
        language="swh",
        model_id="facebook/mms-tts-swh",
        speed=1.5,
        noise_scale=0.5,
        format="mp3",
        sample_rate=24_000,
        max_piece_chars=200,
    )
    stuck = make_task(repository, at=datetime.now(UTC) - timedelta(minutes=10), text="Habari", voice=voice)
    # and a sweeper whose environment says another voice altogether
    for name, value in {
        "TTS_LANGUAGES": "fin,eng",
        "TTS_MODEL_TEMPLATE": "elsewhere/tts-{language}",
        "TTS_MODEL_OVERRIDES": "fin=/opt/models/fin",
        "TTS_SPEED": "0.5",
        "TTS_NOISE_SCALE": "0.1",
        "TTS_FORMAT": "flac",
        "TTS_MAX_PIECE_CHARS": "50",
    }.items():
        monkeypatch.setenv(name, value)

    # When
    assert handler_module.sweep_handler({}, lambda_context)["requeued"] == [stuck.task_id]

    # Then: the job carries the task's voice, unchanged, and the audio key of its format
    [job] = [SynthesisJob.model_validate_json(b) for b in drain(resources.jobs_queue_url)]
    assert job.voice == voice
    assert job.audio_key == audio_key_for(stuck.task_id, AudioFormat.MP3)
    assert job.dedupe_key == stuck.dedupe_key == dedupe_key("Habari", voice, tenant_id=TENANT)


def test_sweeper_fails_tasks_gone_quiet_and_finishes_completed_ones(
    handler_module, resources, repository, lambda_context, monkeypatch
) -> None:
    # Given tasks whose last lifecycle message is 3 hours old (stale after 1 hour)
    monkeypatch.setenv("STALE_AFTER_S", "3600")
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    processing = make_task(repository, at=long_ago, text="Kesken")
    completed = make_task(repository, at=long_ago, text="Valmis melkein")
    busy = make_task(repository, at=long_ago, text="Yhä työn alla")
    audio = AudioInfo(
        audio_key=f"audio/{completed.task_id}.wav",
        file_size=44,
        format=AudioFormat.WAV,
        sampling_rate=16000,
        duration_s=0.0,
        device="cpu",
    )
    repository.apply_events(
        processing.task_id,
        [LifecycleEvent(task_id=processing.task_id, status=TaskStatus.PROCESSING, at=long_ago, attempt=3)],
    )
    repository.apply_events(
        completed.task_id,
        [LifecycleEvent(task_id=completed.task_id, status=TaskStatus.COMPLETED, at=long_ago, audio=audio)],
    )
    # ...and one submitted as long ago that reported progress a minute ago
    repository.apply_events(
        busy.task_id,
        [
            LifecycleEvent(
                task_id=busy.task_id,
                status=TaskStatus.PROCESSING,
                at=datetime.now(UTC) - timedelta(minutes=1),
            )
        ],
    )
    # When the sweeper runs
    report = handler_module.sweep_handler({}, lambda_context)
    # Then the quiet processing task fails, the completed one is finished, the busy one is left alone
    assert report == {"requeued": [], "timed_out": [processing.task_id], "finished": [completed.task_id]}
    # The decisions travel as lifecycle messages; applying them settles the records
    bodies = drain(resources.events_queue_url)
    assert handler_module.handler(sqs_event(bodies), lambda_context) == {"batchItemFailures": []}
    failed = repository.get(processing.task_id, tenant_id=None)
    assert failed.status is TaskStatus.FAILED
    assert failed.lifecycle.error is not None
    assert failed.lifecycle.error.code == "timed_out"
    assert repository.get(completed.task_id, tenant_id=None).status is TaskStatus.DONE
    assert repository.get(busy.task_id, tenant_id=None).status is TaskStatus.PROCESSING


def test_a_backlog_of_announced_tasks_does_not_hide_a_lost_job(
    handler_module, resources, repository, lambda_context, monkeypatch
) -> None:
    # Given more announced (enqueued) old tasks than one sweep looks at, and one unannounced task after them
    monkeypatch.setenv("SWEEP_LIMIT", "3")
    old = datetime.now(UTC) - timedelta(minutes=30)
    for i in range(6):
        task = make_task(repository, at=old + timedelta(seconds=i), text=f"Jonossa {i}")
        repository.apply_events(
            task.task_id,
            [LifecycleEvent(task_id=task.task_id, status=TaskStatus.QUEUED, at=old + timedelta(seconds=i))],
        )
    lost = make_task(repository, at=old + timedelta(minutes=1), text="Kadonnut")
    # When the sweeper runs, Then the lost one is found and requeued
    assert handler_module.sweep_handler({}, lambda_context)["requeued"] == [lost.task_id]


def test_a_task_queued_past_the_queue_retention_fails(
    handler_module, resources, repository, lambda_context, monkeypatch
) -> None:
    monkeypatch.setenv("QUEUED_STALE_AFTER_S", "86400")
    ancient = datetime.now(UTC) - timedelta(days=2)
    task = make_task(repository, at=ancient)
    repository.apply_events(
        task.task_id, [LifecycleEvent(task_id=task.task_id, status=TaskStatus.QUEUED, at=ancient)]
    )
    assert handler_module.sweep_handler({}, lambda_context)["timed_out"] == [task.task_id]


def test_a_lagging_consumer_never_makes_a_submitted_task_look_lost(resources, repository) -> None:
    # Given: a text submitted through the API's own submit path, whose `queued` event is never applied
    # (the lifecycle consumer lags far behind)
    from tts_api import service
    from tts_common.settings import ApiSettings, TaskEventsSettings, load_settings
    from tts_common.wiring import audio_store_from, job_queue_from, publisher_from
    from tts_task_events.sweeper import policy_from, sweep

    api = load_settings(ApiSettings)
    submitted_at = datetime.now(UTC) - timedelta(minutes=30)
    [submission] = service.submit_texts(
        texts=["Jono on pitkä."],
        custom_filename=None,
        voice=service.VoiceRequest(),
        batch=False,
        settings=api,
        repository=repository,
        audio_store=audio_store_from(api),
        job_queue=job_queue_from(api),
        publisher=publisher_from(api),
        clock=lambda: submitted_at,
        tenant_id=TENANT,
    )
    assert submission.created
    assert repository.get(submission.task.task_id, tenant_id=None).lifecycle.enqueued_at == submitted_at

    # When: the sweeper runs long after REQUEUE_AFTER_S
    events = load_settings(TaskEventsSettings)
    report = sweep(
        repository=repository,
        queue=job_queue_from(events),
        publisher=publisher_from(events),
        now=datetime.now(UTC),
        policy=policy_from(events),
    )

    # Then: the task's one job stays the only one
    assert report.requeued == []
    assert [SynthesisJob.model_validate_json(b).task_id for b in drain(resources.jobs_queue_url)] == [
        submission.task.task_id
    ]


def test_a_requeued_task_is_marked_so_the_next_sweep_leaves_it(
    handler_module, resources, repository, lambda_context, monkeypatch
) -> None:
    # Given a task whose job never reached the queue, found by one sweep
    monkeypatch.setenv("REQUEUE_AFTER_S", "120")
    stuck = make_task(repository, at=datetime.now(UTC) - timedelta(minutes=10))
    assert handler_module.sweep_handler({}, lambda_context)["requeued"] == [stuck.task_id]

    # When the next sweep runs before any lifecycle message was applied
    second = handler_module.sweep_handler({}, lambda_context)

    # Then it sends nothing again
    assert second["requeued"] == []
    assert len(drain(resources.jobs_queue_url)) == 1


def test_the_sweeper_finds_stalled_tasks_of_every_tenant(
    handler_module, resources, repository, lambda_context, monkeypatch
) -> None:
    """The sweeper reads the sparse, sharded index of unfinished tasks: no tenant's stalled task is missed,
    and a finished task leaves that index."""
    from tts_common.storage import schema

    # Given: the same text gone quiet while processing, for three tenants, and one tenant's task done
    monkeypatch.setenv("STALE_AFTER_S", "3600")
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    quiet = [
        make_task(repository, at=long_ago, text="Hiljaista", tenant=t) for t in ("acme", "globex", "initech")
    ]
    for task in quiet:
        repository.apply_events(
            task.task_id,
            [LifecycleEvent(task_id=task.task_id, status=TaskStatus.PROCESSING, at=long_ago, attempt=1)],
        )
    done = make_task(repository, at=long_ago, text="Valmis", tenant="globex")
    repository.apply_events(
        done.task_id,
        [LifecycleEvent(task_id=done.task_id, status=TaskStatus.DONE, at=long_ago, audio=audio_of(done))],
    )

    # When
    report = handler_module.sweep_handler({}, lambda_context)

    # Then: all three are timed out; once the decisions are applied no task is left in the open index
    assert sorted(report["timed_out"]) == sorted(t.task_id for t in quiet)
    assert handler_module.handler(sqs_event(drain(resources.events_queue_url)), lambda_context) == {
        "batchItemFailures": []
    }
    open_items = aws_client("dynamodb").scan(TableName=resources.table_name, IndexName=schema.OPEN_INDEX)[
        "Items"
    ]
    assert open_items == []
