"""The key table's items, one code path for every kind that shares it: API keys (tts_common.tenancy), SigV4
credentials (tts_common.credentials) and webhook secrets (tts_common.webhook_secrets).

Takes a boto3 DynamoDB client (low-level); every read is consistent, and a table that does not answer raises
DependencyUnavailable (a failed condition is left to the caller, which knows what it means).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from tts_common.adapters import DEPENDENCY_ERRORS
from tts_common.exceptions import ApiKeyNotFound, DependencyUnavailable

# The key table's partition key: one item per key, credential or secret, named by its id.
KEY_TABLE_PARTITION_KEY = "key_id"
# An item's `kind` attribute (absent on an API key's item).
KIND_ATTRIBUTE = "kind"
_UNANSWERED = "the key table did not answer"


def iso(at: datetime) -> str:
    """How the key table writes a time: ISO 8601 in UTC, `Z`."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def optional_time(item: Mapping[str, Any], name: str) -> datetime | None:
    """A time attribute an item may lack (`revoked_at`)."""
    value = item.get(name, {}).get("S")
    return parse_time(value) if value else None


class Revocable:
    """What a stored key and a stored credential have alike (a mixin of their frozen dataclasses)."""

    __slots__ = ()
    tenant_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public_fields(self) -> dict[str, Any]:
        """What `tts-admin ... list --json` shows of it after its id (never a hash or a secret)."""
        return {
            "tenant_id": self.tenant_id,
            "name": self.name,
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
            "active": self.active,
        }


def kind_of(item: Mapping[str, Any], default: str | None = None) -> str | None:
    kind: str | None = item.get(KIND_ATTRIBUTE, {}).get("S", default)
    return kind


class KeyItems:
    """Get, put, scan and revoke the key table's items."""

    def __init__(self, *, dynamodb_client: Any, table_name: str) -> None:
        self.client = dynamodb_client
        self.table_name = table_name

    def call(self, operation: str, **kwargs: Any) -> Any:
        """One DynamoDB call on the table: DependencyUnavailable when it does not answer; a failed condition
        (ConditionalCheckFailedException) is raised as it is."""
        try:
            return getattr(self.client, operation)(TableName=self.table_name, **kwargs)
        except self.client.exceptions.ConditionalCheckFailedException:
            raise
        except DEPENDENCY_ERRORS as exc:
            # botocore's errors carry the request; no clear key or secret ever rides in it.
            raise DependencyUnavailable(_UNANSWERED) from exc

    def get(self, key_id: str) -> Mapping[str, Any] | None:
        """The item named `key_id` (a consistent read); None when there is none."""
        item: Mapping[str, Any] | None = self.call(
            "get_item", Key={KEY_TABLE_PARTITION_KEY: {"S": key_id}}, ConsistentRead=True
        ).get("Item")
        return item

    def put_new(self, item: Mapping[str, Any]) -> bool:
        """Write an item whose id is not stored yet; False (nothing written) when it is."""
        try:
            self.call(
                "put_item",
                Item=item,
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": KEY_TABLE_PARTITION_KEY},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def scan(self, **kwargs: Any) -> Iterator[Mapping[str, Any]]:
        """Every item (that a FilterExpression in kwargs keeps), page after page; a consistent scan."""
        kwargs["ConsistentRead"] = True
        while True:
            page = self.call("scan", **kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def revoke(
        self,
        key_id: str,
        now: datetime,
        *,
        condition: str,
        names: Mapping[str, str],
        values: Mapping[str, Any] | None = None,
    ) -> Mapping[str, Any]:
        """Set `revoked_at` (the earliest revocation stays) on the item when `condition` holds (it names the
        kind of item); returns the item as it now is. ApiKeyNotFound when there is no such item."""
        try:
            answer = self.call(
                "update_item",
                Key={KEY_TABLE_PARTITION_KEY: {"S": key_id}},
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                ConditionExpression=condition,
                ExpressionAttributeNames=dict(names),
                ExpressionAttributeValues={":now": {"S": iso(now)}, **(values or {})},
                ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise ApiKeyNotFound(key_id) from None
        attributes: Mapping[str, Any] = answer["Attributes"]
        return attributes
