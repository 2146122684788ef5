"""`make run`'s development key: LOCAL_API_KEY when set (that value is the key), else a new one each run;
stored hashed like any other key, so the API resolves it with the code it resolves every key with."""

from __future__ import annotations

import boto3
import pytest

from local.stack import LOCAL_TENANT, development_key
from tts_common.exceptions import InvalidInput
from tts_common.tenancy import ApiKeyStore


@pytest.fixture
def store(aws):
    from local.provision import provision

    resources = provision()
    return ApiKeyStore(
        dynamodb_client=boto3.client("dynamodb", region_name="us-east-1"), table_name=resources.key_table_name
    )


def _key(store: ApiKeyStore, env: dict[str, str]) -> str:
    # In-process moto takes the table's calls whatever the endpoint: AWS's own (None) here.
    return development_key(env, endpoint=None, key_table=store.table_name)


def test_without_local_api_key_a_new_key_of_the_local_tenant(store) -> None:
    key = _key(store, {})
    principal = store.resolve(key)
    assert principal is not None
    assert principal.tenant_id == LOCAL_TENANT
    assert key.startswith("tts_")


def test_local_api_key_is_the_key(store) -> None:
    key = _key(store, {"LOCAL_API_KEY": "my-development-key-123", "LOCAL_TENANT": "dev"})
    assert key == "my-development-key-123"
    principal = store.resolve(key)
    assert principal is not None
    assert principal.tenant_id == "dev"


def test_a_local_api_key_api_gateway_would_refuse_is_refused(store) -> None:
    with pytest.raises(InvalidInput):
        _key(store, {"LOCAL_API_KEY": "short"})
