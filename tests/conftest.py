"""Fixtures shared by every test: fake AWS credentials and, on demand, the service's resources on moto."""

from __future__ import annotations

import os

import pytest

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


@pytest.fixture
def aws():
    """moto in-process for the duration of one test."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def resources(aws, monkeypatch):
    """The service's table, bucket, queues and channel on in-process moto, and their env variables set."""
    from local.provision import provision

    res = provision()
    for key, value in res.environment().items():
        monkeypatch.setenv(key, value)
    return res
