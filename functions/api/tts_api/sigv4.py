"""Server-side AWS Signature Version 4 for the Amazon Polly routes, with botocore's own canonicalization.

boto3's Polly client signs `content-type;host;x-amz-date` with the payload's SHA-256 in the canonical
request (no `x-amz-content-sha256` header). The verifier rebuilds the canonical request from exactly the
headers the client says it signed (API Gateway adds X-Forwarded-*, Via, X-Amzn-Trace-Id that were never
signed), the path as the client sent it (with the stage on API Gateway) and the body, and compares signatures
in constant time. A request is refused when the signature is malformed, for another service, older or newer
than MAX_SKEW, signed without host or x-amz-date, or its key is unknown, revoked or not decryptable.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from tts_common.credentials import SIGV4_SCHEME, SigningSecret, access_key_id_of, is_sigv4
from tts_common.polly import PollyError
from tts_common.tenancy import Principal

SERVICE = "polly"
SCHEME = SIGV4_SCHEME
__all__ = ["MAX_SKEW", "SCHEME", "access_key_id_of", "is_sigv4", "signed_path", "verify"]
# AWS's window for a signed request's X-Amz-Date.
MAX_SKEW = timedelta(minutes=15)
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[A-Za-z0-9]{16,128})/(?P<date>\d{8})/"
    r"(?P<region>[a-z0-9-]{1,32})/(?P<service>[a-z0-9-]{1,32})/aws4_request, ?"
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), ?Signature=(?P<sig>[0-9a-f]{64})$"
)

Lookup = Callable[[str], SigningSecret | None]


class _ExactHeaders(SigV4Auth):  # type: ignore[misc]  # botocore has no type hints
    """botocore's SigV4 over exactly the headers the client listed."""

    def __init__(self, credentials: Credentials, region: str, signed: Sequence[str]) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = list(signed)

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name in self._signed:
            headers[name] = request.headers[name]
        return headers


def _incomplete(message: str) -> PollyError:
    return PollyError("IncompleteSignatureException", 400, message)


def _invalid(message: str) -> PollyError:
    return PollyError("InvalidSignatureException", 403, message)


def unrecognized() -> PollyError:
    return PollyError(
        "UnrecognizedClientException", 403, "The security token included in the request is invalid."
    )


def verify(
    *,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    lookup: Lookup,
) -> Principal:
    """The principal a correctly signed request comes from; a PollyError (as AWS names it) otherwise.

    `path` is the request path as the client sent it (percent-encoded; the stage included behind API
    Gateway), `query` the decoded query pairs, `headers` the request's (any case)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    authorization = lowered.get("authorization")
    if not authorization:
        raise PollyError("MissingAuthenticationTokenException", 403, "Missing Authentication Token")
    match = _AUTH.match(authorization.strip())
    if match is None:
        raise _incomplete(
            "Authorization header requires AWS4-HMAC-SHA256 with Credential, SignedHeaders and Signature"
        )
    if match["service"] != SERVICE:
        raise _invalid(f"Credential should be scoped to correct service: '{SERVICE}'.")
    if "x-amz-security-token" in lowered:
        raise unrecognized()  # no session credentials are issued here
    amz_date = lowered.get("x-amz-date", "")
    try:
        at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise _incomplete("X-Amz-Date is missing or is not of the form YYYYMMDDTHHMMSSZ") from None
    if match["date"] != amz_date[:8]:
        raise _invalid("Credential should be scoped to a valid date: the X-Amz-Date's day.")
    if abs(now - at) > MAX_SKEW:
        raise _invalid(
            f"Signature expired: {amz_date} is not within 15 minutes of the server's time "
            f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}."
        )
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed or any(name not in lowered for name in signed):
        raise _incomplete("host and x-amz-date must be signed, and every signed header present")
    claimed = lowered.get("x-amz-content-sha256")
    if claimed is not None and claimed != hashlib.sha256(body).hexdigest():
        raise _invalid("x-amz-content-sha256 does not match the body (the body must be signed)")
    secret = lookup(match["akid"])
    if secret is None:
        raise unrecognized()
    request = AWSRequest(
        method=method,
        url="http://signed" + path,
        data=body,
        headers={name: lowered[name] for name in signed},
    )
    request.params = list(query)  # decoded pairs; botocore encodes them as the client did (safe "-_.~")
    request.context["timestamp"] = amz_date
    signer = _ExactHeaders(Credentials(match["akid"], secret.secret), match["region"], signed)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["sig"]):
        raise _invalid(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return Principal(tenant_id=secret.tenant_id, key_id=secret.access_key_id)


def signed_path(scope: Mapping[str, Any]) -> str:
    """The path the client signed: on API Gateway (REST v1, through Mangum) `requestContext.path`, which keeps
    the stage (`/prod/v1/...`) that Mangum's `path` drops; under uvicorn the raw, still-encoded path."""
    event = scope.get("aws.event")
    if isinstance(event, Mapping):
        context = event.get("requestContext")
        if isinstance(context, Mapping) and isinstance(context.get("path"), str):
            return str(context["path"])
        if isinstance(event.get("path"), str):
            return str(event["path"])
    raw = scope.get("raw_path")
    if isinstance(raw, bytes | bytearray) and raw:
        return bytes(raw).decode("latin-1")
    return str(scope.get("root_path", "")) + str(scope.get("path", "/"))
