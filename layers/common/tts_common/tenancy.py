"""Tenants: an API key resolves to the tenant that owns it, the same way on AWS (the Lambda authorizer) and
on the local stack (a FastAPI dependency).

A key is `tts_` and 43 random letters and digits (256 bits; alphanumeric, as an API Gateway API key value
must be). The table keeps its SHA-256, never the key itself, in an item named by the key id: the first 16 hex
digits of that hash. Resolving a key reads the item its hash names and compares the whole hashes in constant
time. Any key value works the same way, so the local stack can take a developer's own (LOCAL_API_KEY).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tts_common.adapters import DEPENDENCY_ERRORS
from tts_common.adapters.key_items import KEY_TABLE_PARTITION_KEY as KEY_TABLE_PARTITION_KEY
from tts_common.adapters.key_items import KeyItems, Revocable, iso, kind_of, optional_time, parse_time
from tts_common.exceptions import ApiKeyNotFound, InvalidInput

API_KEY_HEADER = "x-api-key"
AUTHORIZATION_HEADER = "authorization"
BEARER_SCHEME = "bearer"
KEY_PREFIX = "tts_"

# What the Lambda authorizer hands the API function in requestContext.authorizer.
CONTEXT_TENANT = "tenantId"
CONTEXT_KEY_ID = "keyId"
# What a denying authorizer hands the gateway's 401 response (the typed error body's code and message).
CONTEXT_ERROR_CODE = "errorCode"
CONTEXT_ERROR_MESSAGE = "errorMessage"

# The CloudFormation outputs `tts-admin --stack` reads from a deployment.
OUTPUT_KEY_TABLE = "ApiKeyTableName"
OUTPUT_USAGE_PLAN = "UsagePlanId"
OUTPUT_API_URL = "ApiUrl"

# The key table's schema (the local stack, the tests and the CDK app): one item per key, named by its id,
# KEY_TABLE_PARTITION_KEY (tts_common.adapters.key_items, re-exported here).
# An item's `kind` (absent: an API key); other kinds share the table (tts_common.webhook_secrets).
API_KEY_KIND = "api_key"
# The name of a key's API Gateway API key on a deployment (its value is the key itself).
GATEWAY_KEY_NAME_PREFIX = "tts-"

_KEY_ID_CHARS = 16
_SECRET_CHARS = 43
_SECRET_ALPHABET = string.ascii_letters + string.digits
# What a key given to `create` (LOCAL_API_KEY) may be: what an API Gateway API key value may be.
MIN_KEY_CHARS = 20
MAX_KEY_CHARS = 128
_GIVEN_KEY = re.compile(r"^[A-Za-z0-9_.~+/=-]+$")
TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_TENANT_ID = re.compile(TENANT_ID_PATTERN)
MAX_KEY_NAME_CHARS = 128


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant whose tasks the request may see, and the key it came with."""

    tenant_id: str
    key_id: str


@dataclass(frozen=True, slots=True)
class ApiKeyRecord(Revocable):
    """A stored key: everything but the key, which only its creator ever sees."""

    key_id: str
    tenant_id: str
    name: str
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        """What `tts-admin keys list --json` shows: no hash, no key."""
        return {
            "key_id": self.key_id,
            **self.public_fields(),
        }


def extract_key(headers: Mapping[str, str]) -> str | None:
    """The key a request presents: `x-api-key`, else `Authorization: Bearer KEY`; header names in any case."""
    lowered = {name.lower(): value for name, value in headers.items()}
    direct = (lowered.get(API_KEY_HEADER) or "").strip()
    if direct:
        return direct
    return bearer_key(lowered.get(AUTHORIZATION_HEADER))


