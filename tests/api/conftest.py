"""Fixtures for the API tests: the app on in-process moto with a ticking clock and recorded metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.support import REGION, RecordedMetrics, TickingClock


@pytest.fixture
def api_settings(resources):
    from tts_common.settings import ApiSettings, load_settings

    return load_settings(ApiSettings)


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def recorded_metrics() -> RecordedMetrics:
    return RecordedMetrics()


@pytest.fixture
def make_app(api_settings, clock, recorded_metrics) -> Callable[..., FastAPI]:
    """Build an app on the test's moto resources; keyword arguments replace settings values.

    The cached clients are kept from test to test (same settings, and moto stubs clients made under an
    earlier mock): building botocore clients is most of a test's cost.
    """
    from tts_api import deps
    from tts_api.app import create_app

    def build(**overrides: Any) -> FastAPI:
        settings = api_settings.model_copy(update=overrides) if overrides else api_settings
        app = create_app(settings=settings)
        app.dependency_overrides[deps.get_clock] = lambda: clock
        app.dependency_overrides[deps.get_metrics] = lambda: recorded_metrics
        return app

    return build


@pytest.fixture
def app(make_app) -> FastAPI:
    return make_app()


@pytest.fixture
def client(app) -> TestClient:
    return TestClient(app)


@pytest.fixture
def lambda_context():
    """The parts of a Lambda context that Powertools reads."""

    @dataclass
    class Context:
        function_name: str = "tts-api"
        function_version: str = "$LATEST"
        memory_limit_in_mb: int = 512
        invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:tts-api"
        aws_request_id: str = "5b1a6d1e-4c3f-4f8e-9a51-0b7f2d0c9e11"
        log_group_name: str = "/aws/lambda/tts-api"
        log_stream_name: str = "2025/11/27/[$LATEST]0123456789abcdef"

        def get_remaining_time_in_millis(self) -> int:
            return 30_000

    return Context()


@pytest.fixture
def repository(resources):
    from tts_common.storage.models import records_for
    from tts_common.storage.repository import TaskRepository

    return TaskRepository(records_for(resources.table_name, REGION, None), ttl_days=30)
