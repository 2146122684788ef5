"""The ECS loop's heartbeat: a batch in work stays invisible past the queue's visibility timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from tests.worker.support import FakeSynthesizer, WorkerAws, job_body
from tts_common.settings import WorkerSettings
from tts_common.wiring import job_queue_from
from tts_worker.core import WorkerCore
from tts_worker.ecs_loop import VisibilityHeartbeat, run_loop
from tts_worker.runtime import build_core
from tts_worker.synthesizer.base import SynthesisItem, SynthesisResult


class RecordingQueue:
    def __init__(self) -> None:
        self.extended: list[tuple[list[str], int]] = []

    def receive(self, *, max_messages: int = 10, wait_s: int = 20) -> list[object]:
        return []

    def delete_many(self, receipt_handles: list[str]) -> None:
        pass

    def change_visibility(self, receipt_handles: list[str], *, timeout_s: int) -> None:
        self.extended.append((list(receipt_handles), timeout_s))


def test_the_heartbeat_extends_every_message_of_the_batch_until_it_stops() -> None:
    queue = RecordingQueue()

    with VisibilityHeartbeat(queue, ["r1", "r2"], timeout_s=30, interval_s=0.02) as heartbeat:  # type: ignore[arg-type]
        time.sleep(0.15)
    beats = heartbeat.beats
    time.sleep(0.06)

    assert beats >= 3
    assert len(queue.extended) == beats  # nothing after the batch was done
    assert all(entry == (["r1", "r2"], 30) for entry in queue.extended)


def test_a_failing_extension_does_not_stop_the_batch() -> None:
    class Broken(RecordingQueue):
        def change_visibility(self, receipt_handles: list[str], *, timeout_s: int) -> None:
            raise ConnectionError("sqs hiccup")

    with VisibilityHeartbeat(Broken(), ["r1"], timeout_s=30, interval_s=0.01):  # type: ignore[arg-type]
        time.sleep(0.05)


class SlowSynthesizer(FakeSynthesizer):
    def synthesize(self, items: Sequence[SynthesisItem]) -> list[SynthesisResult]:
        time.sleep(0.8)
        return super().synthesize(items)


@pytest.mark.model
def test_a_job_longer_than_the_visibility_timeout_is_not_redelivered_meanwhile(
    worker_aws_factory: object,
) -> None:
    # Given: a 1-second visibility timeout and a job of three pieces taking 0.8 s each
    aws: WorkerAws = worker_aws_factory(jobs_visibility_timeout_s=1)  # type: ignore[operator]
    aws.send_job(job_body("Yksi lause. Toinen lause. Kolmas lause.", task_id="slow"))
    settings = WorkerSettings()  # type: ignore[call-arg]
    core: WorkerCore = build_core(settings, synthesizer=SlowSynthesizer())
    queue = job_queue_from(settings)
    seen_meanwhile: list[int] = []

    def peek() -> None:
        time.sleep(1.6)
        seen_meanwhile.append(len(queue.receive(max_messages=10, wait_s=0)))

    watcher = threading.Thread(target=peek)

    # When
    watcher.start()
    stats = run_loop(
        core=core, queue=queue, stop=threading.Event(), wait_s=0, visibility_timeout_s=1, max_polls=1
    )
    watcher.join()

    # Then: nobody else could receive it while it was in work; it was deleted when done
    assert seen_meanwhile == [0]
    assert stats.deleted == 1
    assert aws.count(aws.resources.jobs_queue_url) == 0
