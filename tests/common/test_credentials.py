"""SigV4 credentials (tts_common.credentials) on moto's DynamoDB and KMS, and `tts-admin credentials`."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import boto3
import pytest

from tests.common.test_admin import REGION, STACK, as_json, deployment, run  # noqa: F401 (fixture)
from tts_common.credentials import ACCESS_KEY_PATTERN, CredentialStore
from tts_common.exceptions import ApiKeyNotFound, DependencyUnavailable
from tts_common.tenancy import ApiKeyStore

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Ticking:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kms():
    return boto3.client("kms", region_name=REGION)


@pytest.fixture
def store(resources, kms) -> CredentialStore:
    return CredentialStore(
        dynamodb_client=boto3.client("dynamodb", region_name=REGION),
        table_name=resources.key_table_name,
        kms_client=kms,
        kms_key_id=resources.credentials_kms_key_id,
    )


def test_a_secret_is_stored_sealed_and_read_back(store, resources):
    import re

    secret, record = store.create("acme", "polly", NOW)

    assert re.match(ACCESS_KEY_PATTERN, record.access_key_id)
    assert len(secret) == 40
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=resources.key_table_name, Key={"key_id": {"S": record.access_key_id}}
    )["Item"]
    assert secret not in json.dumps(item)
    assert item["kind"] == {"S": "sigv4"}
    found = store.lookup(record.access_key_id)
    assert found is not None
    assert (found.tenant_id, found.secret) == ("acme", secret)
    assert secret not in repr(found)
    assert secret not in repr(record)


def test_a_sealed_secret_copied_to_another_tenant_does_not_open(store, resources):
    _, record = store.create("acme", "polly", NOW)
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.update_item(
        TableName=resources.key_table_name,
        Key={"key_id": {"S": record.access_key_id}},
        UpdateExpression="SET tenant_id = :t",
        ExpressionAttributeValues={":t": {"S": "globex"}},
    )

    assert store.lookup(record.access_key_id) is None


def test_unknown_revoked_and_api_key_items_are_not_credentials(store, resources):
    _, record = store.create("acme", "polly", NOW)
    keys = ApiKeyStore(
        dynamodb_client=boto3.client("dynamodb", region_name=REGION), table_name=resources.key_table_name
    )
    _, api_key = keys.create("acme", "ci", NOW)

    assert store.lookup("TTSAAAAAAAAAAAAAAAAA") is None
    assert store.lookup(api_key.key_id) is None
    assert [k.key_id for k in keys.list()] == [api_key.key_id], "credentials are not API keys"
    with pytest.raises(ApiKeyNotFound):
        keys.revoke(record.access_key_id, NOW)
    with pytest.raises(ApiKeyNotFound):
        store.revoke(api_key.key_id, NOW)

    store.revoke(record.access_key_id, NOW)
    assert store.lookup(record.access_key_id) is None
    assert [c.active for c in store.list("acme")] == [False]


def test_decrypted_secrets_are_cached_for_a_while(resources, kms):
    clock = Ticking()
    calls: list[str] = []

    class CountingKms:
        exceptions = kms.exceptions

        def encrypt(self, **kwargs):
            return kms.encrypt(**kwargs)

        def decrypt(self, **kwargs):
            calls.append(base64.b64encode(kwargs["CiphertextBlob"]).decode())
            return kms.decrypt(**kwargs)

    store = CredentialStore(
        dynamodb_client=boto3.client("dynamodb", region_name=REGION),
        table_name=resources.key_table_name,
        kms_client=CountingKms(),
        kms_key_id=resources.credentials_kms_key_id,
        monotonic=clock,
    )
    _, record = store.create("acme", "polly", NOW)

    store.lookup(record.access_key_id)
    store.lookup(record.access_key_id)
    clock.now = 301.0
    store.lookup(record.access_key_id)

    assert len(calls) == 2


def test_an_unreachable_table_is_a_dependency_failure(resources, kms):
    missing = CredentialStore(
        dynamodb_client=boto3.client("dynamodb", region_name=REGION),
        table_name="no-such-table",
        kms_client=kms,
    )

    with pytest.raises(DependencyUnavailable):
        missing.lookup("TTSAAAAAAAAAAAAAAAAA")


def test_admin_creates_lists_and_revokes_credentials_on_a_deployment(deployment, resources):  # noqa: F811
    gateway = boto3.client("apigateway", region_name=REGION)
    target = ("--stack", STACK, "--region", REGION)

    created = as_json(*target, "credentials", "create", "--tenant", "acme", "--name", "polly")

    access_key_id, secret = created["aws_access_key_id"], created["aws_secret_access_key"]
    assert created["tenant_id"] == "acme"
    [bound] = gateway.get_usage_plan_keys(usagePlanId=deployment["UsagePlanId"])["items"]
    assert bound["value"] == access_key_id, "the access key id is the usage identifier"
    listed = as_json(*target, "credentials", "list", "--tenant", "acme")
    assert [c["access_key_id"] for c in listed] == [access_key_id]
    assert secret not in json.dumps(listed)
    assert as_json(*target, "keys", "list") == []

    revoked = as_json(*target, "credentials", "revoke", access_key_id)

    assert revoked["active"] is False
    assert gateway.get_api_keys()["items"] == []


def test_admin_prints_the_secret_once_in_plain_text(deployment):  # noqa: F811
    code, out, _ = run("--stack", STACK, "--region", REGION, "credentials", "create", "--tenant", "acme")

    assert code == 0
    assert out.startswith("aws_access_key_id     = TTSA")
    assert "aws_secret_access_key = " in out
    assert "shown once" in out
