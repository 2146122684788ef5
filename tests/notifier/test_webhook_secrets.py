"""Tenants' webhook secrets: KMS-encrypted in the key table (moto), rotated with a grace period, created by
`tts-admin webhooks secret`, invisible to `keys list`."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.support import aws_client
from tts_common.exceptions import InvalidInput
from tts_common.webhook_secrets import SECRET_PREFIX, WebhookSecretStore, item_key


@pytest.fixture
def store(resources):
    return WebhookSecretStore(
        dynamodb_client=aws_client("dynamodb"),
        kms_client=aws_client("kms"),
        table_name=resources.key_table_name,
        kms_key_id=resources.credentials_kms_key_id,
    )


def test_a_secret_is_stored_encrypted_and_read_back(store, resources, now):
    secret = store.put("acme", now)

    assert secret.startswith(SECRET_PREFIX)
    assert len(secret) == len(SECRET_PREFIX) + 43
    item = aws_client("dynamodb").get_item(
        TableName=resources.key_table_name, Key={"key_id": {"S": item_key("acme")}}
    )["Item"]
    assert secret.encode() not in item["secret_ciphertext"]["B"]
    assert store.secrets_for("acme", now) == [secret]
    assert store.secrets_for("other", now) == []


def test_a_second_secret_needs_rotate_and_the_old_one_signs_for_a_day(store, now):
    old = store.put("acme", now)
    with pytest.raises(InvalidInput, match="--rotate"):
        store.put("acme", now)

    new = store.put("acme", now, rotate=True)

    assert store.secrets_for("acme", now + timedelta(hours=1)) == [new, old]
    assert store.secrets_for("acme", now + timedelta(hours=25)) == [new]


def test_a_ciphertext_copied_to_another_tenant_does_not_decrypt(store, resources, now):
    from tts_common.exceptions import DependencyUnavailable

    store.put("acme", now)
    ddb = aws_client("dynamodb")
    item = ddb.get_item(TableName=resources.key_table_name, Key={"key_id": {"S": item_key("acme")}})["Item"]
    ddb.put_item(
        TableName=resources.key_table_name,
        Item={**item, "key_id": {"S": item_key("mallory")}, "tenant_id": {"S": "mallory"}},
    )
    with pytest.raises(DependencyUnavailable):
        store.secrets_for("mallory", now)


def test_tts_admin_creates_and_rotates_a_secret_and_keys_list_ignores_it(resources):
    """Against a deployment: the stacks' outputs name the key table and the credentials KMS key."""
    from tts_common import admin
    from tts_common.tenancy import OUTPUT_KEY_TABLE, OUTPUT_USAGE_PLAN
    from tts_common.webhook_secrets import OUTPUT_CREDENTIALS_KEY

    kms_arn = aws_client("kms").describe_key(KeyId=resources.credentials_kms_key_id)["KeyMetadata"]["Arn"]
    outputs = {
        OUTPUT_KEY_TABLE: resources.key_table_name,
        OUTPUT_USAGE_PLAN: "plan",
        OUTPUT_CREDENTIALS_KEY: kms_arn,
    }
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    aws_client("cloudformation").create_stack(StackName="TtsService", TemplateBody=json.dumps(template))
    base = ["--stack", "TtsService", "--region", "us-east-1"]
    out = io.StringIO()
    assert admin.main([*base, "webhooks", "secret", "--tenant", "acme", "--json"], out=out) == 0
    first = json.loads(out.getvalue())["webhook_secret"]
    err = io.StringIO()
    assert admin.main([*base, "webhooks", "secret", "--tenant", "acme"], out=io.StringIO(), err=err) == 2
    assert "--rotate" in err.getvalue()
    out = io.StringIO()
    assert admin.main([*base, "webhooks", "secret", "--tenant", "acme", "--rotate"], out=out) == 0
    second = out.getvalue().splitlines()[0]
    assert second.startswith(SECRET_PREFIX)
    assert second != first

    out = io.StringIO()
    assert admin.main([*base, "keys", "list", "--json"], out=out) == 0
    assert json.loads(out.getvalue()) == []
    reader = WebhookSecretStore(
        dynamodb_client=aws_client("dynamodb"),
        kms_client=aws_client("kms"),
        table_name=resources.key_table_name,
    )
    assert reader.secrets_for("acme", datetime.now(UTC)) == [second, first]
