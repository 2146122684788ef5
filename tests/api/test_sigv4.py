"""tts_api.sigv4.verify against requests signed by botocore's own SigV4Auth, on a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tts_api.sigv4 import access_key_id_of, is_sigv4, signed_path, verify
from tts_common.credentials import SigningSecret
from tts_common.polly import PollyError

AKID, SECRET = "TTSAABCDEFGHIJKLMNOP", "s3cr3t/with+chars"
NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def lookup(access_key_id: str) -> SigningSecret | None:
    return SigningSecret(access_key_id, "acme", SECRET) if access_key_id == AKID else None


def signed(
    *,
    method: str = "POST",
    url: str = "https://api.example/prod/v1/synthesisTasks",
    body: bytes = b'{"Text": "Hyv\xc3\xa4\xc3\xa4 p\xc3\xa4iv\xc3\xa4\xc3\xa4"}',
    at: datetime = NOW,
    secret: str = SECRET,
    service: str = "polly",
) -> AWSRequest:
    request = AWSRequest(
        method=method, url=url, data=body, headers={"Content-Type": "application/x-amz-json-1.0"}
    )
    signer = SigV4Auth(Credentials(AKID, secret), service, "eu-north-1")
    request.context["timestamp"] = at.strftime("%Y%m%dT%H%M%SZ")
    # botocore's add_auth reads the current time: freeze it by signing through its own pieces.
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    request.headers["Host"] = urlsplit(url).netloc
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signed_headers = signer.signed_headers(signer.headers_to_sign(request))
    scope = f"{AKID}/{at:%Y%m%d}/eu-north-1/{service}/aws4_request"
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
    return request


def check(request: AWSRequest, *, now: datetime = NOW, body: bytes | None = None, extra_headers=None):
    url = urlsplit(request.url)
    headers = {k: v for k, v in request.headers.items()} | (extra_headers or {})
    return verify(
        method=request.method,
        path=url.path,
        query=parse_qsl(url.query, keep_blank_values=True),
        headers=headers,
        body=request.body if body is None else body,
        now=now,
        lookup=lookup,
    )


def error_of(request: AWSRequest, **kwargs) -> str:
    with pytest.raises(PollyError) as caught:
        check(request, **kwargs)
    return caught.value.name


def test_a_signed_request_is_its_tenants():
    principal = check(signed())

    assert (principal.tenant_id, principal.key_id) == ("acme", AKID)


def test_query_values_with_reserved_characters_verify():
    request = signed(
        method="GET",
        url="https://api.example/prod/v1/synthesisTasks?NextToken=a%2Bb%2Fc%3Dd%20e~&MaxResults=5",
        body=b"",
    )

    assert check(request).tenant_id == "acme"


def test_headers_added_on_the_way_are_ignored():
    assert check(signed(), extra_headers={"X-Forwarded-For": "1.2.3.4", "Via": "1.1 gw"}).tenant_id == "acme"


def test_a_changed_body_a_wrong_secret_or_a_skewed_clock_are_refused():
    assert error_of(signed(), body=b'{"Text": "something else"}') == "InvalidSignatureException"
    assert error_of(signed(secret="wrong")) == "InvalidSignatureException"
    assert error_of(signed(), now=NOW + timedelta(minutes=16)) == "InvalidSignatureException"
    assert error_of(signed(at=NOW + timedelta(minutes=16))) == "InvalidSignatureException"
    assert check(signed(), now=NOW + timedelta(minutes=14)).tenant_id == "acme"


def test_another_service_an_unknown_key_or_a_malformed_header_are_refused():
    assert error_of(signed(service="s3")) == "InvalidSignatureException"
    request = signed()
    request.headers.replace_header(
        "Authorization", request.headers["Authorization"].replace(AKID, "TTSAZZZZZZZZZZZZZZZZ")
    )
    assert error_of(request) == "UnrecognizedClientException"
    broken = signed()
    broken.headers.replace_header("Authorization", "AWS4-HMAC-SHA256 Credential=nonsense")
    assert error_of(broken) == "IncompleteSignatureException"
    unsigned = signed()
    del unsigned.headers["Authorization"]
    assert error_of(unsigned) == "MissingAuthenticationTokenException"


def test_host_must_be_signed():
    request = signed()
    auth = request.headers["Authorization"].replace(
        "SignedHeaders=content-type;host;x-amz-date", "SignedHeaders=content-type;x-amz-date"
    )
    request.headers.replace_header("Authorization", auth)

    assert error_of(request) == "IncompleteSignatureException"


def test_a_session_token_is_refused():
    assert error_of(signed(), extra_headers={"X-Amz-Security-Token": "t"}) == "UnrecognizedClientException"


def test_the_signed_path_keeps_the_stage_behind_api_gateway():
    event = {"path": "/v1/voices", "requestContext": {"path": "/prod/v1/voices"}}

    assert signed_path({"aws.event": event, "path": "/v1/voices"}) == "/prod/v1/voices"
    assert signed_path({"raw_path": b"/v1/synthesisTasks/a%2Fb", "path": "/v1/synthesisTasks/a/b"}) == (
        "/v1/synthesisTasks/a%2Fb"
    )


def test_the_access_key_id_is_read_without_the_secret():
    header = signed().headers["Authorization"]

    assert is_sigv4(header)
    assert not is_sigv4("Bearer tts_x")
    assert access_key_id_of(header) == AKID
    assert access_key_id_of("Bearer x") is None
