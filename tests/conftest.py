"""Fixtures shared by every test: fake AWS credentials and, on demand, the service's resources on moto."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

# --clock-shift-days=N: the whole session on another date (tests/clock_shift.py).
pytest_plugins = ["tests.clock_shift"]

# Never let a test reach a real account, whatever the machine's environment holds.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_REGION"] = "us-east-1"
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ServerlessTTS")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "serverless-tts")
os.environ["HF_HUB_OFFLINE"] = "1"

from local.moto_patches import make_dynamodb_thread_safe  # noqa: E402

make_dynamodb_thread_safe()


_SESSION: list = []


@pytest.fixture
def aws():
    """moto in-process for the duration of one test, on one boto3 session for the whole run.

    moto resets boto3's default session per test, so every client would re-parse its service model
    (about 0.1 s each); the credentials are the fake ones either way.
    """
    import boto3
    from moto import mock_aws

    with mock_aws():
        if not _SESSION:
            _SESSION.append(boto3.session.Session())
        boto3.DEFAULT_SESSION = _SESSION[0]
        yield


@pytest.fixture
def resources(aws, monkeypatch):
    """The service's table, bucket, queues and channel on in-process moto, and their env variables set."""
    from local.provision import provision

    res = provision()
    for key, value in res.environment().items():
        monkeypatch.setenv(key, value)
    return res


@pytest.fixture
def lambda_context():
    """The parts of a Lambda context that Powertools reads."""
    from dataclasses import dataclass

    @dataclass
    class Context:
        function_name: str = "test-function"
        function_version: str = "$LATEST"
        memory_limit_in_mb: int = 1024
        invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
        aws_request_id: str = "00000000-0000-0000-0000-000000000000"
        log_group_name: str = "/aws/lambda/test-function"
        log_stream_name: str = "stream"

        def get_remaining_time_in_millis(self) -> int:
            return 60_000

    return Context()


@pytest.fixture
def now() -> datetime:
    """The test's one "now", read once from the wall clock: build dates from it and hand it to the code.

    Never write an absolute date that the code compares with its clock (expiry, TTL): it breaks as the
    calendar moves. `--clock-shift-days` checks that nothing does.
    """
    return datetime.now(UTC)


@pytest.fixture
def repository(resources, now):
    """The task store on moto, judging expiry by the test's `now`."""
    from tts_common.storage.models import records_for
    from tts_common.storage.repository import TaskRepository

    return TaskRepository(
        records_for(resources.table_name, "us-east-1", None), ttl_days=30, clock=lambda: now
    )
