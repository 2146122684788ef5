"""Adapters built from settings: the one place entry points turn configuration into collaborators."""

from __future__ import annotations

from tts_common.adapters.aws import ClientTimeouts, client
from tts_common.adapters.events import EventPublisher
from tts_common.adapters.s3 import AudioStore
from tts_common.adapters.sqs import JobQueue
from tts_common.settings import ServiceSettings
from tts_common.storage.models import records_for
from tts_common.storage.repository import TaskRepository


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
