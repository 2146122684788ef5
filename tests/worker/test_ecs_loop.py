"""The ECS long-poll loop against a real (moto) SQS queue with a DLQ redrive."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.worker.support import CountingSynthesizer, FakeSynthesizer, WorkerAws, job_body, raw_json, statuses
from tts_common.domain import TaskStatus, audio_key_for, text_key_for
from tts_common.settings import WorkerSettings
from tts_common.voice import AudioFormat
from tts_common.wiring import job_queue_from
from tts_worker import ecs_loop
from tts_worker.ecs_loop import run_loop
from tts_worker.runtime import build_core
from tts_worker.synthesizer.base import Synthesizer

pytestmark = pytest.mark.model


def loop_parts(synthesizer: Synthesizer) -> tuple[Any, Any]:
    settings = WorkerSettings()  # type: ignore[call-arg]
    return build_core(settings, synthesizer=synthesizer), job_queue_from(settings)


def test_the_loop_deletes_what_it_settled_and_leaves_the_rest_to_the_dlq(
    worker_aws_factory: Callable[..., WorkerAws], tiny_synthesizer: Synthesizer
) -> None:
    # Given: redelivery right away (visibility 0) and a redrive after 3 receives
    aws = worker_aws_factory(jobs_visibility_timeout_s=0, max_receive_count=3)
    aws.send_job(job_body("Hyvää päivää, maailma.", task_id="good"))
    aws.send_job(raw_json(task_id="broken", text="missing fields"))
    aws.send_job(job_body(None, task_id="lost", text_key=text_key_for("lost")))
    core, queue = loop_parts(CountingSynthesizer(tiny_synthesizer))

    # When: a bounded number of polls
    stats = run_loop(core=core, queue=queue, stop=threading.Event(), wait_s=0, max_polls=8)

    # Then: good and broken deleted; lost received 3 times, reported failed on the last, then moved to the DLQ
    assert stats.polls == 8
    assert stats.deleted == 2
    assert stats.left_for_retry == 2
    assert stats.left_for_dlq == 1
    assert aws.count(aws.resources.jobs_queue_url) == 0
    assert aws.count(aws.resources.jobs_dlq_url) == 1
    events = aws.read_events()
    assert statuses(events, "good") == ["processing", "completed", "done"]
    assert statuses(events, "broken") == ["failed"]
    [lost] = [e for e in events if e.task_id == "lost"]
    assert (lost.status, lost.attempt) == (TaskStatus.FAILED, 3)
    assert aws.audio_keys() == [audio_key_for("good", AudioFormat.WAV)]


def test_a_stop_request_finishes_the_batch_in_hand_then_exits(worker_aws: WorkerAws) -> None:
    # Given: more jobs than one receive returns
    for n in range(12):
        worker_aws.send_job(job_body(f"Lause numero {n}.", task_id=f"t{n}"))
    core, queue = loop_parts(FakeSynthesizer())
    stop = threading.Event()

    # When: the stop arrives while the first batch is being processed
    stats = run_loop(core=core, queue=queue, stop=stop, wait_s=0, after_batch=stop.set)

    # Then: that batch was finished and deleted, nothing more was received
    assert stats.polls == 1
    assert stats.received == stats.deleted == 10
    assert worker_aws.count(worker_aws.resources.jobs_queue_url) == 2


def test_a_stopped_loop_never_polls(worker_aws: WorkerAws) -> None:
    core, queue = loop_parts(FakeSynthesizer())
    stop = threading.Event()
    stop.set()

    assert run_loop(core=core, queue=queue, stop=stop, wait_s=0).polls == 0


def test_a_receive_error_does_not_end_the_loop(
    worker_aws: WorkerAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: a queue that fails once, then works
    core, queue = loop_parts(FakeSynthesizer())
    worker_aws.send_job(job_body("Hei.", task_id="t1"))
    real_receive = queue.receive
    calls = {"n": 0}

    def flaky_receive(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("sqs hiccup")
        return real_receive(**kwargs)

    monkeypatch.setattr(queue, "receive", flaky_receive)
    monkeypatch.setattr(ecs_loop, "_RECEIVE_ERROR_BACKOFF_S", 0.0)

    # When
    stats = run_loop(core=core, queue=queue, stop=threading.Event(), wait_s=0, max_polls=2)

    # Then
    assert stats.deleted == 1


def test_sigterm_asks_the_loop_to_stop() -> None:
    stop = threading.Event()
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        ecs_loop._install_signal_handlers(stop)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(2.0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_main_refuses_to_start_with_a_bad_setting(
    worker_aws: WorkerAws, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    monkeypatch.setenv("TTS_DEVICE", "tpu")
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert ecs_loop.main() == 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_main_serves_jobs_until_sigterm(
    worker_aws: WorkerAws,
    tiny_model_dir: Any,
    restore_logging: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given: the worker configured from the environment (tiny-random, moto), and one job waiting
    # (a service name of its own, so Powertools builds a fresh logger writing to the captured stdout)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", f"tts-worker-{uuid.uuid4().hex}")
    worker_aws.send_job(job_body("Hei maailma.", task_id="t1"))
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    finished = threading.Event()

    def stop_when_done() -> None:
        for _ in range(300):
            if worker_aws.audio_keys():
                break
            finished.wait(0.1)
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=stop_when_done, daemon=True)

    # When
    try:
        watcher.start()
        code = ecs_loop.main()
    finally:
        finished.set()
        watcher.join(5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    # Then
    assert code == 0
    assert statuses(worker_aws.read_events(), "t1") == ["processing", "completed", "done"]
    assert worker_aws.count(worker_aws.resources.jobs_queue_url) == 0
    logged = capsys.readouterr().out
    assert '"message":"worker started"' in logged
    assert '"default_model":"tiny-random"' in logged
    assert '"device":"cpu"' in logged
