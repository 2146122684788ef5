"""Each tenant's webhook signing secret, in the key table, encrypted with the credentials KMS key.

The secret signs (HMAC) every notification, so it must be readable, not hashed: it is stored as KMS
ciphertext bound by encryption context to its purpose and tenant (`tts:purpose = webhook`, `tts:tenant`), so a
blob copied onto another tenant's item, or used as a SigV4 secret, does not decrypt. The notifier may only
Decrypt with that purpose (its IAM condition); `tts-admin webhooks secret` encrypts with the operator's
credentials. Rotating keeps the previous secret for ROTATION_GRACE: notifications then carry two signatures.

Item: key_id = `webhook#<tenant>`, kind = `webhook_secret`, tenant_id, secret_ciphertext (B),
previous_ciphertext (B, optional), created_at, rotated_at (ISO).
"""

from __future__ import annotations

import hashlib
import secrets
import string
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from tts_common.adapters import DEPENDENCY_ERRORS
from tts_common.adapters.key_items import (
    KEY_TABLE_PARTITION_KEY,
    KIND_ATTRIBUTE,
    KeyItems,
    iso,
    kind_of,
    parse_time,
)
from tts_common.exceptions import DependencyUnavailable, InvalidInput
from tts_common.tenancy import validate_tenant_id

SECRET_PREFIX = "whsec_"
ITEM_PREFIX = "webhook#"
KIND = "webhook_secret"
PURPOSE = "webhook"
CONTEXT_PURPOSE = "tts:purpose"
CONTEXT_TENANT = "tts:tenant"
# The KMS key (id, ARN or alias) the admin command encrypts with: the credentials key (P's, stateful stack).
KMS_KEY_ENV = "CREDENTIALS_KMS_KEY_ID"
DEFAULT_LOCAL_KMS_ALIAS = "alias/tts-credentials"
# The stateful stack's output naming that key (`tts-admin --stack ... webhooks secret` reads it).
OUTPUT_CREDENTIALS_KEY = "CredentialsKeyArn"
ROTATION_GRACE = timedelta(hours=24)
_SECRET_CHARS = 43
_ALPHABET = string.ascii_letters + string.digits
_CACHE_S = 300.0


def new_secret() -> str:
    return SECRET_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_CHARS))


def item_key(tenant_id: str) -> str:
    return ITEM_PREFIX + tenant_id


def context_for(tenant_id: str) -> dict[str, str]:
    return {CONTEXT_PURPOSE: PURPOSE, CONTEXT_TENANT: tenant_id}


class WebhookSecretStore:
    """Create, rotate and read tenants' webhook secrets (boto3 DynamoDB and KMS clients)."""

    def __init__(
        self, *, dynamodb_client: Any, kms_client: Any, table_name: str, kms_key_id: str | None = None
    ) -> None:
        self._items = KeyItems(dynamodb_client=dynamodb_client, table_name=table_name)
        self._kms, self._key = kms_client, kms_key_id
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def put(self, tenant_id: str, now: datetime, *, rotate: bool = False) -> str:
        """A new secret for the tenant, returned once. A tenant with one needs `rotate` (the old one then
        still signs for ROTATION_GRACE)."""
        validate_tenant_id(tenant_id)
        if not self._key:
            raise InvalidInput(f"no KMS key to encrypt with: set {KMS_KEY_ENV} or pass --kms-key-id")
        existing = self._item(tenant_id)
        if existing is not None and not rotate:
            raise InvalidInput(f"tenant {tenant_id} already has a webhook secret; --rotate replaces it")
        secret = new_secret()
        try:
            blob = self._kms.encrypt(
                KeyId=self._key, Plaintext=secret.encode(), EncryptionContext=context_for(tenant_id)
            )["CiphertextBlob"]
        except DEPENDENCY_ERRORS as exc:
            raise DependencyUnavailable("KMS did not encrypt the webhook secret") from exc
        item: dict[str, Any] = {
            KEY_TABLE_PARTITION_KEY: {"S": item_key(tenant_id)},
            KIND_ATTRIBUTE: {"S": KIND},
            "tenant_id": {"S": tenant_id},
            "secret_ciphertext": {"B": blob},
            "created_at": {"S": existing["created_at"]["S"] if existing else iso(now)},
        }
        if existing is not None:
            item["previous_ciphertext"] = existing["secret_ciphertext"]
            item["rotated_at"] = {"S": iso(now)}
        self._items.call("put_item", Item=item)
        return secret

    def secrets_for(self, tenant_id: str, now: datetime) -> list[str]:
        """The secrets that sign now, the current first; empty when the tenant has none."""
        item = self._item(tenant_id)
        if item is None or kind_of(item) != KIND:
            return []
        found = [self._decrypt(item["secret_ciphertext"]["B"], tenant_id)]
        rotated = item.get("rotated_at", {}).get("S")
        if "previous_ciphertext" in item and rotated and now - parse_time(rotated) < ROTATION_GRACE:
            found.append(self._decrypt(item["previous_ciphertext"]["B"], tenant_id))
        return found

    def _item(self, tenant_id: str) -> Mapping[str, Any] | None:
        return self._items.get(item_key(tenant_id))

    def _decrypt(self, blob: bytes, tenant_id: str) -> str:
        digest = hashlib.sha256(blob).hexdigest() + tenant_id
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and time.monotonic() - hit[0] < _CACHE_S:
            return hit[1]
        try:
            plain = self._kms.decrypt(CiphertextBlob=blob, EncryptionContext=context_for(tenant_id))
        except DEPENDENCY_ERRORS as exc:
            raise DependencyUnavailable("KMS did not decrypt the webhook secret") from exc
        secret = bytes(plain["Plaintext"]).decode()
        with self._lock:
            self._cache[digest] = (time.monotonic(), secret)
        return secret
