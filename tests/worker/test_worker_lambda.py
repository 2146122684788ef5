"""The Lambda entry point on moto with the real tiny-random model: partial failures, lifecycle events."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
import soundfile as sf

from tests.sqs_support import sqs_event
from tests.worker.support import CountingSynthesizer, WorkerAws, job_body, raw_json, statuses
from tts_common.domain import TaskStatus, audio_key_for, marks_key_for, text_key_for
from tts_common.settings import WorkerSettings, cached_settings
from tts_common.voice import AudioFormat
from tts_worker import lambda_handler
from tts_worker.runtime import build_core
from tts_worker.synthesizer.base import Synthesizer

pytestmark = pytest.mark.model


@pytest.fixture
def fresh_handler(worker_aws: WorkerAws, restore_logging: None) -> Iterator[None]:
    """A cold start: settings and the core are built from this test's environment."""
    cached_settings.cache_clear()
    lambda_handler.worker_core.cache_clear()
    yield
    cached_settings.cache_clear()
    lambda_handler.worker_core.cache_clear()


@pytest.fixture
def counting_core(
    worker_aws: WorkerAws, tiny_synthesizer: Synthesizer, monkeypatch: pytest.MonkeyPatch
) -> CountingSynthesizer:
    """The handler's core, wired from settings as in Lambda, around a synthesizer that counts its work."""
    counting = CountingSynthesizer(tiny_synthesizer)
    core = build_core(WorkerSettings(), synthesizer=counting)  # type: ignore[call-arg]
    monkeypatch.setattr(lambda_handler, "worker_core", lambda: core)
    return counting


def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return dict(lambda_handler.handler(event, context))


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def test_a_mixed_batch_reports_only_the_retryable_record_and_publishes_each_outcome(
    worker_aws: WorkerAws, fresh_handler: None, lambda_context: Any
) -> None:
    # Given: a good job, a malformed one, one with nothing to speak, and one whose text is missing (transient)
    event = sqs_event(
        worker_aws.known(
            [
                job_body("Hyvää huomenta, tämä on testi.", task_id="good"),
                raw_json(task_id="broken", text="no other fields"),
                job_body("", task_id="empty"),
                job_body(None, task_id="lost", text_key=text_key_for("lost")),
            ]
        )
    )

    # When
    response = invoke(event, lambda_context)

    # Then: only the transient one goes back to the queue
    assert failed_ids(response) == ["m-3"]
    events = worker_aws.read_events()
    assert statuses(events, "good") == ["processing", "completed", "done"]
    assert statuses(events, "broken") == ["failed"]
    assert statuses(events, "empty") == ["failed"]
    assert statuses(events, "lost") == []
    codes = {e.task_id: e.error.code for e in events if e.error is not None}
    assert codes == {"broken": "malformed_job", "empty": "empty_tokenization"}

    # And the audio is a 16 kHz 16-bit WAV whose facts match the done event
    assert worker_aws.audio_keys() == [audio_key_for("good", AudioFormat.WAV)]
    body = worker_aws.audio_bytes(audio_key_for("good", AudioFormat.WAV))
    info = sf.info(io.BytesIO(body))
    assert (info.samplerate, info.subtype, info.channels) == (16_000, "PCM_16", 1)
    [done] = [e for e in events if e.task_id == "good" and e.status is TaskStatus.DONE]
    assert done.audio is not None
    assert (done.audio.file_size, done.audio.sampling_rate, done.audio.device) == (len(body), 16_000, "cpu")
    assert done.audio.duration_s == pytest.approx(info.duration)
    # And its speech marks and subtitles lie beside it, listed in the event
    assert sorted(worker_aws.marks_keys()) == sorted(marks_key_for("good", f) for f in done.audio.marks)
    assert len(done.audio.marks) == 4


