"""Fixtures for the API tests: the app on in-process moto with a ticking clock and recorded metrics, and
API keys of tenants in the key table (`client` sends tenant `acme`'s; `auth` is its header)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.support import TENANT, RecordedMetrics, TickingClock, create_key


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
def api_key(resources) -> str:
    """A key of tenant `acme`, stored hashed in the key table as `tts-admin keys create` would."""
    return create_key(resources, TENANT)


@pytest.fixture
def auth(api_key) -> dict[str, str]:
    """The headers that authenticate as tenant `acme`."""
    return {"x-api-key": api_key}


@pytest.fixture
def client(app, auth) -> TestClient:
    return TestClient(app, headers=auth)
