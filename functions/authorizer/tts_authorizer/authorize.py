"""The decision: resolve the presented key (tts_common.tenancy) and answer API Gateway with a policy.

An active key is allowed on every route of the stage, with the tenant in the context the API function reads
and the key itself as the usage identifier, so the usage plan meters and throttles each key. A missing,
unknown or revoked key is denied with the typed error's code and message in the context: the gateway's
ACCESS_DENIED response (infra.capabilities.gateway_responses) turns them into a 401 with the service's error
body. A key table that does not answer raises (DependencyUnavailable): the gateway answers 503.

A request signed with SigV4 (boto3's Polly client: `Authorization: AWS4-HMAC-SHA256 Credential=<id>/...`) is
decided by its access key id alone: an active credential of the key table (tts_common.credentials) is allowed
with its tenant and the id as the usage identifier (each access key id is also an API Gateway API key). The
authorizer never sees the body, so the API function verifies the signature itself, body included, and that
it names the same tenant (tts_api.routes.polly).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)

from tts_common.credentials import CredentialStore, access_key_id_of, is_sigv4
from tts_common.exceptions import InvalidApiKey, MissingApiKey, Unauthenticated
from tts_common.tenancy import (
    AUTHORIZATION_HEADER,
    CONTEXT_ERROR_CODE,
    CONTEXT_ERROR_MESSAGE,
    CONTEXT_KEY_ID,
    CONTEXT_TENANT,
    ApiKeyStore,
    extract_key,
)

# A denied caller has no identity; API Gateway still wants a principal id.
ANONYMOUS = "anonymous"

logger = Logger(child=True)


def authorize(
    event: APIGatewayAuthorizerRequestEvent,
    *,
    store: ApiKeyStore,
    credentials: CredentialStore | None = None,
) -> dict[str, Any]:
    """API Gateway's authorizer response for this request. The key is never logged."""
    # A REST event may carry `headers: null` (no headers at all); names are matched in any case.
    headers = event.get("headers") or {}
    authorization = next((v for k, v in headers.items() if k.lower() == AUTHORIZATION_HEADER), None)
    if credentials is not None and is_sigv4(authorization):
        return _authorize_sigv4(event, access_key_id_of(authorization), credentials=credentials)
    key = extract_key(headers)
    if key is None:
        return _deny(event, MissingApiKey())
    principal = store.resolve(key)
    if principal is None:
        return _deny(event, InvalidApiKey())
    logger.info("key accepted", extra={"tenant_id": principal.tenant_id, "key_id": principal.key_id})
    response = _response(
        event,
        principal_id=principal.key_id,
        context={CONTEXT_TENANT: principal.tenant_id, CONTEXT_KEY_ID: principal.key_id},
        usage_identifier_key=key,
    )
    # The whole stage, not this one method: a key is good for every route, and a decision that API Gateway
    # might ever cache must not be tied to the route it was first made for.
    response.allow_all_routes()
    return response.asdict()


def _authorize_sigv4(
    event: APIGatewayAuthorizerRequestEvent, access_key_id: str | None, *, credentials: CredentialStore
) -> dict[str, Any]:
    record = credentials.active(access_key_id) if access_key_id else None
    if record is None:
        return _deny(event, InvalidApiKey())
    logger.info("access key accepted", extra={"tenant_id": record.tenant_id, "key_id": record.access_key_id})
    response = _response(
        event,
        principal_id=record.access_key_id,
        context={CONTEXT_TENANT: record.tenant_id, CONTEXT_KEY_ID: record.access_key_id},
        usage_identifier_key=record.access_key_id,
    )
    response.allow_all_routes()
    return response.asdict()


def _deny(event: APIGatewayAuthorizerRequestEvent, error: Unauthenticated) -> dict[str, Any]:
    logger.info("key refused", extra={"code": error.code})
    response = _response(
        event,
        principal_id=ANONYMOUS,
        context={CONTEXT_ERROR_CODE: error.code, CONTEXT_ERROR_MESSAGE: error.message},
        usage_identifier_key=None,
    )
    response.deny_all_routes()
    return response.asdict()


def _response(
    event: APIGatewayAuthorizerRequestEvent,
    *,
    principal_id: str,
    context: dict[str, str],
    usage_identifier_key: str | None,
) -> APIGatewayAuthorizerResponse:
    arn = event.parsed_arn
    return APIGatewayAuthorizerResponse(
        principal_id=principal_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context=context,
        usage_identifier_key=usage_identifier_key,
        partition=arn.partition,
    )
