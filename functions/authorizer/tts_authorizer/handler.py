"""Lambda entry point of the REQUEST authorizer: Powertools logging and tracing around one decision."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from tts_authorizer.authorize import authorize
from tts_common.adapters.aws import client
from tts_common.credentials import CredentialStore
from tts_common.settings import KeyStoreSettings, cached_settings
from tts_common.tenancy import ApiKeyStore
from tts_common.wiring import key_store_from

logger = Logger()
tracer = Tracer()


@cache
def _store() -> ApiKeyStore:
    settings = cached_settings(KeyStoreSettings)
    return key_store_from(settings, table_name=settings.key_table_name)


@cache
def _credentials() -> CredentialStore:
    """The SigV4 credentials in the same table: read only (no KMS client, so no secret is ever decrypted)."""
    settings = cached_settings(KeyStoreSettings)
    return CredentialStore(dynamodb_client=client("dynamodb", settings), table_name=settings.key_table_name)


# The event carries the key and the response repeats it (usageIdentifierKey): neither is logged nor traced.
# log_event=False is explicit so that POWERTOOLS_LOGGER_LOG_EVENT cannot turn event logging on.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@event_source(data_class=APIGatewayAuthorizerRequestEvent)
def handler(event: APIGatewayAuthorizerRequestEvent, context: LambdaContext) -> dict[str, Any]:
    return authorize(event, store=_store(), credentials=_credentials())
