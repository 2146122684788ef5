"""Adapters built from settings: the one place entry points turn configuration into collaborators."""

from __future__ import annotations

from tts_common.adapters.aws import ClientTimeouts, client
from tts_common.adapters.events import EventPublisher
from tts_common.adapters.s3 import AudioStore
from tts_common.adapters.sqs import JobQueue
from tts_common.credentials import CredentialStore
from tts_common.settings import AwsSettings, ServiceSettings
from tts_common.storage.models import records_for
from tts_common.storage.repository import TaskRepository
from tts_common.tenancy import ApiKeyStore


def repository_from(settings: ServiceSettings) -> TaskRepository:
    records = records_for(
        settings.table_name,
        settings.aws_region,
        settings.aws_endpoint_url,
        ClientTimeouts.from_settings(settings),
    )
    return TaskRepository(records, ttl_days=settings.task_ttl_days)


def audio_store_from(settings: ServiceSettings) -> AudioStore:
    return AudioStore(s3_client=client("s3", settings), bucket=settings.bucket_name)


def job_queue_from(settings: ServiceSettings) -> JobQueue:
    return JobQueue(sqs_client=client("sqs", settings), queue_url=settings.jobs_queue_url)


def publisher_from(settings: ServiceSettings) -> EventPublisher:
    return EventPublisher(sns_client=client("sns", settings), topic_arn=settings.events_topic_arn)


def credential_store_from(
    settings: AwsSettings, *, table_name: str, kms_key_id: str | None = None
) -> CredentialStore:
    """The SigV4 credentials in the key table, sealed with KMS (tts_common.credentials): the Polly routes."""
    return CredentialStore(
        dynamodb_client=client("dynamodb", settings),
        table_name=table_name,
        kms_client=client("kms", settings),
        kms_key_id=kms_key_id,
    )


def key_store_from(settings: AwsSettings, *, table_name: str) -> ApiKeyStore:
    """The key table (tts_common.tenancy): the authorizer, the API's local resolution and `tts-admin`."""
    return ApiKeyStore(dynamodb_client=client("dynamodb", settings), table_name=table_name)
