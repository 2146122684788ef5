"""`tts-admin`: manage tenants' API keys on a deployment or on the local stack.

    tts-admin --stack NAME [--region R] keys create --tenant acme [--name N] [--json]
    tts-admin --local [--endpoint-url URL] keys list [--tenant acme] [--json]
    tts-admin ... keys revoke KEY_ID [--json]
    tts-admin ... webhooks secret --tenant acme [--rotate] [--kms-key-id K] [--json]
    tts-admin ... credentials create --tenant acme [--name N] [--kms-key-id K] [--json]
    tts-admin ... credentials list [--tenant acme] [--json]
    tts-admin ... credentials revoke ACCESS_KEY_ID [--json]

`credentials` are SigV4 access keys for the Amazon Polly routes (boto3's `polly` client): the secret is
printed once and kept KMS-encrypted (tts_common.credentials); on a deployment the access key id is also an
API Gateway API key in the usage plan, so a Polly client is throttled and metered like any key.

A new key is printed once and never again (the key table holds only its hash). Against a deployment
(`--stack`, read with the operator's AWS credentials) `create` also makes the key an API Gateway API key bound
to the usage plan (the stack's outputs name the table and the plan), and `revoke` deletes that API key too.
Exit codes: 0 done, 1 a dependency failed, 2 a bad command line or configuration, 4 no such key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import boto3

from tts_common.adapters.gateway import GatewayKeys, stack_outputs
from tts_common.credentials import CredentialStore, SigningCredential
from tts_common.exceptions import (
    ApiKeyNotFound,
    ConfigurationError,
    DependencyUnavailable,
    InvalidInput,
    TTSError,
)
from tts_common.tenancy import OUTPUT_KEY_TABLE, OUTPUT_USAGE_PLAN, ApiKeyRecord, ApiKeyStore
from tts_common.webhook_secrets import (
    DEFAULT_LOCAL_KMS_ALIAS,
    KMS_KEY_ENV,
    OUTPUT_CREDENTIALS_KEY,
    WebhookSecretStore,
)

# What local/provision.py names the key table and where `make run` serves moto.
DEFAULT_LOCAL_KEY_TABLE = "tts-api-keys"
DEFAULT_LOCAL_ENDPOINT = "http://127.0.0.1:5050"
DEFAULT_LOCAL_REGION = "us-east-1"

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 4


@dataclass(frozen=True)
class Target:
    """Where the keys are: the key table, and on a deployment the usage plan's API keys."""

    store: ApiKeyStore
    gateway: GatewayKeys | None
    where: str
    # For `webhooks secret`: the tenants' webhook secrets (same table) and the KMS key that encrypts them.
    webhook_secrets: WebhookSecretStore | None = None
    # For `credentials`: the tenants' SigV4 credentials (same table, same KMS key).
    credentials: CredentialStore | None = None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tts-admin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", action="append", help="a deployed stack with the key outputs (repeatable)")
    where.add_argument("--local", action="store_true", help="the local stack (`make run`) on moto")
    parser.add_argument("--region", help="the deployment's region (else the AWS configuration's)")
    parser.add_argument(
        "--endpoint-url",
        help=f"moto's endpoint with --local (else AWS_ENDPOINT_URL, else {DEFAULT_LOCAL_ENDPOINT})",
    )
    parser.add_argument(
        "--table", help=f"the key table (default: the stack's output; {DEFAULT_LOCAL_KEY_TABLE} locally)"
    )
    commands = parser.add_subparsers(dest="resource", required=True)
    keys = commands.add_parser("keys", help="tenants' API keys").add_subparsers(dest="command", required=True)

    create = keys.add_parser("create", help="make a key for a tenant and print it (once)")
    create.add_argument("--tenant", required=True, help="the tenant id, e.g. acme")
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument("--json", action="store_true", help="one JSON object, for scripts")

    listing = keys.add_parser("list", help="the keys (never their values)")
    listing.add_argument("--tenant", help="only this tenant's")
    listing.add_argument("--json", action="store_true", help="a JSON array")

    revoke = keys.add_parser("revoke", help="stop a key working")
    revoke.add_argument("key_id")
    revoke.add_argument("--json", action="store_true", help="the revoked key as JSON")

    webhooks = commands.add_parser("webhooks", help="tenants' webhook signing secrets").add_subparsers(
        dest="command", required=True
    )
    secret = webhooks.add_parser(
        "secret", help="create (or --rotate) a tenant's webhook secret and print it (once)"
    )
    secret.add_argument("--tenant", required=True, help="the tenant id, e.g. acme")
    secret.add_argument(
        "--rotate", action="store_true", help="replace the secret (the old one still signs for 24 h)"
    )
    secret.add_argument(
        "--kms-key-id",
        help=f"the KMS key to encrypt with (else {KMS_KEY_ENV}, else the stack output "
        f"{OUTPUT_CREDENTIALS_KEY}; {DEFAULT_LOCAL_KMS_ALIAS} locally)",
    )
    secret.add_argument("--json", action="store_true", help="one JSON object, for scripts")

    creds = commands.add_parser(
        "credentials", help="tenants' SigV4 access keys (boto3's Polly client)"
    ).add_subparsers(dest="command", required=True)
    creds_create = creds.add_parser("create", help="make an access key id and secret and print them (once)")
    creds_create.add_argument("--tenant", required=True, help="the tenant id, e.g. acme")
    creds_create.add_argument("--name", default="", help="what the credentials are for")
    creds_create.add_argument(
        "--kms-key-id",
        help=f"the KMS key to encrypt the secret with (else {KMS_KEY_ENV}, else the stack output "
        f"{OUTPUT_CREDENTIALS_KEY}; {DEFAULT_LOCAL_KMS_ALIAS} locally)",
    )
    creds_create.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    creds_list = creds.add_parser("list", help="the access key ids (never the secrets)")
    creds_list.add_argument("--tenant", help="only this tenant's")
    creds_list.add_argument("--json", action="store_true", help="a JSON array")
    creds_revoke = creds.add_parser("revoke", help="stop an access key working")
    creds_revoke.add_argument("key_id", metavar="ACCESS_KEY_ID")
    creds_revoke.add_argument("--json", action="store_true", help="the revoked credential as JSON")
    return parser


