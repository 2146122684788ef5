"""/ui: the try-it page, its security headers, and the same page through API Gateway (Mangum)."""

from __future__ import annotations

import json
import re
from importlib.resources import files

import pytest

from tests.api.support import api_event

PAGE_FILES = [("/ui", "text/html"), ("/ui/ui.js", "text/javascript"), ("/ui/ui.css", "text/css")]


def _csp(value: str) -> dict[str, list[str]]:
    directives = [part.split() for part in value.split(";") if part.strip()]
    return {d[0]: d[1:] for d in directives}


@pytest.mark.parametrize(("path", "content_type"), PAGE_FILES)
def test_page_files_are_served_with_security_headers(client, path, content_type):
    response = client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    csp = _csp(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no other origin
    assert csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]


def test_csp_allows_the_buckets_presigned_origin_and_nothing_else(client, resources):
    # Given: in-process moto presigns virtual-hosted S3 URLs for the bucket, as on AWS
    origin = f"https://{resources.bucket_name}.s3.amazonaws.com"

    csp = _csp(client.get("/ui").headers["content-security-policy"])

    assert csp["media-src"] == [origin]
    assert csp["connect-src"] == ["'self'", origin]
    assert not any("*" in source for sources in csp.values() for source in sources)


def test_csp_follows_an_endpoint_override(make_app, resources):
    from fastapi.testclient import TestClient

    from tts_api import deps

    deps.clear_caches()
    try:
        client = TestClient(make_app(aws_endpoint_url="http://127.0.0.1:5123"))
        csp = _csp(client.get("/ui").headers["content-security-policy"])
    finally:
        deps.clear_caches()

    assert csp["media-src"] == ["http://127.0.0.1:5123"]


def test_page_has_no_inline_script_or_style_and_only_relative_links(client):
    html = client.get("/ui").text

    assert re.findall(r"<script[^>]*>", html) == ['<script src="ui/ui.js" defer>']
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r" on[a-z]+=", html)  # no inline event handlers
    # Relative to the page, so that a stage prefix (/prod/ui) is kept
    assert not re.search(r'(src|href)="(/|https?:)', html)


def test_unknown_file_is_a_typed_404_and_the_slash_redirects_relatively(client):
    missing = client.get("/ui/secrets.txt")
    slash = client.get("/ui/", follow_redirects=False)

    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert slash.status_code == 308
    assert slash.headers["location"] == "../ui"


def test_the_page_is_not_in_the_api_schema(client):
    assert not any(path.startswith("/ui") for path in client.get("/openapi.json").json()["paths"])


@pytest.fixture
def handler(resources):
    from tts_api import handler as module

    return module.handler


@pytest.mark.parametrize(("path", "content_type"), PAGE_FILES)
def test_page_through_api_gateway_rest_v1_is_text_not_base64(handler, lambda_context, path, content_type):
    response = handler(api_event("rest_v1", method="GET", path=path), lambda_context)

    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is False  # the gateway passes it through as it is
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["content-type"].startswith(content_type)
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    name = path.removeprefix("/ui").removeprefix("/") or "index.html"
    assert response["body"] == files("tts_api").joinpath("static", name).read_text()


def test_page_through_api_gateway_http_v2(handler, lambda_context):
    response = handler(api_event("http_v2", method="GET", path="/ui"), lambda_context)

    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is False
    assert "<title>Serverless TTS</title>" in response["body"]
    assert json.dumps(response["headers"]).count("content-security-policy") == 1
