"""The API: REST API → the FastAPI function, tenant keys metered by a usage plan, logs and traces, least
privilege. The key authorizer and the gateway's own answers: test_infra_tenancy.py."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match
from infra_helpers import (
    Assembly,
    actions_of,
    function_with_handler,
    methods_by_path,
    policy_statements_of_role,
    render,
)

from infra import constants

pytestmark = pytest.mark.infra

SERVICE_ENV = {
    "TASKS_TABLE_NAME",
    "AUDIO_BUCKET_NAME",
    "JOBS_QUEUE_URL",
    "EVENTS_TOPIC_ARN",
    "TTS_LANGUAGES",
    "TTS_MODEL_TEMPLATE",
    "TTS_MODEL_OVERRIDES",
    "TASK_TTL_DAYS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}


def test_api_function_runs_the_mangum_handler_with_the_layer(lambda_app: Assembly) -> None:
    props = function_with_handler(lambda_app, constants.API_HANDLER)["Properties"]
    assert props["Runtime"] == "python3.11"
    assert props["Architectures"] == ["x86_64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert len(props["Layers"]) == 1
    assert props["Timeout"] < 29, "API Gateway gives up after 29 s"
    env = props["Environment"]["Variables"]
    assert SERVICE_ENV | {"MAX_TEXT_CHARS", "PRESIGN_EXPIRY_S", "SERVICE_VERSION"} <= set(env)
    assert env["TTS_LANGUAGES"] == ",".join(lambda_app.config.served_languages.codes)
    assert env["TTS_MODEL_TEMPLATE"] == lambda_app.config.model_template
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == lambda_app.config.metrics_namespace
    assert env["POWERTOOLS_LOG_LEVEL"] == lambda_app.config.log_level
    assert env["TASK_TTL_DAYS"] == str(lambda_app.config.retention_days)


def test_every_method_needs_an_api_key_and_is_validated(lambda_app: Assembly) -> None:
    methods = methods_by_path(lambda_app)
    # The try-it page's two GETs are the only ones without a key (test_infra_ui.py).
    assert set(methods) == {("ANY", "/"), ("ANY", "/{proxy+}"), ("GET", "/ui"), ("GET", "/ui/{file}")}
    for (_, path), props in methods.items():
        if not path.startswith("/ui"):
            assert props["ApiKeyRequired"] is True
            assert props["AuthorizationType"] == "CUSTOM"
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert "RequestValidatorId" in props
    lambda_app.service.has_resource_properties(
        "AWS::ApiGateway::RequestValidator", {"ValidateRequestParameters": True}
    )


def test_stage_logs_traces_and_meters(lambda_app: Assembly) -> None:
    lambda_app.service.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": lambda_app.config.stage,
            "TracingEnabled": True,
            "AccessLogSetting": {
                "DestinationArn": Match.any_value(),
                "Format": Match.string_like_regexp("apiKeyId.*tenantId.*keyId"),
            },
            "MethodSettings": Match.array_with(
                [
                    Match.object_like(
                        {"LoggingLevel": "ERROR", "MetricsEnabled": True, "DataTraceEnabled": False}
                    )
                ]
            ),
        },
    )
    lambda_app.service.resource_count_is("AWS::ApiGateway::Account", 1)


def test_usage_plan_throttles_and_caps_each_key(lambda_app: Assembly) -> None:
    config = lambda_app.config
    lambda_app.service.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {"RateLimit": config.api_throttle_rate, "BurstLimit": config.api_throttle_burst},
            "Quota": {"Limit": config.api_quota_per_day, "Period": "DAY"},
            "ApiStages": Match.array_with([Match.object_like({"ApiId": Match.any_value()})]),
        },
    )
    # No key in the template: `tts-admin keys create` adds each tenant key to the plan.
    lambda_app.service.resource_count_is("AWS::ApiGateway::ApiKey", 0)
    lambda_app.service.resource_count_is("AWS::ApiGateway::UsagePlanKey", 0)


def test_cors_is_off_unless_origins_are_configured(lambda_app: Assembly, ecs_app: Assembly) -> None:
    plain = lambda_app.resources(lambda_app.service_name, "AWS::ApiGateway::GatewayResponse")
    assert "Access-Control" not in render(plain)
    options = [
        m
        for m in ecs_app.resources(ecs_app.service_name, "AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "OPTIONS"
    ]
    assert options, "preflight methods expected when cors_origins is set"
    assert "https://app.example.com" in render(options)
    # Every answer of the gateway's own (a refused key, throttled) reaches a browser's script.
    responses = ecs_app.resources(ecs_app.service_name, "AWS::ApiGateway::GatewayResponse")
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "ACCESS_DENIED", "THROTTLED"} <= {
        r["Properties"]["ResponseType"] for r in responses.values()
    }
    for response in responses.values():
        headers = response["Properties"]["ResponseParameters"]
        assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == "'https://app.example.com'"


def test_api_role_holds_only_what_the_api_does(lambda_app: Assembly) -> None:
    function = function_with_handler(lambda_app, constants.API_HANDLER)
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = policy_statements_of_role(lambda_app, role_id)
    actions = {action for statement in statements for action in actions_of(statement)}
    by_action = {action: render(s["Resource"]) for s in statements for action in actions_of(s)}

    assert "/audio/*" in by_action["s3:GetObject"]
    assert "/inputs/*" in by_action["s3:PutObject"]
    assert {"sqs:SendMessage", "sns:Publish", "dynamodb:PutItem", "dynamodb:Query"} <= actions
    assert not any(action.endswith(":*") or action == "*" for action in actions)
    assert not any(a.startswith(("s3:Delete", "sqs:ReceiveMessage", "sqs:DeleteMessage")) for a in actions)
