"""With the backend hung (connections accepted, never answered), every route answers a typed 503 in time.

API Gateway gives up after 29 s; the soak bar is every API call answering 503 within 5 s while the backend is
paused. The budget a route may take is what its settings allow one AWS call (ClientTimeouts.worst_case_s):
the first call that hangs ends the request, and /health pings its three dependencies at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.support import RecordedMetrics
from tts_common.adapters.aws import ClientTimeouts

pytestmark = pytest.mark.timeout(60)

SOAK_BAR_S = 5.0
# The endpoint hangs up a connection it never answered after this long: past every budget here (each test
# checks), so a bounded client never sees it; an unbounded one (PynamoDB's own 30 s read x 4 attempts) gets it
# after each attempt and fails the test in finite time instead of hanging for minutes.
HOLD_S = 8.0
# The lifecycle consumer Lambda's timeout (infra/capabilities/task_events.py).
CONSUMER_TIMEOUT_S = 30.0


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """An HTTP endpoint that accepts connections and never answers a byte (a paused backend)."""
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0), backlog=128) as server:
        server.settimeout(0.05)

        def hold() -> None:
            held: list[tuple[float, socket.socket]] = []
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    held.append((time.monotonic() + HOLD_S, server.accept()[0]))
                now = time.monotonic()
                for deadline, conn in held:
                    if deadline <= now:
                        conn.close()
                held = [(deadline, conn) for deadline, conn in held if deadline > now]
            for _, conn in held:
                conn.close()

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
        stop.set()
        holder.join()


@pytest.fixture
def hung_settings(hung_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The API's own defaults, pointed at the hung endpoint for every AWS client."""
    from tts_common.settings import ApiSettings, load_settings

    for name in ("AWS_CONNECT_TIMEOUT_S", "AWS_READ_TIMEOUT_S", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", hung_endpoint)
    monkeypatch.setenv("TASKS_TABLE_NAME", "hung-tasks")
    monkeypatch.setenv("AUDIO_BUCKET_NAME", "hung-audio")
    monkeypatch.setenv("JOBS_QUEUE_URL", f"{hung_endpoint}/123456789012/hung-jobs")
    monkeypatch.setenv("EVENTS_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:hung-lifecycle")
    return load_settings(ApiSettings)


@pytest.fixture
def hung_client(hung_settings: Any) -> TestClient:
    from tts_api import deps
    from tts_api.app import create_app
    from tts_common.tenancy import Principal

    app = create_app(settings=hung_settings)
    app.dependency_overrides[deps.get_metrics] = lambda: RecordedMetrics()
    # Resolved as the authorizer would: the route's own calls are the ones that hang here.
    app.dependency_overrides[deps.get_principal] = lambda: Principal(tenant_id=TENANT, key_id="k")
    # Build the clients now (a cold start's work, no network): the clock below times the waits only.
    for build in (deps.repository_for, deps.audio_store_for, deps.job_queue_for, deps.publisher_for):
        build(hung_settings)
    return TestClient(app)


TENANT = "acme"


def _page_token() -> str:
    """A well-formed next_token, so that the list route's query error handling is the one exercised."""
    from tts_common.storage import schema
    from tts_common.storage.models import list_pk, task_pk
    from tts_common.storage.repository import _encode_token, sort_key

    task_id = uuid.uuid4().hex
    key = {
        schema.PARTITION_KEY: {"S": task_pk(task_id)},
        schema.LIST_INDEX_PK: {"S": list_pk(TENANT)},
        schema.LIST_INDEX_SK: {"S": sort_key(datetime.now(UTC), task_id)},
    }
    return _encode_token(key, None)


def _default_timeouts(cls: type[Any]) -> ClientTimeouts:
    fields = cls.model_fields
    return ClientTimeouts(
        connect_s=fields["aws_connect_timeout_s"].default,
        read_s=fields["aws_read_timeout_s"].default,
        max_attempts=fields["aws_max_attempts"].default,
    )


def test_each_functions_defaults_fit_its_deadline() -> None:
    from annotated_types import Le

    from tts_common.settings import ApiSettings, TaskEventsSettings, WorkerSettings

    assert _default_timeouts(ApiSettings).worst_case_s <= SOAK_BAR_S
    assert _default_timeouts(TaskEventsSettings).worst_case_s < CONSUMER_TIMEOUT_S
    worker = _default_timeouts(WorkerSettings)
    longest_poll = next(
        m.le for m in WorkerSettings.model_fields["poll_wait_s"].metadata if isinstance(m, Le)
    )
    assert worker.read_s > longest_poll  # a long poll is one read: it must not time out while SQS waits
    heartbeat_every_s = WorkerSettings.model_fields["visibility_timeout_s"].default / 3
    assert worker.worst_case_s < heartbeat_every_s


@pytest.mark.parametrize(
    ("method", "path", "options"),
    [
        ("POST", "/api/v1/tts/convert", {"json": {"text": "Kukaan ei vastaa"}}),
        ("GET", f"/api/v1/tts/{'a' * 32}", {}),
        ("GET", "/api/v1/tts", {"params": {"next_token": _page_token()}}),
        ("GET", "/api/v1/tts/stats", {}),
        ("GET", f"/api/v1/tts/{'b' * 32}/download", {}),
    ],
    ids=["convert", "get", "list", "stats", "download"],
)
def test_a_route_answers_503_within_one_calls_budget(
    hung_client: TestClient, hung_settings: Any, method: str, path: str, options: dict[str, Any]
) -> None:
    budget = ClientTimeouts.from_settings(hung_settings).worst_case_s
    assert budget < HOLD_S

    # When
    start = time.monotonic()
    response = hung_client.request(method, path, **options)
    elapsed = time.monotonic() - start

    # Then: a typed 503 the client may retry, in time
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    assert response.json()["error"]["code"] == "service_unavailable"
    assert elapsed < budget


def test_health_answers_503_within_one_calls_budget(hung_client: TestClient, hung_settings: Any) -> None:
    budget = ClientTimeouts.from_settings(hung_settings).worst_case_s
    assert budget < HOLD_S

    start = time.monotonic()
    response = hung_client.get("/health")
    elapsed = time.monotonic() - start

    assert response.status_code == 503
    assert response.json()["checks"] == {"table": False, "bucket": False, "queue": False}
    assert elapsed < budget


def test_resolving_a_key_against_a_hung_key_table_answers_503_within_one_calls_budget(
    hung_settings: Any,
) -> None:
    """Locally the API resolves keys itself: a hung key table is a typed 503, never a 401 or a hang."""
    from tts_api import deps
    from tts_api.app import create_app

    settings = hung_settings.model_copy(update={"key_table_name": "hung-keys"})
    app = create_app(settings=settings)
    deps.key_store_for(settings)  # the client is built at cold start, not timed here
    budget = ClientTimeouts.from_settings(settings).worst_case_s

    start = time.monotonic()
    response = TestClient(app).get("/api/v1/tts/stats", headers={"x-api-key": "tts_" + "a" * 43})
    elapsed = time.monotonic() - start

    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert elapsed < budget
