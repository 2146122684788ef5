"""The Lambda handler behind API Gateway: REST (v1) and HTTP API (v2) events through Mangum."""

from __future__ import annotations

import json

import pytest

from tests.api.support import TENANT, api_event, finish_task, jobs_on_queue

KINDS = ["rest_v1", "http_v2"]


def _convert(kind: str, text: str) -> dict:
    return api_event(kind, method="POST", path="/api/v1/tts/convert", body={"text": text}, tenant=TENANT)


@pytest.fixture
def handler(resources):
    """The module reads its settings at import (cold start): import it once the environment is set."""
    from tts_api import handler as module
    from tts_api.observability import metrics

    metrics.clear_metrics()
    return module.handler


@pytest.mark.parametrize("kind", KINDS)
def test_submit_through_api_gateway(handler, lambda_context, resources, kind, capsys):
    # When: the same text twice
    first = handler(_convert(kind, "Hei"), lambda_context)
    second = handler(_convert(kind, "Hei"), lambda_context)

    # Then
    assert first["statusCode"] == 202
    assert first["headers"]["content-type"] == "application/json"
    body = json.loads(first["body"])
    assert body["status"] == "queued"
    assert json.loads(second["body"])["conversion_id"] == body["conversion_id"]
    assert [job.task_id for job in jobs_on_queue(resources)] == [body["conversion_id"]]
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m.get("TasksSubmitted") for m in emitted] == [[1.0], None]
    assert [m.get("DedupeHits") for m in emitted] == [None, [1.0]]
    assert emitted[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ServerlessTTS"


@pytest.mark.parametrize("kind", KINDS)
def test_validation_errors_come_back_typed(handler, lambda_context, kind):
    response = handler(_convert(kind, "  "), lambda_context)

    assert response["statusCode"] == 422
    assert json.loads(response["body"])["error"]["code"] == "validation_error"


@pytest.mark.parametrize("kind", KINDS)
def test_status_and_redirect_through_api_gateway(handler, lambda_context, repository, resources, kind):
    created = handler(_convert(kind, "Ohjaa"), lambda_context)
    task_id = json.loads(created["body"])["conversion_id"]
    finish_task(repository, resources, task_id)

    status = handler(
        api_event(kind, method="GET", path=f"/api/v1/tts/{task_id}", tenant=TENANT), lambda_context
    )
    download = f"/api/v1/tts/{task_id}/download"
    redirect = handler(
        api_event(kind, method="GET", path=download, query={"redirect": "true"}, tenant=TENANT),
        lambda_context,
    )

    assert json.loads(status["body"])["status"] == "done"
    assert redirect["statusCode"] == 307
    assert f"audio/{task_id}.wav" in redirect["headers"]["location"]


@pytest.mark.parametrize("kind", KINDS)
def test_health_through_api_gateway(handler, lambda_context, kind):
    response = handler(api_event(kind, method="GET", path="/health"), lambda_context)

    assert response["statusCode"] == 200
    assert json.loads(response["body"])["checks"] == {"table": True, "bucket": True, "queue": True}


@pytest.mark.parametrize("kind", KINDS)
def test_the_authorizers_tenant_scopes_every_read(handler, lambda_context, kind):
    """Behind the authorizer the API trusts its context: another tenant's id is an unknown id."""
    created = handler(_convert(kind, "Vain meille"), lambda_context)
    task_id = json.loads(created["body"])["conversion_id"]

    own = handler(api_event(kind, method="GET", path=f"/api/v1/tts/{task_id}", tenant=TENANT), lambda_context)
    other = handler(
        api_event(kind, method="GET", path=f"/api/v1/tts/{task_id}", tenant="globex"), lambda_context
    )
    unknown = handler(
        api_event(kind, method="GET", path=f"/api/v1/tts/{'0' * 32}", tenant=TENANT), lambda_context
    )
    listed = handler(api_event(kind, method="GET", path="/api/v1/tts", tenant="globex"), lambda_context)

    assert own["statusCode"] == 200
    assert other["statusCode"] == unknown["statusCode"] == 404
    assert json.loads(other["body"])["error"]["code"] == json.loads(unknown["body"])["error"]["code"]
    assert json.loads(listed["body"])["items"] == []


@pytest.mark.parametrize("kind", KINDS)
def test_without_authorizer_context_or_key_the_answer_is_401(handler, lambda_context, kind):
    event = api_event(kind, method="GET", path="/api/v1/tts", tenant=None)

    response = handler(event, lambda_context)

    assert response["statusCode"] == 401
    assert json.loads(response["body"])["error"]["code"] == "missing_api_key"
    assert response["headers"]["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("kind", KINDS)
def test_without_authorizer_context_a_stored_key_is_resolved(handler, lambda_context, resources, kind):
    from tests.api.support import create_key

    key = create_key(resources, "initech")
    event = api_event(
        kind, method="GET", path="/api/v1/tts/stats", tenant=None, headers={"Authorization": f"Bearer {key}"}
    )

    response = handler(event, lambda_context)

    assert response["statusCode"] == 200
    assert json.loads(response["body"])["submitted"] == 0
