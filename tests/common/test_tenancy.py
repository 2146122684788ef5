"""The key store on moto, and the header rules the authorizer and the API share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tts_common.exceptions import ApiKeyNotFound, InvalidInput
from tts_common.tenancy import (
    ApiKeyStore,
    Principal,
    extract_key,
    hash_key,
    key_id_of,
)


@pytest.fixture
def store(resources) -> ApiKeyStore:
    import boto3

    return ApiKeyStore(
        dynamodb_client=boto3.client("dynamodb", region_name="us-east-1"), table_name=resources.key_table_name
    )


def test_a_new_key_resolves_to_its_tenant_and_only_its_hash_is_stored(store, resources) -> None:
    import boto3

    key, record = store.create("acme", "laptop", datetime.now(UTC))

    assert key.startswith("tts_")
    assert len(key) == 47
    assert store.resolve(key) == Principal(tenant_id="acme", key_id=record.key_id)
    assert record.key_id == key_id_of(key)
    [item] = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=resources.key_table_name)[
        "Items"
    ]
    assert item["key_hash"] == {"S": hash_key(key)}
    assert key not in str(item)


def test_keys_are_distinct_and_unknown_or_altered_keys_resolve_to_nobody(store) -> None:
    keys = {store.create("acme", "", datetime.now(UTC))[0] for _ in range(5)}

    assert len(keys) == 5
    key = next(iter(keys))
    for other in ("", "tts_", key[:-1], key + "x", key.upper(), "x" * 129, "tts_" + "A" * 43):
        assert store.resolve(other) is None, other


def test_a_revoked_key_resolves_to_nobody_and_keeps_its_first_revocation(store) -> None:
    key, record = store.create("acme", "ci", datetime.now(UTC))
    first = store.revoke(record.key_id, datetime(2030, 1, 1, tzinfo=UTC))

    again = store.revoke(record.key_id, datetime(2031, 1, 1, tzinfo=UTC))

    assert store.resolve(key) is None
    assert first.revoked_at == again.revoked_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert not again.active


def test_revoking_an_unknown_key_id_is_not_found(store) -> None:
    with pytest.raises(ApiKeyNotFound):
        store.revoke("0" * 16, datetime.now(UTC))


def test_a_given_key_is_stored_like_a_drawn_one(store) -> None:
    key, record = store.create("local", "dev", datetime.now(UTC), key="my-own-development-key-1")

    assert key == "my-own-development-key-1"
    assert store.resolve(key) == Principal(tenant_id="local", key_id=record.key_id)
    with pytest.raises(InvalidInput):
        store.create("other", "dup", datetime.now(UTC), key=key)  # never two tenants on one key
    for bad in ("short", "has spaces in it, long enough", "x" * 129):
        with pytest.raises(InvalidInput):
            store.create("local", "bad", datetime.now(UTC), key=bad)


def test_list_is_per_tenant_oldest_first_and_shows_no_key(store) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    a1 = store.create("acme", "one", t0)[1]
    store.create("globex", "other", t0.replace(day=2))
    a2 = store.create("acme", "two", t0.replace(day=3))[1]

    assert [r.key_id for r in store.list("acme")] == [a1.key_id, a2.key_id]
    assert len(store.list()) == 3
    assert set(a1.public()) == {"key_id", "tenant_id", "name", "created_at", "revoked_at", "active"}


@pytest.mark.parametrize("tenant", ["", "Acme", "a#b", "a/b", "-acme", "a" * 64, "acme tenant"])
def test_a_tenant_id_is_a_plain_lowercase_name(store, tenant) -> None:
    with pytest.raises(InvalidInput):
        store.create(tenant, "", datetime.now(UTC))


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"x-api-key": "k1"}, "k1"),
        ({"X-Api-Key": " k1 "}, "k1"),
        ({"Authorization": "Bearer k2"}, "k2"),
        ({"authorization": "bearer   k2 "}, "k2"),
        ({"AUTHORIZATION": "BEARER k2"}, "k2"),
        ({"x-api-key": "k1", "Authorization": "Bearer k2"}, "k1"),
        ({"x-api-key": "", "Authorization": "Bearer k2"}, "k2"),
        ({"Authorization": "Basic k2"}, None),
        ({"Authorization": "Bearer"}, None),
        ({}, None),
    ],
)
def test_the_key_comes_from_either_header_in_any_case(headers, key) -> None:
    assert extract_key(headers) == key
