"""boto3 clients with the endpoint and region from settings (moto server locally, AWS in the cloud)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from tts_common.settings import AwsSettings

# The longest standard-mode backoff before retry i (0-based) is rand(0, 1) x min(2**i, 20) s in botocore's
# throttling case (and in every case before 1.36); newer versions wait 50 ms x 2**i for other errors.
_BACKOFF_BASE_S = 1.0
_BACKOFF_MAX_S = 20.0


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """How long one AWS call may wait: `max_attempts` attempts (the first included), each bounded by
    `connect_s` to open a connection and `read_s` for each read of the answer."""

    connect_s: float
    read_s: float
    max_attempts: int

    @classmethod
    def from_settings(cls, settings: AwsSettings) -> ClientTimeouts:
        return cls(
            connect_s=settings.aws_connect_timeout_s,
            read_s=settings.aws_read_timeout_s,
            max_attempts=settings.aws_max_attempts,
        )

    @property
    def worst_case_s(self) -> float:
        """The longest one call takes when nothing answers: every attempt times out, backoff in between."""
        backoff = sum(min(_BACKOFF_BASE_S * 2.0**i, _BACKOFF_MAX_S) for i in range(self.max_attempts - 1))
        return self.max_attempts * (self.connect_s + self.read_s) + backoff

    def botocore_config(self) -> Config:
        return Config(
            connect_timeout=self.connect_s,
            read_timeout=self.read_s,
            retries={"total_max_attempts": self.max_attempts, "mode": "standard"},
            signature_version="s3v4",
        )


def client(service: str, settings: AwsSettings) -> Any:
    return boto3.client(
        service,
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        config=ClientTimeouts.from_settings(settings).botocore_config(),
    )
