"""Lambda entry point: Powertools logging, tracing and metrics around the FastAPI app via Mangum."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum

from tts_api.app import create_app
from tts_api.observability import logger, metrics, tracer
from tts_common.settings import ApiSettings, cached_settings

# Read at cold start: a bad setting fails the init, naming the variable.
app = create_app(settings=cached_settings(ApiSettings))
_asgi = Mangum(app, lifespan="off")


# REST (v1) and HTTP API (v2) events both carry the request id at requestContext.requestId.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _asgi(event, context)  # type: ignore[arg-type]  # Powertools' and Mangum's context types differ