def target_from(args: argparse.Namespace) -> Target:
    """The key table (and, on a deployment, the usage plan) the arguments name."""
    if args.local:
        endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or DEFAULT_LOCAL_ENDPOINT
        # moto takes any credentials; the operator's real ones are not needed (nor sent anywhere real).
        session = boto3.Session(
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            region_name=args.region or DEFAULT_LOCAL_REGION,
        )
        ddb = session.client("dynamodb", endpoint_url=endpoint)
        table = args.table or DEFAULT_LOCAL_KEY_TABLE
        secrets_store = WebhookSecretStore(
            dynamodb_client=ddb,
            kms_client=session.client("kms", endpoint_url=endpoint),
            table_name=table,
            kms_key_id=getattr(args, "kms_key_id", None)
            or os.environ.get(KMS_KEY_ENV)
            or DEFAULT_LOCAL_KMS_ALIAS,
        )
        credentials = CredentialStore(
            dynamodb_client=ddb,
            table_name=table,
            kms_client=session.client("kms", endpoint_url=endpoint),
            kms_key_id=getattr(args, "kms_key_id", None)
            or os.environ.get(KMS_KEY_ENV)
            or DEFAULT_LOCAL_KMS_ALIAS,
        )
        return Target(
            ApiKeyStore(dynamodb_client=ddb, table_name=table),
            None,
            f"local stack at {endpoint}",
            secrets_store,
            credentials,
        )
    session = boto3.Session(region_name=args.region) if args.region else boto3.Session()
    endpoint = args.endpoint_url
    outputs = stack_outputs(session.client("cloudformation", endpoint_url=endpoint), args.stack)
    table = args.table or outputs.get(OUTPUT_KEY_TABLE)
    plan = outputs.get(OUTPUT_USAGE_PLAN)
    if not table or not plan:
        missing = [
            name for name, value in ((OUTPUT_KEY_TABLE, table), (OUTPUT_USAGE_PLAN, plan)) if not value
        ]
        raise ConfigurationError(f"stack {', '.join(args.stack)} has no output {', '.join(missing)}")
    store = ApiKeyStore(dynamodb_client=session.client("dynamodb", endpoint_url=endpoint), table_name=table)
    gateway = GatewayKeys(
        apigateway_client=session.client("apigateway", endpoint_url=endpoint), usage_plan_id=plan
    )
    secrets_store = WebhookSecretStore(
        dynamodb_client=session.client("dynamodb", endpoint_url=endpoint),
        kms_client=session.client("kms", endpoint_url=endpoint),
        table_name=table,
        kms_key_id=getattr(args, "kms_key_id", None)
        or os.environ.get(KMS_KEY_ENV)
        or outputs.get(OUTPUT_CREDENTIALS_KEY),
    )
    credentials = CredentialStore(
        dynamodb_client=session.client("dynamodb", endpoint_url=endpoint),
        table_name=table,
        kms_client=session.client("kms", endpoint_url=endpoint),
        kms_key_id=getattr(args, "kms_key_id", None)
        or os.environ.get(KMS_KEY_ENV)
        or outputs.get(OUTPUT_CREDENTIALS_KEY),
    )
    return Target(store, gateway, f"stack {', '.join(args.stack)}", secrets_store, credentials)


