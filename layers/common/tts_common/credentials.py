"""SigV4 credentials for the Amazon Polly routes: an access key id and a secret per tenant, the secret sealed
with KMS in the key table.

A SigV4 verifier needs the secret itself (it derives the signing key from it), so unlike an API key it cannot
be kept as a hash. The item (same table as tenancy's keys, `kind = "sigv4"`):

    key_id             "TTSA" + 16 base32 characters: the access key id (20 characters, as AWS's)
    kind               "sigv4"
    tenant_id, name, created_at, revoked_at?
    secret_ciphertext  KMS Encrypt of the secret under CREDENTIALS_KMS_KEY_ID, with the encryption context
                       {"tts:purpose": "sigv4", "tts:tenant": tenant, "tts:key": access key id}: an item
                       copied to another tenant or id does not decrypt; IAM grants Decrypt for this purpose.
    kms_key_arn        the key Encrypt used (audit)

Only `tts-admin` (the operator's credentials) encrypts; the API function decrypts. A lookup reads the item
consistently each time (a revocation counts at the next request) and keeps decrypted secrets in memory for
CACHE_TTL_S, keyed by the ciphertext, so KMS is called about once per key per warm function per 5 minutes.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tts_common.adapters import DEPENDENCY_ERRORS
from tts_common.adapters.key_items import (
    KEY_TABLE_PARTITION_KEY,
    KIND_ATTRIBUTE,
    KeyItems,
    Revocable,
    iso,
    kind_of,
    optional_time,
    parse_time,
)
from tts_common.exceptions import ConfigurationError, DependencyUnavailable, InvalidInput
from tts_common.tenancy import MAX_KEY_NAME_CHARS, validate_tenant_id
from tts_common.webhook_secrets import CONTEXT_PURPOSE, CONTEXT_TENANT

KIND_SIGV4 = "sigv4"
ACCESS_KEY_PREFIX = "TTSA"
_ACCESS_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_ACCESS_KEY_RANDOM_CHARS = 16
ACCESS_KEY_PATTERN = rf"^{ACCESS_KEY_PREFIX}[A-Z2-7]{{{_ACCESS_KEY_RANDOM_CHARS}}}$"
# The encryption context's keys (the webhook secrets' too); IAM conditions name
# `kms:EncryptionContext:tts:purpose`.
CONTEXT_KEY = "tts:key"
PURPOSE_SIGV4 = "sigv4"
CACHE_TTL_S = 300.0
CACHE_MAX_ENTRIES = 1024


# SigV4's Authorization header: `AWS4-HMAC-SHA256 Credential=<access key id>/<date>/<region>/<service>/...`.
SIGV4_SCHEME = "AWS4-HMAC-SHA256"
_CREDENTIAL = re.compile(r"^AWS4-HMAC-SHA256 +Credential=([A-Za-z0-9]{16,128})/")


def is_sigv4(authorization: str | None) -> bool:
    """Whether an Authorization header is SigV4 (boto3's clients sign so)."""
    return (authorization or "").strip().startswith(SIGV4_SCHEME + " ")


def access_key_id_of(authorization: str | None) -> str | None:
    """The access key id a SigV4 Authorization header names, without checking the signature (the authorizer,
    which never sees the body; the API verifies the signature)."""
    match = _CREDENTIAL.match((authorization or "").strip())
    return match[1] if match else None


def new_access_key_id() -> str:
    return ACCESS_KEY_PREFIX + "".join(
        secrets.choice(_ACCESS_KEY_ALPHABET) for _ in range(_ACCESS_KEY_RANDOM_CHARS)
    )


def new_secret() -> str:
    return secrets.token_urlsafe(30)  # 40 characters


def encryption_context(tenant_id: str, access_key_id: str) -> dict[str, str]:
    return {CONTEXT_PURPOSE: PURPOSE_SIGV4, CONTEXT_TENANT: tenant_id, CONTEXT_KEY: access_key_id}


@dataclass(frozen=True, slots=True)
class SigningCredential(Revocable):
    """A stored credential: everything but the clear secret."""

    access_key_id: str
    tenant_id: str
    name: str
    created_at: datetime
    ciphertext: bytes = field(repr=False)
    revoked_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        return {
            "access_key_id": self.access_key_id,
            **self.public_fields(),
        }


@dataclass(frozen=True, slots=True)
class SigningSecret:
    """What a verifier needs: whose key it is, and its secret (never logged or shown in a repr)."""

    access_key_id: str
    tenant_id: str
    secret: str = field(repr=False)


class CredentialStore:
    """Create, read, list and revoke SigV4 credentials in the key table; decrypt their secrets with KMS.
    Without a KMS client (the authorizer) only `active` and the table reads work."""

    def __init__(
        self,
        *,
        dynamodb_client: Any,
        table_name: str,
        kms_client: Any = None,
        kms_key_id: str | None = None,
        cache_ttl_s: float = CACHE_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._items = KeyItems(dynamodb_client=dynamodb_client, table_name=table_name)
        self._kms = kms_client
        self._kms_key_id = kms_key_id
        self._ttl = cache_ttl_s
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def create(self, tenant_id: str, name: str, now: datetime) -> tuple[str, SigningCredential]:
        """A new access key id and secret for the tenant; returns the clear secret (shown once)."""
        validate_tenant_id(tenant_id)
        if len(name) > MAX_KEY_NAME_CHARS:
            raise InvalidInput(f"a credential name is at most {MAX_KEY_NAME_CHARS} characters")
        if not self._kms_key_id:
            raise ConfigurationError("no KMS key to seal the secret with (--kms-key, or the stack's output)")
        access_key_id, secret = new_access_key_id(), new_secret()
        try:
            sealed = self._kms.encrypt(
                KeyId=self._kms_key_id,
                Plaintext=secret.encode(),
                EncryptionContext=encryption_context(tenant_id, access_key_id),
            )
        except DEPENDENCY_ERRORS as exc:
            raise DependencyUnavailable(f"KMS did not encrypt the secret: {type(exc).__name__}") from exc
        record = SigningCredential(
            access_key_id=access_key_id,
            tenant_id=tenant_id,
            name=name,
            created_at=now,
            ciphertext=bytes(sealed["CiphertextBlob"]),
        )
        item = {
            KEY_TABLE_PARTITION_KEY: {"S": access_key_id},
            KIND_ATTRIBUTE: {"S": KIND_SIGV4},
            "tenant_id": {"S": tenant_id},
            "name": {"S": name},
            "created_at": {"S": iso(now)},
            "secret_ciphertext": {"S": base64.b64encode(record.ciphertext).decode()},
            "kms_key_arn": {"S": str(sealed.get("KeyId", self._kms_key_id))},
        }
        if not self._items.put_new(item):  # a drawn id already stored: 80 random bits, so never in practice
            raise DependencyUnavailable("the key table did not answer")
        return secret, record

    def get(self, access_key_id: str) -> SigningCredential | None:
        """The stored credential (active or revoked); None when there is none by that id."""
        item = self._items.get(access_key_id)
        if item is None or kind_of(item) != KIND_SIGV4:
            return None
        return _from_item(item)

    def active(self, access_key_id: str) -> SigningCredential | None:
        """The credential when it exists and is not revoked (the authorizer's check: no decryption)."""
        if not access_key_id.startswith(ACCESS_KEY_PREFIX) or len(access_key_id) > 128:
            return None
        record = self.get(access_key_id)
        return record if record is not None and record.active else None

    def lookup(self, access_key_id: str) -> SigningSecret | None:
        """The active credential's secret; None for an unknown, revoked or undecryptable one (alike)."""
        record = self.active(access_key_id)
        if record is None:
            return None
        secret = self._decrypt(record)
        if secret is None:
            return None
        return SigningSecret(access_key_id=access_key_id, tenant_id=record.tenant_id, secret=secret)

    def _decrypt(self, record: SigningCredential) -> str | None:
        cache_key = hashlib.sha256(record.ciphertext).hexdigest()
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(cache_key)
            if cached is not None and cached[0] > now:
                return cached[1]
        kwargs: dict[str, Any] = {
            "CiphertextBlob": record.ciphertext,
            "EncryptionContext": encryption_context(record.tenant_id, record.access_key_id),
        }
        if self._kms_key_id:
            kwargs["KeyId"] = self._kms_key_id
        try:
            secret = bytes(self._kms.decrypt(**kwargs)["Plaintext"]).decode()
        except self._kms.exceptions.InvalidCiphertextException:
            return None  # sealed for another tenant or id, or not by this key: not a usable credential
        except DEPENDENCY_ERRORS as exc:
            raise DependencyUnavailable("KMS did not decrypt the credential") from exc
        with self._lock:
            if len(self._cache) >= CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[cache_key] = (now + self._ttl, secret)
        return secret

    def list(self, tenant_id: str | None = None) -> list[SigningCredential]:
        """Every credential (of one tenant), oldest first."""
        items = self._items.scan(
            FilterExpression="#kind = :sigv4" + (" AND tenant_id = :t" if tenant_id else ""),
            ExpressionAttributeNames={"#kind": KIND_ATTRIBUTE},
            ExpressionAttributeValues={":sigv4": {"S": KIND_SIGV4}}
            | ({":t": {"S": tenant_id}} if tenant_id else {}),
        )
        records = [_from_item(item) for item in items]
        return sorted(records, key=lambda r: (r.created_at, r.access_key_id))

    def revoke(self, access_key_id: str, now: datetime) -> SigningCredential:
        """Mark the credential revoked (the earliest revocation stays); ApiKeyNotFound for an unknown id."""
        item = self._items.revoke(
            access_key_id,
            now,
            condition="#kind = :sigv4",
            names={"#kind": KIND_ATTRIBUTE},
            values={":sigv4": {"S": KIND_SIGV4}},
        )
        return _from_item(item)


def _from_item(item: Mapping[str, Any]) -> SigningCredential:
    return SigningCredential(
        access_key_id=item[KEY_TABLE_PARTITION_KEY]["S"],
        tenant_id=item["tenant_id"]["S"],
        name=item.get("name", {}).get("S", ""),
        created_at=parse_time(item["created_at"]["S"]),
        ciphertext=base64.b64decode(item["secret_ciphertext"]["S"]),
        revoked_at=optional_time(item, "revoked_at"),
    )