def bearer_key(authorization: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer KEY` header (scheme in any case), else None."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != BEARER_SCHEME or not credentials.strip():
        return None
    return credentials.strip()


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str:
    """The id of a key's item: a prefix of its hash, so finding it needs neither the key nor a scan."""
    return hash_key(key)[:_KEY_ID_CHARS]


def new_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_CHARS))


def validate_given_key(key: str) -> str:
    """A key chosen by its holder (LOCAL_API_KEY) rather than drawn here."""
    if not (MIN_KEY_CHARS <= len(key) <= MAX_KEY_CHARS) or not _GIVEN_KEY.match(key):
        raise InvalidInput(
            f"a key is {MIN_KEY_CHARS} to {MAX_KEY_CHARS} characters: letters, digits and _.~+/=-"
        )
    return key


def validate_tenant_id(tenant_id: str) -> str:
    if not _TENANT_ID.match(tenant_id):
        raise InvalidInput(
            "a tenant id is 1 to 63 characters: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return tenant_id


class ApiKeyStore:
    """The key table: create, resolve, list and revoke keys. Takes a boto3 DynamoDB client (wiring builds it
    with the service's timeouts), so the authorizer, the API and `tts-admin` share this one code path."""

    def __init__(self, *, dynamodb_client: Any, table_name: str) -> None:
        self._items = KeyItems(dynamodb_client=dynamodb_client, table_name=table_name)

    @property
    def table_name(self) -> str:
        return self._items.table_name

    def create(
        self, tenant_id: str, name: str, now: datetime, *, key: str | None = None
    ) -> tuple[str, ApiKeyRecord]:
        """A new key for the tenant (drawn here unless given); returns the clear key, which is shown once
        and never stored, and its record. A given key that is already stored is refused (InvalidInput)."""
        validate_tenant_id(tenant_id)
        if len(name) > MAX_KEY_NAME_CHARS:
            raise InvalidInput(f"a key name is at most {MAX_KEY_NAME_CHARS} characters")
        key = new_key() if key is None else validate_given_key(key)
        digest = hash_key(key)
        record = ApiKeyRecord(
            key_id=digest[:_KEY_ID_CHARS], tenant_id=tenant_id, name=name, key_hash=digest, created_at=now
        )
        if not self._items.put_new(_to_item(record)):
            raise InvalidInput("this key is already stored; choose another")
        return key, record

    def resolve(self, key: str, now: datetime | None = None) -> Principal | None:
        """The principal of an active key; None for an unknown or revoked key (alike).

        `now` is accepted for callers that pass their clock; a revocation takes effect when it is written.
        """
        if not key or len(key) > MAX_KEY_CHARS:
            return None
        item = self._items.get(key_id_of(key))
        if item is None:
            return None
        record = _from_item(item)
        if not hmac.compare_digest(record.key_hash, hash_key(key)):
            return None
        if record.revoked_at is not None:
            return None
        return Principal(tenant_id=record.tenant_id, key_id=record.key_id)

    def get(self, key_id: str) -> ApiKeyRecord:
        item = self._items.get(key_id)
        if item is None:
            raise ApiKeyNotFound(key_id)
        return _from_item(item)

    def list(self, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        """Every key (of one tenant), oldest first. A scan: the table holds one small item per key."""
        kwargs: dict[str, Any] = {}
        if tenant_id is not None:
            kwargs["FilterExpression"] = "tenant_id = :t"
            kwargs["ExpressionAttributeValues"] = {":t": {"S": tenant_id}}
        # Other kinds of item share the table (a tenant's webhook secret, `kind` set): not API keys.
        records = [
            _from_item(item)
            for item in self._items.scan(**kwargs)
            if kind_of(item, API_KEY_KIND) == API_KEY_KIND
        ]
        return sorted(records, key=lambda r: (r.created_at, r.key_id))

    def revoke(self, key_id: str, now: datetime) -> ApiKeyRecord:
        """Mark the key revoked (the earliest revocation stays); ApiKeyNotFound for an unknown id."""
        item = self._items.revoke(
            key_id,
            now,
            # An API key's item (the table also holds SigV4 credentials, tts_common.credentials).
            condition="attribute_exists(#k) AND attribute_exists(key_hash)",
            names={"#k": KEY_TABLE_PARTITION_KEY},
        )
        return _from_item(item)

    def create_table(self) -> None:
        """Create the key table (the local stack and tests; the CDK app owns it on AWS)."""
        ddb = self._items.client
        try:
            ddb.create_table(
                TableName=self.table_name,
                AttributeDefinitions=[{"AttributeName": KEY_TABLE_PARTITION_KEY, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": KEY_TABLE_PARTITION_KEY, "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except ddb.exceptions.ResourceInUseException:
            return

    def ping(self) -> bool:
        try:
            self._items.client.describe_table(TableName=self.table_name)
        except DEPENDENCY_ERRORS:
            return False
        return True


def _to_item(record: ApiKeyRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        KEY_TABLE_PARTITION_KEY: {"S": record.key_id},
        "tenant_id": {"S": record.tenant_id},
        "name": {"S": record.name},
        "key_hash": {"S": record.key_hash},
        "created_at": {"S": iso(record.created_at)},
    }
    if record.revoked_at is not None:
        item["revoked_at"] = {"S": iso(record.revoked_at)}
    return item


def _from_item(item: Mapping[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=item[KEY_TABLE_PARTITION_KEY]["S"],
        tenant_id=item["tenant_id"]["S"],
        name=item.get("name", {}).get("S", ""),
        key_hash=item["key_hash"]["S"],
        created_at=parse_time(item["created_at"]["S"]),
        revoked_at=optional_time(item, "revoked_at"),
    )