def create_key(target: Target, *, tenant_id: str, name: str, now: datetime) -> tuple[str, ApiKeyRecord]:
    """The key in the table, then (on a deployment) in API Gateway; a failed second step undoes the first."""
    key, record = target.store.create(tenant_id, name, now)
    if target.gateway is not None:
        try:
            target.gateway.add(key_id=record.key_id, tenant_id=tenant_id, value=key)
        except DependencyUnavailable:
            target.store.revoke(record.key_id, now)
            raise
    return key, record


def revoke_key(target: Target, *, key_id: str, now: datetime) -> ApiKeyRecord:
    """Revoked in the table (the authorizer refuses it from then on, once its cache expires), and its API
    Gateway key deleted (no usage plan admits it any more)."""
    record = target.store.revoke(key_id, now)
    if target.gateway is not None:
        target.gateway.remove(key_id=key_id)
    return record


def _write(out: TextIO, text: str) -> None:
    out.write(text if text.endswith("\n") else text + "\n")


def _table(records: Sequence[ApiKeyRecord]) -> str:
    return _columns(
        ("KEY ID", "TENANT", "STATE", "CREATED", "NAME"),
        [(r.key_id, r.tenant_id, _state(r.active), r.public()["created_at"], r.name) for r in records],
    )


def _state(active: bool) -> str:
    return "active" if active else "revoked"


def _columns(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """A plain table: every column but the last (a free-form name) padded to its widest cell."""
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]) for row in table
    )


def webhook_secret(args: argparse.Namespace, target: Target, *, out: TextIO, now: datetime) -> int:
    assert target.webhook_secrets is not None
    secret = target.webhook_secrets.put(args.tenant, now, rotate=args.rotate)
    if args.json:
        _write(out, json.dumps({"tenant_id": args.tenant, "webhook_secret": secret, "rotated": args.rotate}))
    else:
        grace = " The previous secret still signs for 24 hours." if args.rotate else ""
        _write(
            out,
            f"{secret}\n\nThe webhook secret above is shown once: give it to tenant {args.tenant} now "
            f"({target.where} keeps it KMS-encrypted).{grace} Receivers verify X-TTS-Signature with it "
            "(README: Webhooks).",
        )
    return EXIT_OK


