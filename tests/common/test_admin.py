"""`tts-admin keys create|list|revoke` against a deployment (CloudFormation outputs, API Gateway, DynamoDB on
in-process moto) and against the local stack (moto's server on a free port), read back as JSON."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tts_common import admin
from tts_common.tenancy import OUTPUT_API_URL, OUTPUT_KEY_TABLE, OUTPUT_USAGE_PLAN, ApiKeyStore

REGION = "us-east-1"
STACK = "TtsService"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = admin.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def as_json(*argv: str) -> Any:
    code, out, err = run(*argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def deployment(resources) -> dict[str, str]:
    """A deployed stack as tts-admin sees it: its outputs name the key table and the usage plan."""
    gateway = boto3.client("apigateway", region_name=REGION)
    api = gateway.create_rest_api(name="tts")
    plan = gateway.create_usage_plan(name="tenants", throttle={"rateLimit": 10, "burstLimit": 20})
    outputs = {
        OUTPUT_KEY_TABLE: resources.key_table_name,
        OUTPUT_USAGE_PLAN: plan["id"],
        OUTPUT_API_URL: api["id"],
    }
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=STACK, TemplateBody=json.dumps(template)
    )
    return outputs


def test_create_list_revoke_on_a_deployment(deployment, resources) -> None:
    gateway = boto3.client("apigateway", region_name=REGION)
    target = ("--stack", STACK, "--region", REGION)

    # When: a key is created for acme
    created = as_json(*target, "keys", "create", "--tenant", "acme", "--name", "ci")

    # Then: the table resolves it to acme, and it is an API Gateway key of the usage plan with that value
    key, key_id = created["key"], created["key_id"]
    assert (created["tenant_id"], created["name"], created["active"]) == ("acme", "ci", True)
    store = ApiKeyStore(
        dynamodb_client=boto3.client("dynamodb", region_name=REGION), table_name=resources.key_table_name
    )
    principal = store.resolve(key)
    assert principal is not None
    assert principal.tenant_id == "acme"
    [bound] = gateway.get_usage_plan_keys(usagePlanId=deployment[OUTPUT_USAGE_PLAN])["items"]
    assert bound["value"] == key
    assert bound["name"] == f"tts-{key_id}"

    # ...and lists show it, per tenant, without the key
    as_json(*target, "keys", "create", "--tenant", "globex")
    listed = as_json(*target, "keys", "list", "--tenant", "acme")
    assert [k["key_id"] for k in listed] == [key_id]
    assert key not in json.dumps(as_json(*target, "keys", "list"))
    assert len(as_json(*target, "keys", "list")) == 2

    # When: it is revoked
    revoked = as_json(*target, "keys", "revoke", key_id)

    # Then: the table refuses it and API Gateway no longer has it
    assert revoked["active"] is False
    assert revoked["revoked_at"] is not None
    assert store.resolve(key) is None
    names = [k["name"] for k in gateway.get_api_keys()["items"]]
    assert f"tts-{key_id}" not in names
    assert len(names) == 1


def test_the_plain_output_shows_the_key_once_and_lists_never(deployment) -> None:
    target = ("--stack", STACK, "--region", REGION)
    code, out, _ = run(*target, "keys", "create", "--tenant", "acme")
    key = out.splitlines()[0]
    assert code == 0
    assert key.startswith("tts_")
    assert "shown once" in out

    code, listing, _ = run(*target, "keys", "list")
    assert code == 0
    assert key not in listing
    assert "acme" in listing
    assert "active" in listing


def test_errors_have_their_exit_codes(deployment) -> None:
    target = ("--stack", STACK, "--region", REGION)
    assert run(*target, "keys", "revoke", "0" * 16)[0] == admin.EXIT_NOT_FOUND
    assert run(*target, "keys", "create", "--tenant", "Not Valid")[0] == admin.EXIT_USAGE
    code, _, err = run("--stack", "NoSuchStack", "--region", REGION, "keys", "list")
    assert code == admin.EXIT_USAGE
    assert "NoSuchStack" in err
    with pytest.raises(SystemExit):
        run("keys", "list")  # neither --stack nor --local


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def local_stack() -> Iterator[str]:
    """moto's server with the local stack's key table, as `make run` provisions it."""
    from moto.server import ThreadedMotoServer

    from local.provision import provision

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        assert provision(endpoint_url=endpoint).key_table_name == admin.DEFAULT_LOCAL_KEY_TABLE
        yield endpoint
    finally:
        server.stop()


def test_create_list_revoke_on_the_local_stack(local_stack) -> None:
    target = ("--local", "--endpoint-url", local_stack)

    created = as_json(*target, "keys", "create", "--tenant", "acme")
    listed = as_json(*target, "keys", "list")
    revoked = as_json(*target, "keys", "revoke", created["key_id"])

    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert listed[0]["active"] is True
    assert revoked["active"] is False
    store = ApiKeyStore(
        dynamodb_client=boto3.client("dynamodb", region_name=REGION, endpoint_url=local_stack),
        table_name=admin.DEFAULT_LOCAL_KEY_TABLE,
    )
    assert store.resolve(created["key"]) is None
