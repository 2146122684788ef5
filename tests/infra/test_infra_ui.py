"""The try-it page on AWS: its static files open without a key (GET /ui, /ui/{file} only), everything else
stays behind the authorizer, and the audio bucket lets the page's origin read the speech marks."""

from __future__ import annotations

from typing import Any

import pytest
from infra_helpers import Assembly, methods_by_path, render

from infra.capabilities import api as api_capability
from infra.capabilities.audio_bucket import API_GATEWAY_ORIGIN

pytestmark = pytest.mark.infra

PAGE_METHODS = {("GET", "/ui"), ("GET", "/ui/{file}")}


def _nag_acknowledged(props_owner: dict[str, Any]) -> set[str]:
    return {
        ack["id"] for ack in props_owner.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    }


def _method_resources(app: Assembly) -> dict[tuple[str, str], dict[str, Any]]:
    """Whole method resources (Metadata included) keyed as methods_by_path keys their properties."""
    by_props = {
        id(r["Properties"]): r for r in app.resources(app.service_name, "AWS::ApiGateway::Method").values()
    }
    return {key: by_props[id(props)] for key, props in methods_by_path(app).items()}


def test_the_page_path_is_the_apis_route() -> None:
    from tts_api.routes import ui

    assert ui.router.prefix == f"/{api_capability.PAGE_PATH}"
    # Every asset is one path segment under /ui, so `ui/{file}` covers them all.
    assert all("/" not in name for name in ui.ASSETS)


@pytest.mark.parametrize("app_name", ["lambda_app", "ecs_app"])
def test_the_page_opens_without_a_key(app_name: str, request: pytest.FixtureRequest) -> None:
    app: Assembly = request.getfixturevalue(app_name)
    methods = methods_by_path(app)
    page = {key: props for key, props in methods.items() if key[1].startswith("/ui")}
    # GET only (plus the CORS preflight when origins are configured): no way to write through the open door.
    assert {key for key in page if key[0] != "OPTIONS"} == PAGE_METHODS
    proxy_uri = render(methods[("ANY", "/{proxy+}")]["Integration"]["Uri"])
    for key in PAGE_METHODS:
        props = page[key]
        assert props["AuthorizationType"] == "NONE"
        assert "AuthorizerId" not in props
        assert not props.get("ApiKeyRequired", False)
        # The same function serves the page (routes/ui.py).
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert render(props["Integration"]["Uri"]) == proxy_uri
    assert page[("GET", "/ui/{file}")]["RequestParameters"] == {"method.request.path.file": True}


@pytest.mark.parametrize("app_name", ["lambda_app", "ecs_app"])
def test_every_other_method_keeps_the_authorizer(app_name: str, request: pytest.FixtureRequest) -> None:
    app: Assembly = request.getfixturevalue(app_name)
    (authorizer_id,) = app.resources(app.service_name, "AWS::ApiGateway::Authorizer")
    others = {
        key: props
        for key, props in methods_by_path(app).items()
        if key not in PAGE_METHODS and key[0] != "OPTIONS"
    }
    assert {("ANY", "/"), ("ANY", "/{proxy+}")} <= set(others)
    for props in others.values():
        assert props["AuthorizationType"] == "CUSTOM"
        assert props["AuthorizerId"] == {"Ref": authorizer_id}
        assert props["ApiKeyRequired"] is True


def test_the_open_methods_are_acknowledged_on_those_methods_only(lambda_app: Assembly) -> None:
    open_rules = {"AwsSolutions-APIG4", "AwsSolutions-COG4"}
    for key, resource in _method_resources(lambda_app).items():
        acknowledged = _nag_acknowledged(resource)
        if key in PAGE_METHODS:
            assert open_rules <= acknowledged, key
        else:
            assert "AwsSolutions-APIG4" not in acknowledged, key
    # Nowhere else, not on the API or the stage.
    for logical_id, resource in lambda_app.templates[lambda_app.service_name]["Resources"].items():
        if resource["Type"] != "AWS::ApiGateway::Method":
            assert "AwsSolutions-APIG4" not in _nag_acknowledged(resource), logical_id


@pytest.mark.parametrize("app_name", ["lambda_app", "ecs_app", "dev_app"])
def test_the_page_can_read_the_marks_behind_a_presigned_url(
    app_name: str, request: pytest.FixtureRequest
) -> None:
    app: Assembly = request.getfixturevalue(app_name)
    bucket = app.templates[app.stateful_name]["Resources"]["AudioBucket"]
    (rule,) = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    assert set(rule["AllowedMethods"]) == {"GET", "HEAD"}
    assert rule["MaxAge"] == 3600
    assert "AllowedHeaders" not in rule, "a plain GET: no preflight, no headers to allow"
    # Any REST API's default domain in the stack's region and partition (the API id is in the service stack).
    assert rule["AllowedOrigins"][0] == {
        "Fn::Join": ["", ["https://*.execute-api.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"}]]
    }
    assert rule["AllowedOrigins"][1:] == list(app.config.cors_origins)
    assert API_GATEWAY_ORIGIN.count("*") == 1, "S3 accepts one wildcard per origin"


def test_the_open_methods_share_one_throttle_and_keep_the_stages_logging(lambda_app: Assembly) -> None:
    stage = lambda_app.only(lambda_app.service_name, "AWS::ApiGateway::Stage")
    settings = {(s["ResourcePath"], s["HttpMethod"]): s for s in stage["Properties"]["MethodSettings"]}
    config = lambda_app.config
    for path in ("/~1ui", "/~1ui~1{file}"):
        setting = settings[(path, "GET")]
        assert setting["ThrottlingRateLimit"] == config.api_throttle_rate
        assert setting["ThrottlingBurstLimit"] == config.api_throttle_burst
        assert setting["LoggingLevel"] == settings[("/*", "*")]["LoggingLevel"]
        assert setting["MetricsEnabled"] is True
        assert setting["DataTraceEnabled"] is False
    assert "ThrottlingRateLimit" not in settings[("/*", "*")], "keyed methods: the usage plan throttles"
