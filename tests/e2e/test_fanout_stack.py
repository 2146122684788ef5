"""Issue 12 on `make run`: a long text fanned out over two worker processes, joined in the bucket.

The stack runs two workers with a low fan-out threshold, so a 20,000-character text becomes several parts;
both workers must have stored parts, and the joined WAV must be byte for byte what one worker makes of the
whole text (synthesized here, in-process, with the same model read from the stack's model store).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import LocalStack, run_local_stack
from tests.worker.test_fanout import long_text

pytestmark = [pytest.mark.e2e, pytest.mark.model]

# FANOUT_E2E_CHARS, FANOUT_E2E_PART_CHARS, FANOUT_E2E_MIN_CHARS: other sizes (100,000 and the defaults).
CHARS = int(os.environ.get("FANOUT_E2E_CHARS", "20000"))
PART_CHARS = int(os.environ.get("FANOUT_E2E_PART_CHARS", "2500"))
MIN_CHARS = int(os.environ.get("FANOUT_E2E_MIN_CHARS", "5000"))


@pytest.fixture(scope="module")
def fanout_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    workdir = tmp_path_factory.mktemp("fanout-stack")
    env = {
        "WORKER_PROCESSES": "2",
        "TTS_PART_CHARS": str(PART_CHARS),
        "TTS_FANOUT_MIN_CHARS": str(MIN_CHARS),
        "POLL_WAIT_S": "1",
        "TTS_NUM_THREADS": "1",
    }
    with run_local_stack(workdir, extra_env=env) as stack:
        yield stack


def _parts_by_worker(log: Path) -> dict[str, int]:
    workers: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if '"part stored"' not in line:
            continue
        try:
            record = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        workers[str(record.get("worker"))] = workers.get(str(record.get("worker")), 0) + 1
    return workers


def _single_worker_audio(stack: LocalStack, task_id: str, tmp: Path) -> bytes:
    """The task's text synthesized by one in-process core (no fan-out), with the stack's model."""
    import os

    from local.models import worker_environment
    from local.provision import REGION
    from tests.worker.support import MemoryEvents, MemoryStore, MemoryTasks
    from tts_common.domain import audio_key_for
    from tts_common.jobs import job_for
    from tts_common.settings import WorkerSettings
    from tts_common.storage.models import records_for
    from tts_common.storage.repository import TaskRepository
    from tts_worker.core import WorkerCore
    from tts_worker.ports import QueueMessage
    from tts_worker.runtime import build_synthesizer

    repository = TaskRepository(records_for("tts-tasks", REGION, stack.moto_url), ttl_days=30)
    task = repository.get(task_id, tenant_id=None, consistent=True)
    job = job_for(task)
    job = job.model_copy(update={"task_id": "single", "audio_key": audio_key_for("single", job.voice.format)})
    if job.text_key is not None:
        import boto3

        from tts_common.adapters.s3 import AudioStore

        s3 = boto3.client("s3", region_name=REGION, endpoint_url=stack.moto_url)
        text = AudioStore(s3_client=s3, bucket="tts-audio").get_text(job.text_key)
        job = job.model_copy(update={"text": text, "text_key": None})
    env = {
        **worker_environment(bucket="tts-audio", cache_dir=tmp / "downloads"),
        "TASKS_TABLE_NAME": "tts-tasks",
        "AUDIO_BUCKET_NAME": "tts-audio",
        "JOBS_QUEUE_URL": "unused",
        "EVENTS_TOPIC_ARN": "unused",
        "AWS_ENDPOINT_URL": stack.moto_url,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "TTS_DEVICE": "cpu",
        "TTS_NUM_THREADS": "1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        synthesizer = build_synthesizer(WorkerSettings())  # type: ignore[call-arg]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    store = MemoryStore()
    core = WorkerCore(synthesizer=synthesizer, store=store, events=MemoryEvents(), tasks=MemoryTasks())
    [outcome] = core.process_batch([QueueMessage("single", job.model_dump_json())])
    assert outcome.settled, outcome
    return store.audio[job.audio_key][1]


def test_a_long_text_is_synthesized_by_both_workers_and_equals_one_workers_audio(
    fanout_stack: LocalStack, tmp_path: Path
) -> None:
    text = long_text(CHARS, seed=12)[:CHARS].strip()
    with httpx.Client(
        headers={"x-api-key": fanout_stack.key}, base_url=fanout_stack.url, timeout=30
    ) as client:
        started = time.monotonic()
        submitted = client.post("/api/v1/tts/convert", json={"text": text})
        assert submitted.status_code == 202, submitted.text
        conversion_id = submitted.json()["conversion_id"]
        # A short task submitted right after the long one is served first (whole jobs before parts).
        short_started = time.monotonic()
        short = client.post("/api/v1/tts/convert", json={"text": "Lyhyt teksti heti perään."}).json()
        while client.get(f"/api/v1/tts/{short['conversion_id']}").json()["status"] not in ("done", "failed"):
            assert time.monotonic() - short_started < 30
            time.sleep(0.1)
        short_s = time.monotonic() - short_started
        long_status_then = client.get(f"/api/v1/tts/{conversion_id}").json()["status"]
        deadline = time.monotonic() + 150 + CHARS / 500
        while True:
            task = client.get(f"/api/v1/tts/{conversion_id}").json()
            if task["status"] in ("done", "failed"):
                break
            assert time.monotonic() < deadline, task
            time.sleep(0.3)
        elapsed = time.monotonic() - started
        assert task["status"] == "done", task
        link = client.get(f"/api/v1/tts/{conversion_id}/download").json()
        joined = httpx.get(link["url"], timeout=60).content
    workers = _parts_by_worker(fanout_stack.log)
    print(
        f"fan-out e2e: {CHARS} chars in {elapsed:.1f} s, {len(joined) / 2**20:.0f} MiB, "
        f"parts stored by worker: {workers}; a short task submitted after it done in {short_s:.1f} s "
        f"(the long one {long_status_then})"
    )
    assert short_s < 15
    assert len(workers) == 2, workers
    assert sum(workers.values()) >= CHARS // PART_CHARS - 1
    assert len(joined) == task["file_size"]
    expected = _single_worker_audio(fanout_stack, conversion_id, tmp_path)
    assert len(joined) == len(expected)
    assert joined == expected
