"""Tenancy on AWS: the key table, the REQUEST authorizer in front of every method, the usage plan metering
the key the authorizer returns, the gateway's own answers in the service's error shape, and the outputs
`tts-admin` reads."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from infra_helpers import (
    Assembly,
    actions_of,
    function_with_handler,
    logical_id_of,
    methods_by_path,
    policy_statements_of_role,
    render,
)

from infra import constants
from infra.capabilities import gateway_responses
from infra.capabilities.environment import KEY_TABLE_ENV
from tts_common import tenancy
from tts_common.exceptions import DependencyUnavailable, InvalidApiKey, MissingApiKey

pytestmark = pytest.mark.infra


def _authorizer(app: Assembly) -> tuple[str, dict[str, Any]]:
    found = app.resources(app.service_name, "AWS::ApiGateway::Authorizer")
    assert len(found) == 1, sorted(found)
    return next(iter(found.items()))


def _gateway_responses(app: Assembly) -> dict[str, dict[str, Any]]:
    found = app.resources(app.service_name, "AWS::ApiGateway::GatewayResponse").values()
    return {r["Properties"]["ResponseType"]: r["Properties"] for r in found}


def _rendered(template: str, context: dict[str, str]) -> Any:
    """The body API Gateway would send: each `$context.x.y` replaced as its mapping template would."""
    return json.loads(re.sub(r"\$context\.([A-Za-z.]+)", lambda m: context[m.group(1)], template))


def test_key_table_is_keyed_by_key_id_recoverable_and_retained(
    lambda_app: Assembly, dev_app: Assembly
) -> None:
    table = lambda_app.templates[lambda_app.stateful_name]["Resources"]["ApiKeysTable"]
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": tenancy.KEY_TABLE_PARTITION_KEY, "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    dev_table = dev_app.templates[dev_app.stateful_name]["Resources"]["ApiKeysTable"]
    assert dev_table["DeletionPolicy"] == "Retain", "keys outlive even a dev stack"
    assert dev_table["Properties"]["DeletionProtectionEnabled"] is False


def test_authorizer_is_an_uncached_request_authorizer_with_no_identity_source(lambda_app: Assembly) -> None:
    _, authorizer = _authorizer(lambda_app)
    props = authorizer["Properties"]
    assert props["Type"] == "REQUEST"
    # A listed identity source that is missing gets a 401 before the authorizer runs, and API Gateway needs
    # them all: either header form must reach the function, so none is listed, and without one no caching.
    assert "IdentitySource" not in props
    assert props["AuthorizerResultTtlInSeconds"] == 0
    function = function_with_handler(lambda_app, constants.AUTHORIZER_HANDLER)
    assert logical_id_of(lambda_app, lambda_app.service_name, function) in render(props["AuthorizerUri"])


def test_every_method_goes_through_the_authorizer_and_is_metered_by_its_key(lambda_app: Assembly) -> None:
    authorizer_id, _ = _authorizer(lambda_app)
    # All but the try-it page's static files (GET /ui, GET /ui/{file}: test_infra_ui.py).
    methods = [p for (_, path), p in methods_by_path(lambda_app).items() if not path.startswith("/ui")]
    assert methods
    for props in methods:
        assert props["AuthorizationType"] == "CUSTOM"
        assert props["AuthorizerId"] == {"Ref": authorizer_id}
        assert props["ApiKeyRequired"] is True, "the usage plan applies to every method"
    api = lambda_app.only(lambda_app.service_name, "AWS::ApiGateway::RestApi")
    assert api["Properties"]["ApiKeySourceType"] == "AUTHORIZER"


def test_cors_preflights_need_no_key(ecs_app: Assembly) -> None:
    options = [
        m["Properties"]
        for m in ecs_app.resources(ecs_app.service_name, "AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "OPTIONS"
    ]
    assert options
    for props in options:
        assert props.get("AuthorizationType", "NONE") == "NONE"
        assert not props.get("ApiKeyRequired", False)


def test_usage_plan_covers_the_stage_and_holds_no_key_of_its_own(lambda_app: Assembly) -> None:
    plan_id, plan = next(
        iter(lambda_app.resources(lambda_app.service_name, "AWS::ApiGateway::UsagePlan").items())
    )
    stage_id, _ = next(iter(lambda_app.resources(lambda_app.service_name, "AWS::ApiGateway::Stage").items()))
    assert plan["Properties"]["ApiStages"][0]["Stage"] == {"Ref": stage_id}
    lambda_app.service.resource_count_is("AWS::ApiGateway::ApiKey", 0)
    outputs = lambda_app.templates[lambda_app.service_name]["Outputs"]
    assert outputs[tenancy.OUTPUT_USAGE_PLAN]["Value"] == {"Ref": plan_id}


def test_tts_admin_finds_the_key_table_plan_and_url_on_the_service_stack(any_app: Assembly) -> None:
    service = any_app.templates[any_app.service_name]["Outputs"]
    stateful = any_app.templates[any_app.stateful_name]["Outputs"]
    for name in (tenancy.OUTPUT_KEY_TABLE, tenancy.OUTPUT_USAGE_PLAN, tenancy.OUTPUT_API_URL):
        assert name in service
    assert service[tenancy.OUTPUT_KEY_TABLE]["Value"] == {
        "Fn::GetStackOutput": {"StackName": any_app.stateful_name, "OutputName": tenancy.OUTPUT_KEY_TABLE}
    }
    assert stateful[tenancy.OUTPUT_KEY_TABLE]["Value"] == {"Ref": "ApiKeysTable"}
    assert stateful[constants.OUTPUT_KEY_TABLE_ARN]["Value"] == {"Fn::GetAtt": ["ApiKeysTable", "Arn"]}
    assert "ApiKeyId" not in service, "no default key any more"


def test_authorizer_reads_one_key_item_and_nothing_else(lambda_app: Assembly) -> None:
    function = function_with_handler(lambda_app, constants.AUTHORIZER_HANDLER)
    props = function["Properties"]
    env = props["Environment"]["Variables"]
    assert env[KEY_TABLE_ENV] == {
        "Fn::GetStackOutput": {"StackName": lambda_app.stateful_name, "OutputName": tenancy.OUTPUT_KEY_TABLE}
    }
    assert not {"TASKS_TABLE_NAME", "AUDIO_BUCKET_NAME", "JOBS_QUEUE_URL", "EVENTS_TOPIC_ARN"} & set(env)
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Timeout"] <= 10

    statements = policy_statements_of_role(lambda_app, props["Role"]["Fn::GetAtt"][0])
    data = [s for s in statements if not all(a.startswith("xray:") for a in actions_of(s))]
    assert data == [
        {
            "Action": "dynamodb:GetItem",
            "Effect": "Allow",
            "Resource": {
                "Fn::GetStackOutput": {
                    "StackName": lambda_app.stateful_name,
                    "OutputName": constants.OUTPUT_KEY_TABLE_ARN,
                }
            },
        }
    ]


def test_only_api_gateway_invokes_the_authorizer(lambda_app: Assembly) -> None:
    function = function_with_handler(lambda_app, constants.AUTHORIZER_HANDLER)
    function_id = logical_id_of(lambda_app, lambda_app.service_name, function)
    authorizer_id, _ = _authorizer(lambda_app)
    permissions = [
        p["Properties"]
        for p in lambda_app.resources(lambda_app.service_name, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert len(permissions) == 1
    assert permissions[0]["Principal"] == "apigateway.amazonaws.com"
    assert f'"/authorizers/", {{"Ref": "{authorizer_id}"}}' in json.dumps(permissions[0]["SourceArn"])


def test_the_api_trusts_the_authorizer_and_never_resolves_keys(lambda_app: Assembly) -> None:
    function = function_with_handler(lambda_app, constants.API_HANDLER)
    assert KEY_TABLE_ENV not in function["Properties"]["Environment"]["Variables"]
    statements = policy_statements_of_role(lambda_app, function["Properties"]["Role"]["Fn::GetAtt"][0])
    # It reads one SigV4 credential at a time for the Polly routes (tests/infra/test_infra_polly.py), no more.
    on_keys = [s for s in statements if constants.OUTPUT_KEY_TABLE_ARN in render(s["Resource"])]
    assert [actions_of(s) for s in on_keys] == [["dynamodb:GetItem"]]


def test_a_refused_key_is_a_401_with_the_authorizers_typed_error(lambda_app: Assembly) -> None:
    responses = _gateway_responses(lambda_app)
    for response_type in ("ACCESS_DENIED", "UNAUTHORIZED", "INVALID_API_KEY"):
        props = responses[response_type]
        assert props["StatusCode"] == "401"
        assert props["ResponseParameters"]["gatewayresponse.header.WWW-Authenticate"] == "'Bearer'"

    # The authorizer's deny context becomes the body, as the local stack's dependency answers it.
    for error in (MissingApiKey(), InvalidApiKey()):
        context = {
            f"authorizer.{tenancy.CONTEXT_ERROR_CODE}": error.code,
            f"authorizer.{tenancy.CONTEXT_ERROR_MESSAGE}": error.message,
        }
        body = _rendered(responses["ACCESS_DENIED"]["ResponseTemplates"]["application/json"], context)
        assert body == {"error": {"code": error.code, "message": error.message}}
    invalid = json.loads(responses["INVALID_API_KEY"]["ResponseTemplates"]["application/json"])
    assert invalid["error"]["code"] == InvalidApiKey.code


def test_gateway_errors_keep_the_services_error_shape(lambda_app: Assembly) -> None:
    responses = _gateway_responses(lambda_app)
    assert {"THROTTLED", "QUOTA_EXCEEDED", "AUTHORIZER_FAILURE", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(
        responses
    )
    for props in responses.values():
        template = props["ResponseTemplates"]["application/json"]
        # messageString is the gateway's message already quoted; every other variable sits inside quotes.
        values = {name: "x" for name in re.findall(r"\$context\.([A-Za-z.]+)", template)}
        body = _rendered(template, {**values, "error.messageString": '"Missing Authentication Token"'})
        assert set(body) == {"error"}
        assert {"code", "message"} <= set(body["error"])
    assert responses["THROTTLED"]["ResponseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    assert (
        str(lambda_app.config.api_throttle_burst)
        in responses["THROTTLED"]["ResponseTemplates"]["application/json"]
    )
    failure = responses["AUTHORIZER_FAILURE"]
    assert failure["StatusCode"] == "503"
    assert (
        json.loads(failure["ResponseTemplates"]["application/json"])["error"]["code"]
        == DependencyUnavailable.code
    )


def test_gateway_503s_ask_for_the_same_retry_as_the_apis() -> None:
    from tts_api.errors import RETRY_AFTER_S

    assert gateway_responses.RETRY_AFTER_S == RETRY_AFTER_S


def test_access_logs_name_the_tenant_and_key_id_never_the_key(lambda_app: Assembly) -> None:
    stage = lambda_app.only(lambda_app.service_name, "AWS::ApiGateway::Stage")
    fields = json.loads(stage["Properties"]["AccessLogSetting"]["Format"])
    assert fields["tenantId"] == f"$context.authorizer.{tenancy.CONTEXT_TENANT}"
    assert fields["keyId"] == f"$context.authorizer.{tenancy.CONTEXT_KEY_ID}"
    assert "apiKey" not in fields, "$context.identity.apiKey is the key itself"
