"""Health, service info, and the one error body for failures that are not the client's."""

from __future__ import annotations

from datetime import datetime

from fastapi.testclient import TestClient

from tests.api.support import events_on_queue, jobs_on_queue
from tts_api import deps
from tts_common.adapters.events import EventPublisher
from tts_common.adapters.s3 import AudioStore
from tts_common.adapters.sqs import JobQueue


def test_root_names_the_service(client):
    response = client.get("/")

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "serverless-tts"
    assert body["version"] == "0.1.0"
    datetime.fromisoformat(body["timestamp"])


def test_health_is_200_when_everything_answers(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["checks"] == {"table": True, "bucket": True, "queue": True}


def test_head_answers_what_get_does_without_the_body(client):
    for path in ("/health", "/ui", "/api/v1/voices"):
        get, head = client.get(path), client.head(path)

        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["content-length"] == get.headers["content-length"]
    # Whatever GET answers, HEAD answers: a POST-only path, and another tenant's or an unknown task.
    for path in ("/v1/speech", "/api/v1/tts/no-such-task"):
        assert client.head(path).status_code == client.get(path).status_code != 200, path


def test_health_is_503_naming_what_is_down_and_root_stays_200(app, api_settings, resources, auth):
    # Given: a bucket that does not exist
    s3 = deps.audio_store_for(api_settings)._s3
    app.dependency_overrides[deps.get_audio_store] = lambda: AudioStore(s3_client=s3, bucket="no-such-bucket")
    client = TestClient(app, headers=auth)

    response = client.get("/health")

    assert response.status_code == 503
    assert response.json()["checks"] == {"table": True, "bucket": False, "queue": True}
    assert client.get("/").status_code == 200


def test_a_failed_enqueue_is_503_and_leaves_the_task_for_the_sweeper(app, api_settings, resources, auth):
    # Given: the jobs queue is gone
    sqs = deps.job_queue_for(api_settings)._sqs
    missing = resources.jobs_queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    app.dependency_overrides[deps.get_job_queue] = lambda: JobQueue(sqs_client=sqs, queue_url=missing)
    client = TestClient(app, headers=auth)

    # When
    response = client.post("/api/v1/tts/convert", json={"text": "Jono puuttuu"})

    # Then: a typed 503 the client may retry, and no `queued` event (the sweeper's cue)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    error = response.json()["error"]
    assert error["code"] == "service_unavailable"
    assert error["details"]["dependency"] == "jobs queue"
    assert events_on_queue(resources) == []
    [task] = client.get("/api/v1/tts").json()["items"]
    assert task["status"] == "queued"

    # And a retry once the queue is back returns the same conversion
    app.dependency_overrides.pop(deps.get_job_queue)
    retry = client.post("/api/v1/tts/convert", json={"text": "Jono puuttuu"}).json()
    assert retry["conversion_id"] == task["conversion_id"]
    assert retry["deduplicated"] is True


def test_a_failed_announcement_still_accepts_the_submission(app, api_settings, resources, auth):
    sns = deps.publisher_for(api_settings)._sns
    topic = resources.events_topic_arn + "-missing"
    app.dependency_overrides[deps.get_publisher] = lambda: EventPublisher(sns_client=sns, topic_arn=topic)

    response = TestClient(app, headers=auth).post("/api/v1/tts/convert", json={"text": "Kanava puuttuu"})

    assert response.status_code == 202
    assert len(jobs_on_queue(resources)) == 1


def test_an_unexpected_error_is_500_without_internals(app, auth):
    def broken_clock():
        raise RuntimeError("secret: arn:aws:iam::123456789012:role/internal")

    app.dependency_overrides[deps.get_clock] = lambda: broken_clock
    client = TestClient(app, raise_server_exceptions=False, headers=auth)

    response = client.get("/")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": {"code": "internal_error", "message": "Internal server error"}}


def test_unknown_routes_and_methods_keep_the_error_body(client):
    missing = client.get("/api/v2/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"

    wrong_method = client.delete("/api/v1/tts/stats")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_cors_headers_only_for_configured_origins(make_app, auth):
    allowed = TestClient(
        make_app(cors_allow_origins="https://app.example.com, https://admin.example.com"), headers=auth
    )
    response = allowed.get("/health", headers={"origin": "https://app.example.com"})
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    assert (
        "access-control-allow-origin"
        not in allowed.get("/health", headers={"origin": "https://evil.example"}).headers
    )
    closed = TestClient(make_app(), headers=auth)
    assert (
        "access-control-allow-origin"
        not in closed.get("/health", headers={"origin": "https://app.example.com"}).headers
    )
