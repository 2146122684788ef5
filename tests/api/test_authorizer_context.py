"""The API function as it runs on AWS: REST (v1) events that the key authorizer has let through, carrying
the tenant in requestContext.authorizer and no key at all, through the real Lambda handler."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.support import api_event
from tts_common.exceptions import MissingApiKey
from tts_common.tenancy import CONTEXT_KEY_ID, CONTEXT_TENANT


def authorized(tenant: str, *, method: str, path: str, body: Any = None, query=None) -> dict[str, Any]:
    """A REST event as API Gateway hands it on after the authorizer allowed the request: its context (and
    the gateway's own fields) in requestContext.authorizer; the key header never reaches the function here."""
    event = api_event("rest_v1", method=method, path=path, body=body, query=query)
    event["requestContext"]["authorizer"] = {
        "principalId": f"{tenant}-key",
        CONTEXT_TENANT: tenant,
        CONTEXT_KEY_ID: f"{tenant}-key",
        "integrationLatency": 11,
    }
    return event


@pytest.fixture
def handler(resources):
    from tts_api import handler as module
    from tts_api.observability import metrics

    metrics.clear_metrics()
    return module.handler


def call(handler, lambda_context, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"])


def test_the_authorizers_tenant_owns_what_it_submits(handler, lambda_context):
    # Given: one conversion submitted as acme
    status, created = call(
        handler,
        lambda_context,
        authorized("acme", method="POST", path="/api/v1/tts/convert", body={"text": "Hei maailma"}),
    )
    assert status == 202
    task_id = created["conversion_id"]

    # When: acme and globex each read it, list and count
    def as_tenant(tenant: str, path: str, query=None) -> tuple[int, dict[str, Any]]:
        return call(handler, lambda_context, authorized(tenant, method="GET", path=path, query=query))

    # Then: acme sees it; globex gets what an unknown id gets, an empty list and zero counts
    assert as_tenant("acme", f"/api/v1/tts/{task_id}")[1]["conversion_id"] == task_id
    assert [t["conversion_id"] for t in as_tenant("acme", "/api/v1/tts")[1]["items"]] == [task_id]
    assert as_tenant("acme", "/api/v1/tts/stats")[1]["submitted"] == 1

    other_status, other_body = as_tenant("globex", f"/api/v1/tts/{task_id}")
    unknown_status, unknown_body = as_tenant("globex", "/api/v1/tts/00000000-0000-4000-8000-000000000000")
    assert other_status == unknown_status == 404
    assert other_body["error"]["code"] == unknown_body["error"]["code"]
    assert as_tenant("globex", "/api/v1/tts")[1]["items"] == []
    assert as_tenant("globex", "/api/v1/tts/stats")[1]["submitted"] == 0


def test_the_same_text_from_two_tenants_is_two_conversions(handler, lambda_context):
    def submit(tenant: str) -> dict[str, Any]:
        event = authorized(tenant, method="POST", path="/api/v1/tts/convert", body={"text": "Sama teksti"})
        return call(handler, lambda_context, event)[1]

    first, again, other = submit("acme"), submit("acme"), submit("globex")

    assert again["conversion_id"] == first["conversion_id"]
    assert again["deduplicated"] is True
    assert other["conversion_id"] != first["conversion_id"]
    assert other["deduplicated"] is False


def test_an_event_without_authorizer_context_or_key_is_refused(handler, lambda_context):
    event = api_event("rest_v1", method="GET", path="/api/v1/tts")

    status, body = call(handler, lambda_context, event)

    assert status == 401
    assert body["error"]["code"] == MissingApiKey.code
