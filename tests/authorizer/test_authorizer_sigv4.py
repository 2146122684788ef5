"""The authorizer's SigV4 branch (boto3's Polly client): an active access key id is allowed as its tenant,
with the id as the usage identifier; an unknown or revoked one is denied; the secret is never read."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.authorizer.test_authorizer import STAGE_ARN, request, statements
from tts_common.credentials import CredentialStore
from tts_common.exceptions import InvalidApiKey
from tts_common.tenancy import CONTEXT_ERROR_CODE, CONTEXT_KEY_ID, CONTEXT_TENANT, ApiKeyStore


def sigv4(access_key_id: str) -> dict[str, str]:
    return {
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key_id}/20261201/eu-north-1/polly/"
        "aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" + "0" * 64,
        "X-Amz-Date": "20261201T120000Z",
    }


@pytest.fixture
def credentials(resources) -> CredentialStore:
    """The admin's view: with KMS, to create credentials."""
    return CredentialStore(
        dynamodb_client=boto3.client("dynamodb", region_name="us-east-1"),
        table_name=resources.key_table_name,
        kms_client=boto3.client("kms", region_name="us-east-1"),
        kms_key_id=resources.credentials_kms_key_id,
    )


@pytest.fixture
def decide(resources):
    """The authorizer's decision with its own read-only credential store (no KMS client at all)."""
    from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
        APIGatewayAuthorizerRequestEvent,
    )

    from tts_authorizer.authorize import authorize

    ddb = boto3.client("dynamodb", region_name="us-east-1")
    keys = ApiKeyStore(dynamodb_client=ddb, table_name=resources.key_table_name)
    readonly = CredentialStore(dynamodb_client=ddb, table_name=resources.key_table_name)

    def run(event: dict[str, Any]) -> dict[str, Any]:
        return authorize(APIGatewayAuthorizerRequestEvent(event), store=keys, credentials=readonly)

    return run


def test_an_active_access_key_is_allowed_as_its_tenant(decide, credentials, now):
    _, record = credentials.create("acme", "polly", now)

    response = decide(request(sigv4(record.access_key_id)))

    assert statements(response) == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [STAGE_ARN]}
    ]
    assert response["context"] == {CONTEXT_TENANT: "acme", CONTEXT_KEY_ID: record.access_key_id}
    assert response["usageIdentifierKey"] == record.access_key_id
    assert response["principalId"] == record.access_key_id


@pytest.mark.parametrize("access_key_id", ["TTSAAAAAAAAAAAAAAAAA", "AKIAIOSFODNN7EXAMPLE", "nonsense"])
def test_an_unknown_access_key_is_denied(decide, access_key_id):
    response = decide(request(sigv4(access_key_id)))

    assert statements(response)[0]["Effect"] == "Deny"
    assert response["context"][CONTEXT_ERROR_CODE] == InvalidApiKey.code
    assert "usageIdentifierKey" not in response


def test_a_revoked_access_key_is_denied_at_its_next_request(decide, credentials, now):
    _, record = credentials.create("acme", "polly", now)
    assert statements(decide(request(sigv4(record.access_key_id))))[0]["Effect"] == "Allow"

    credentials.revoke(record.access_key_id, now)

    assert statements(decide(request(sigv4(record.access_key_id))))[0]["Effect"] == "Deny"


def test_an_api_key_id_is_not_an_access_key(decide, resources, now):
    """A tenant API key's item (same table) never passes as SigV4 credentials."""
    keys = ApiKeyStore(
        dynamodb_client=boto3.client("dynamodb", region_name="us-east-1"), table_name=resources.key_table_name
    )
    _, record = keys.create("acme", "ci", now)

    assert statements(decide(request(sigv4(record.key_id))))[0]["Effect"] == "Deny"


def test_the_handler_takes_sigv4_requests(resources, credentials, now, lambda_context):
    from tts_authorizer import handler as module
    from tts_common.settings import cached_settings

    cached_settings.cache_clear()
    module._store.cache_clear()
    module._credentials.cache_clear()
    _, record = credentials.create("acme", "polly", now)
    try:
        response = module.handler(request(sigv4(record.access_key_id)), lambda_context)
    finally:
        module._store.cache_clear()
        module._credentials.cache_clear()

    assert response["context"][CONTEXT_TENANT] == "acme"
