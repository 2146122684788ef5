"""boto3 clients with the endpoint and region from settings (moto server locally, AWS in the cloud)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from tts_common.settings import ServiceSettings

_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"}, signature_version="s3v4")


def client(service: str, settings: ServiceSettings) -> Any:
    return boto3.client(
        service,
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        config=_RETRIES,
    )
