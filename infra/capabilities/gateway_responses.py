"""What API Gateway answers itself (a refused key, throttling, its own errors), in the service's error shape.

Every body is `{"error": {"code", "message", "details"?}}` as the API's own errors (tts_api.errors), so a
client parses one shape whoever answered. A refused key is a 401 with `WWW-Authenticate: Bearer` (RFC 9110
wants the challenge on every 401): the authorizer denies (ACCESS_DENIED, 403 by default) and puts the typed
error's code and message in its context (tts_common.tenancy), so AWS and the local stack answer one body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from aws_cdk import aws_apigateway as apigw

from infra.config import DeploymentConfig
from tts_common.exceptions import DependencyUnavailable, InvalidApiKey
from tts_common.tenancy import CONTEXT_ERROR_CODE, CONTEXT_ERROR_MESSAGE

# The API's own 503s say the same (tts_api.errors.RETRY_AFTER_S; a test keeps them equal).
RETRY_AFTER_S = "2"
# A throttled key may retry after about a second: the usage plan refills its bucket at the rate per second.
THROTTLED_RETRY_AFTER_S = "1"
CHALLENGE = "Bearer"

# Codes only the gateway answers with (the API never throttles or meters by itself).
THROTTLED_CODE = "throttled"
QUOTA_EXCEEDED_CODE = "quota_exceeded"
# As the API's own: tts_api.errors (_HTTP_CODES, the 500 handler).
PAYLOAD_TOO_LARGE_CODE = "payload_too_large"
BAD_REQUEST_CODE = "bad_request"
INTERNAL_ERROR_CODE = "internal_error"


@dataclass(frozen=True, slots=True)
class GatewayError:
    """One gateway response: its type, the status it answers with (None: the type's own), body and headers."""

    response_type: apigw.ResponseType
    status: str | None
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)


def error_body(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})


def _gateway_body(code: str) -> str:
    """The gateway's own message (`messageString` is it quoted for JSON) and which response it was."""
    message = "$context.error.messageString"
    return (
        f'{{"error": {{"code": "{code}", "message": {message}, '
        '"details": {"gateway_response": "$context.error.responseType"}}}'
    )


# The denying authorizer's typed error, as the local stack's dependency answers it.
DENIED_BODY = json.dumps(
    {
        "error": {
            "code": f"$context.authorizer.{CONTEXT_ERROR_CODE}",
            "message": f"$context.authorizer.{CONTEXT_ERROR_MESSAGE}",
        }
    }
)


# botocore reads an error's code from this header first (boto3's Polly client, tts_api.routes.polly): a
# refused access key is then its UnrecognizedClientException, a throttled one its (retried)
# ThrottlingException. Clients of the API's own routes read the body, which is unchanged.
ERROR_TYPE_HEADER = "x-amzn-ErrorType"
UNRECOGNIZED_CLIENT = "UnrecognizedClientException"
THROTTLING = "ThrottlingException"


def gateway_errors(config: DeploymentConfig) -> tuple[GatewayError, ...]:
    challenge = {"WWW-Authenticate": CHALLENGE, ERROR_TYPE_HEADER: UNRECOGNIZED_CLIENT}
    invalid_key = InvalidApiKey()
    unavailable = error_body(DependencyUnavailable.code, "the API key store did not answer; retry shortly")
    return (
        # Missing, unknown or revoked key: the authorizer's Deny.
        GatewayError(apigw.ResponseType.ACCESS_DENIED, "401", DENIED_BODY, challenge),
        # Only if the authorizer ever raises `Unauthorized`; it denies instead (no Lambda error per refusal).
        GatewayError(
            apigw.ResponseType.UNAUTHORIZED,
            "401",
            error_body(invalid_key.code, invalid_key.message),
            challenge,
        ),
        # The authorizer accepted the key but the gateway holds no such API key in the usage plan: revoked on
        # the gateway side first, or made outside `tts-admin`.
        GatewayError(
            apigw.ResponseType.INVALID_API_KEY,
            "401",
            error_body(invalid_key.code, invalid_key.message),
            challenge,
        ),
        # The authorizer failed (the key table did not answer): the local stack's 503 for the same fault.
        GatewayError(
            apigw.ResponseType.AUTHORIZER_FAILURE, "503", unavailable, {"Retry-After": RETRY_AFTER_S}
        ),
        GatewayError(
            apigw.ResponseType.AUTHORIZER_CONFIGURATION_ERROR,
            "503",
            unavailable,
            {"Retry-After": RETRY_AFTER_S},
        ),
        GatewayError(
            apigw.ResponseType.THROTTLED,
            None,
            error_body(
                THROTTLED_CODE,
                f"too many requests for this key: at most {config.api_throttle_rate:g} per second "
                f"(bursts of {config.api_throttle_burst}); retry shortly",
            ),
            {"Retry-After": THROTTLED_RETRY_AFTER_S, ERROR_TYPE_HEADER: THROTTLING},
        ),
        GatewayError(
            apigw.ResponseType.QUOTA_EXCEEDED,
            None,
            error_body(
                QUOTA_EXCEEDED_CODE,
                f"this key's daily quota of {config.api_quota_per_day} requests is used up "
                "(it resets at 00:00 UTC)",
            ),
        ),
        GatewayError(
            apigw.ResponseType.REQUEST_TOO_LARGE,
            None,
            error_body(PAYLOAD_TOO_LARGE_CODE, "the request is larger than API Gateway accepts (10 MB)"),
        ),
        GatewayError(apigw.ResponseType.DEFAULT_4_XX, None, _gateway_body(BAD_REQUEST_CODE)),
        GatewayError(
            apigw.ResponseType.DEFAULT_5_XX,
            None,
            error_body(INTERNAL_ERROR_CODE, "Internal server error"),
        ),
    )


def add_gateway_responses(
    rest_api: apigw.RestApi, *, config: DeploymentConfig, cors_headers: Mapping[str, str]
) -> None:
    """Every response of `gateway_errors`, with the CORS headers a browser needs to read it (when set)."""
    for error in gateway_errors(config):
        headers = {name: f"'{value}'" for name, value in {**cors_headers, **error.headers}.items()}
        rest_api.add_gateway_response(
            f"Gateway{error.response_type.response_type}",
            type=error.response_type,
            status_code=error.status,
            response_headers=headers or None,
            templates={"application/json": error.body},
        )