def create_credentials(
    target: Target, *, tenant_id: str, name: str, now: datetime
) -> tuple[str, SigningCredential]:
    """The credential in the table, then (on a deployment) its access key id as an API Gateway API key (the
    authorizer's usage identifier); a failed second step undoes the first."""
    assert target.credentials is not None
    secret, record = target.credentials.create(tenant_id, name, now)
    if target.gateway is not None:
        try:
            target.gateway.add(key_id=record.access_key_id, tenant_id=tenant_id, value=record.access_key_id)
        except DependencyUnavailable:
            target.credentials.revoke(record.access_key_id, now)
            raise
    return secret, record


def credentials_command(args: argparse.Namespace, target: Target, *, out: TextIO, now: datetime) -> int:
    assert target.credentials is not None
    if args.command == "create":
        secret, record = create_credentials(target, tenant_id=args.tenant, name=args.name, now=now)
        if args.json:
            public = record.public()
            _write(
                out,
                json.dumps(
                    {"aws_access_key_id": record.access_key_id, "aws_secret_access_key": secret, **public}
                ),
            )
        else:
            _write(
                out,
                f"aws_access_key_id     = {record.access_key_id}\naws_secret_access_key = {secret}\n\n"
                f"The secret above is shown once: store it now ({target.where} keeps it KMS-encrypted).\n"
                f"tenant {record.tenant_id}. Use both with boto3's Polly client and this endpoint "
                "(README: Amazon Polly).",
            )
    elif args.command == "list":
        found = target.credentials.list(args.tenant)
        if args.json:
            _write(out, json.dumps([c.public() for c in found]))
        else:
            header = ("ACCESS KEY ID", "TENANT", "STATE", "CREATED", "NAME")
            rows = [
                (c.access_key_id, c.tenant_id, _state(c.active), c.public()["created_at"], c.name)
                for c in found
            ]
            _write(out, _columns(header, rows))
    else:
        revoked = target.credentials.revoke(args.key_id, now)
        if target.gateway is not None:
            target.gateway.remove(key_id=revoked.access_key_id)
        _write(
            out,
            json.dumps(revoked.public())
            if args.json
            else f"revoked {revoked.access_key_id} ({revoked.tenant_id})",
        )
    return EXIT_OK


def run(args: argparse.Namespace, *, out: TextIO, now: datetime) -> int:
    target = target_from(args)
    if args.resource == "webhooks":
        return webhook_secret(args, target, out=out, now=now)
    if args.resource == "credentials":
        return credentials_command(args, target, out=out, now=now)
    if args.command == "create":
        key, record = create_key(target, tenant_id=args.tenant, name=args.name, now=now)
        if args.json:
            _write(out, json.dumps({"key": key, **record.public()}))
        else:
            _write(
                out,
                f"{key}\n\nThe key above is shown once: store it now ({target.where} keeps only its hash).\n"
                f"key id {record.key_id}, tenant {record.tenant_id}. Send it as `x-api-key: KEY` or "
                "`Authorization: Bearer KEY`.",
            )
    elif args.command == "list":
        records = target.store.list(args.tenant)
        _write(out, json.dumps([r.public() for r in records]) if args.json else _table(records))
    else:
        record = revoke_key(target, key_id=args.key_id, now=now)
        _write(
            out, json.dumps(record.public()) if args.json else f"revoked {record.key_id} ({record.tenant_id})"
        )
    return EXIT_OK


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    try:
        return run(args, out=out, now=datetime.now(UTC))
    except ApiKeyNotFound as exc:
        _write(err, f"tts-admin: {exc.message}")
        return EXIT_NOT_FOUND
    except (ConfigurationError, InvalidInput) as exc:
        _write(err, f"tts-admin: {exc.message}")
        return EXIT_USAGE
    except TTSError as exc:
        cause = f" ({type(exc.__cause__).__name__})" if exc.__cause__ else ""
        _write(err, f"tts-admin: {exc.message}{cause}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