def test_a_redelivered_finished_job_does_no_synthesis(
    worker_aws: WorkerAws, counting_core: CountingSynthesizer, lambda_context: Any, restore_logging: None
) -> None:
    # Given: the job ran once
    [body] = worker_aws.known([job_body("Kissa istui ikkunalaudalla.", task_id="again")])
    assert failed_ids(invoke(sqs_event([body]), lambda_context)) == []
    first_audio = worker_aws.audio_bytes(audio_key_for("again", AudioFormat.WAV))
    first_events = worker_aws.read_events()
    calls_after_first = counting_core.calls

    # When: SQS delivers it again
    response = invoke(sqs_event([body], receive_count=2), lambda_context)

    # Then
    assert failed_ids(response) == []
    assert counting_core.calls == calls_after_first
    assert worker_aws.audio_bytes(audio_key_for("again", AudioFormat.WAV)) == first_audio
    republished = worker_aws.read_events()
    assert statuses(republished, "again") == ["completed", "done"]
    assert {e.audio for e in republished} == {e.audio for e in first_events if e.audio is not None}
    assert all(e.attempt == 2 for e in republished)


def test_the_last_attempt_of_a_transient_failure_publishes_failed_and_is_left_for_the_dlq(
    worker_aws: WorkerAws, counting_core: CountingSynthesizer, lambda_context: Any, restore_logging: None
) -> None:
    # Given: the job's text object is missing, and this is the queue's last delivery (maxReceiveCount=3)
    body, good = worker_aws.known(
        [
            job_body(None, task_id="lost", text_key=text_key_for("lost")),
            job_body("Hei maailma.", task_id="fine"),
        ]
    )

    # When
    response = invoke(sqs_event([body, good], receive_count=3), lambda_context)

    # Then: reported failed (with the error type), and still a batch failure: the redrive moves it to the DLQ
    assert failed_ids(response) == ["m-0"]
    events = worker_aws.read_events()
    [failed] = [e for e in events if e.task_id == "lost"]
    assert failed.status is TaskStatus.FAILED
    assert failed.attempt == 3
    assert failed.error is not None
    assert failed.error.code == "dependency_error"
    assert failed.error.message.startswith("gave up after 3 attempts: ")
    assert "NoSuchKey" not in failed.error.message
    assert statuses(events, "fine") == ["processing", "completed", "done"]


def test_text_stored_in_the_bucket_is_spoken(
    worker_aws: WorkerAws, counting_core: CountingSynthesizer, lambda_context: Any, restore_logging: None
) -> None:
    key = worker_aws.put_text("big", "Pitkä teksti. " * 20)

    response = invoke(
        sqs_event(worker_aws.known([job_body(None, task_id="big", text_key=key)])), lambda_context
    )

    assert failed_ids(response) == []
    assert counting_core.calls == 20
    assert statuses(worker_aws.read_events(), "big")[-2:] == ["completed", "done"]


@pytest.mark.parametrize("receive_count", [1, 3])
def test_a_batch_of_one_unsettled_record_is_reported_not_raised(
    worker_aws: WorkerAws,
    counting_core: CountingSynthesizer,
    lambda_context: Any,
    restore_logging: None,
    receive_count: int,
) -> None:
    # Given: the deployed batch size of one, and a job that fails transiently (its text object is missing)
    [body] = worker_aws.known([job_body(None, task_id="alone", text_key=text_key_for("alone"))])

    # When: the handler sees a batch in which every record fails
    response = invoke(sqs_event([body], receive_count=receive_count), lambda_context)

    # Then: the invocation succeeds and names the record, so SQS redelivers it (or redrives it to the DLQ)
    # without a Lambda error on every ordinary retry
    assert failed_ids(response) == ["m-0"]
    last = receive_count == 3
    assert statuses(worker_aws.read_events(), "alone") == (["failed"] if last else [])


def test_a_job_for_a_task_that_does_not_exist_is_dropped_unsynthesized(
    worker_aws: WorkerAws, counting_core: CountingSynthesizer, lambda_context: Any, restore_logging: None
) -> None:
    # Given: a valid job whose task was never written (forged, or sent for an expired task)
    body = job_body("Kukaan ei odota tätä.", task_id="nobody")

    # When
    response = invoke(sqs_event([body]), lambda_context)

    # Then: deleted, nothing synthesized, written or reported
    assert failed_ids(response) == []
    assert counting_core.calls == 0
    assert worker_aws.audio_keys() == []
    assert worker_aws.read_events() == []
