"""The local stack's worker processes (WORKER_PROCESSES): names, ids and their share of the cores."""

from __future__ import annotations

import os

from local.stack import DEFAULT_WORKER_PROCESSES, child_environment, worker_names


def test_two_workers_by_default_each_with_its_id_and_a_share_of_the_cores() -> None:
    assert DEFAULT_WORKER_PROCESSES == 2
    assert worker_names({}) == ["worker-1", "worker-2"]
    env = child_environment({}, "worker-2")
    assert env["WORKER_ID"] == "2"
    assert env["POWERTOOLS_SERVICE_NAME"] == "tts-worker"
    assert env["TTS_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))
    assert child_environment({"TTS_NUM_THREADS": "3"}, "worker-1")["TTS_NUM_THREADS"] == "3"


def test_one_worker_keeps_its_plain_name() -> None:
    assert worker_names({"WORKER_PROCESSES": "1"}) == ["worker"]
    assert "WORKER_ID" not in child_environment({"WORKER_PROCESSES": "1"}, "worker")
