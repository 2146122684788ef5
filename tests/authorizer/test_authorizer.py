"""The REQUEST authorizer on moto: a key in either header becomes its tenant; all else is a typed deny."""

from __future__ import annotations

import copy
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tts_common.exceptions import DependencyUnavailable, InvalidApiKey, MissingApiKey
from tts_common.tenancy import (
    CONTEXT_ERROR_CODE,
    CONTEXT_ERROR_MESSAGE,
    CONTEXT_KEY_ID,
    CONTEXT_TENANT,
    ApiKeyStore,
)

EVENT = json.loads((Path(__file__).parent / "events" / "request_authorizer.json").read_text())
# The whole stage of the API the request came to: every method, every path.
STAGE_ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/*/*"


def request(headers: dict[str, str] | None) -> dict[str, Any]:
    """The authorizer event of a request with exactly these headers (beside the gateway's own)."""
    event = copy.deepcopy(EVENT)
    if headers is None:
        event["headers"] = None
        event["multiValueHeaders"] = None
        return event
    event["headers"].update(headers)
    event["multiValueHeaders"].update({name: [value] for name, value in headers.items()})
    return event


@pytest.fixture
def store(resources) -> ApiKeyStore:
    import boto3

    return ApiKeyStore(
        dynamodb_client=boto3.client("dynamodb", region_name="us-east-1"),
        table_name=resources.key_table_name,
    )


@pytest.fixture
def decide(store):
    from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
        APIGatewayAuthorizerRequestEvent,
    )

    from tts_authorizer.authorize import authorize

    def run(event: dict[str, Any]) -> dict[str, Any]:
        return authorize(APIGatewayAuthorizerRequestEvent(event), store=store)

    return run


@pytest.fixture
def handler(resources):
    """The Lambda entry point, its key store built afresh from this test's environment."""
    from tts_authorizer import handler as module
    from tts_common.settings import cached_settings

    cached_settings.cache_clear()
    module._store.cache_clear()
    yield module.handler
    module._store.cache_clear()


def statements(response: dict[str, Any]) -> list[dict[str, Any]]:
    return response["policyDocument"]["Statement"]


def assert_allowed(response: dict[str, Any], *, key: str, tenant: str, key_id: str) -> None:
    assert statements(response) == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [STAGE_ARN]}
    ]
    assert response["context"] == {CONTEXT_TENANT: tenant, CONTEXT_KEY_ID: key_id}
    assert response["usageIdentifierKey"] == key, "the usage plan meters the key itself"
    assert response["principalId"] == key_id


def assert_denied(response: dict[str, Any], error: MissingApiKey | InvalidApiKey) -> None:
    assert statements(response) == [
        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": [STAGE_ARN]}
    ]
    assert response["context"] == {CONTEXT_ERROR_CODE: error.code, CONTEXT_ERROR_MESSAGE: error.message}
    assert "usageIdentifierKey" not in response


def test_a_key_in_x_api_key_is_allowed_as_its_tenant(decide, store, now):
    # Given
    key, record = store.create("acme", "ci", now)

    # When
    response = decide(request({"x-api-key": key}))

    # Then
    assert_allowed(response, key=key, tenant="acme", key_id=record.key_id)


@pytest.mark.parametrize(
    ("name", "value"), [("Authorization", "Bearer {key}"), ("authorization", "bearer {key}")]
)
def test_a_bearer_key_is_allowed_as_its_tenant(decide, store, now, name, value):
    key, record = store.create("globex", "sdk", now)

    response = decide(request({name: value.format(key=key)}))

    assert_allowed(response, key=key, tenant="globex", key_id=record.key_id)


def test_x_api_key_wins_over_a_bearer_header(decide, store, now):
    first, record = store.create("acme", "a", now)
    second, _ = store.create("globex", "b", now)

    response = decide(request({"X-Api-Key": first, "Authorization": f"Bearer {second}"}))

    assert_allowed(response, key=first, tenant="acme", key_id=record.key_id)


@pytest.mark.parametrize(
    "headers",
    [{}, None, {"Authorization": "Basic dXNlcjpwYXNz"}, {"x-api-key": "  "}, {"Authorization": "Bearer"}],
)
def test_no_key_is_denied_as_missing(decide, headers):
    assert_denied(decide(request(headers)), MissingApiKey())


@pytest.mark.parametrize(
    "make_key",
    [
        lambda key: "not-a-key",
        lambda key: "tts_0123456789abcdef_" + "A" * 43,  # well-formed, never issued
        lambda key: key[:-1] + ("B" if key[-1] != "B" else "C"),  # the right id, the wrong secret
    ],
    ids=["malformed", "unknown", "wrong-secret"],
)
def test_a_key_that_is_not_ours_is_denied_as_invalid(decide, store, now, make_key):
    key, _ = store.create("acme", "ci", now)

    assert_denied(decide(request({"x-api-key": make_key(key)})), InvalidApiKey())


def test_a_revoked_key_is_denied_at_its_next_request(decide, store, now):
    # Given: a key that works
    key, record = store.create("acme", "ci", now)
    assert statements(decide(request({"x-api-key": key})))[0]["Effect"] == "Allow"

    # When
    store.revoke(record.key_id, now)

    # Then: no cache between the table and the decision
    assert_denied(decide(request({"x-api-key": key})), InvalidApiKey())
    assert_denied(decide(request({"Authorization": f"Bearer {key}"})), InvalidApiKey())


def test_an_unreachable_key_table_raises_for_the_gateways_503(store, now, resources):
    import boto3
    from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
        APIGatewayAuthorizerRequestEvent,
    )

    from tts_authorizer.authorize import authorize

    key, _ = store.create("acme", "ci", now)
    missing = ApiKeyStore(
        dynamodb_client=boto3.client("dynamodb", region_name="us-east-1"), table_name="no-such-table"
    )

    with pytest.raises(DependencyUnavailable):
        authorize(APIGatewayAuthorizerRequestEvent(request({"x-api-key": key})), store=missing)


@pytest.fixture
def log_stream():
    """What the Powertools loggers write: they keep the real stdout (FACTS.md), so point them at a buffer."""
    from tts_authorizer.authorize import logger as decision_logger

    stream = io.StringIO()
    handlers = [
        h for h in logging.getLogger(decision_logger.service).handlers if isinstance(h, logging.StreamHandler)
    ]
    previous = [h.setStream(stream) for h in handlers]
    yield stream
    for h, old in zip(handlers, previous, strict=True):
        h.setStream(old)


def test_the_handler_decides_and_never_logs_the_key(handler, store, now, lambda_context, log_stream):
    key, record = store.create("acme", "ci", now)

    allowed = handler(request({"x-api-key": key}), lambda_context)
    denied = handler(request({"Authorization": f"Bearer {key}x"}), lambda_context)

    assert_allowed(allowed, key=key, tenant="acme", key_id=record.key_id)
    assert_denied(denied, InvalidApiKey())
    logs = log_stream.getvalue()
    assert "key accepted" in logs
    assert "key refused" in logs
    assert record.key_id in logs
    assert key not in logs
    assert key.rsplit("_", 1)[1] not in logs, "not even the secret part"
