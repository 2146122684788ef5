"""Create the service's resources (what the CDK app creates on AWS) against moto, in-process or server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from tts_common.domain import TERMINAL_STATUSES
from tts_common.storage import schema
from tts_common.storage.models import records_for
from tts_common.storage.repository import create_table
from tts_common.tenancy import ApiKeyStore
from tts_common.webhook_secrets import DEFAULT_LOCAL_KMS_ALIAS, KMS_KEY_ENV

REGION = "us-east-1"


@dataclass(frozen=True)
class Resources:
    table_name: str
    key_table_name: str
    bucket_name: str
    jobs_queue_url: str
    jobs_dlq_url: str
    events_queue_url: str
    events_dlq_url: str
    events_topic_arn: str
    max_receive_count: int
    # The webhook notifier's queue (terminal events only, by the subscription's filter) and its DLQ.
    notifications_queue_url: str = ""
    notifications_dlq_url: str = ""
    # The credentials KMS key (tenants' webhook secrets; Polly access-key secrets), by its alias.
    credentials_kms_key_id: str = ""
    # A long text's parts (fan-out): a queue of their own, so whole jobs go first.
    parts_queue_url: str = ""
    parts_dlq_url: str = ""

    def environment(self) -> dict[str, str]:
        """The environment variables every function reads (see tts_common.settings)."""
        return {
            "TASKS_TABLE_NAME": self.table_name,
            "TTS_KEY_TABLE": self.key_table_name,
            "AUDIO_BUCKET_NAME": self.bucket_name,
            "JOBS_QUEUE_URL": self.jobs_queue_url,
            "EVENTS_TOPIC_ARN": self.events_topic_arn,
            "JOBS_DLQ_URL": self.jobs_dlq_url,
            "MAX_RECEIVE_COUNT": str(self.max_receive_count),
            "NOTIFICATIONS_QUEUE_URL": self.notifications_queue_url,
            KMS_KEY_ENV: self.credentials_kms_key_id,
            **(
                {"PARTS_QUEUE_URL": self.parts_queue_url, "PARTS_DLQ_URL": self.parts_dlq_url}
                if self.parts_queue_url
                else {}
            ),
        }


def provision(
    *,
    endpoint_url: str | None = None,
    prefix: str = "tts",
    max_receive_count: int = 3,
    jobs_visibility_timeout_s: int = 900,
    events_visibility_timeout_s: int = 60,
) -> Resources:
    def client(name: str):
        return boto3.client(name, region_name=REGION, endpoint_url=endpoint_url)

    sqs, sns, s3 = client("sqs"), client("sns"), client("s3")

    table_name = f"{prefix}-tasks"
    records = records_for(table_name, REGION, endpoint_url)
    create_table(records)
    client("dynamodb").update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.TTL_ATTRIBUTE},
    )

    key_table = f"{prefix}-api-keys"
    ApiKeyStore(dynamodb_client=client("dynamodb"), table_name=key_table).create_table()

    bucket = f"{prefix}-audio"
    s3.create_bucket(Bucket=bucket)

    def queue_with_dlq(name: str, visibility_s: int) -> tuple[str, str]:
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        url = sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(visibility_s),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
                ),
            },
        )["QueueUrl"]
        return url, dlq_url

    jobs_url, jobs_dlq = queue_with_dlq(f"{prefix}-jobs", jobs_visibility_timeout_s)
    parts_url, parts_dlq = queue_with_dlq(f"{prefix}-parts", jobs_visibility_timeout_s)
    events_url, events_dlq = queue_with_dlq(f"{prefix}-events", events_visibility_timeout_s)

    topic_arn = sns.create_topic(Name=f"{prefix}-lifecycle")["TopicArn"]
    events_arn = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=events_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    # The notifier: another subscriber, for terminal events only (as infra/capabilities/notifier.py).
    notifications_url, notifications_dlq = queue_with_dlq(f"{prefix}-notifications", 60)
    notifications_arn = sqs.get_queue_attributes(QueueUrl=notifications_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=notifications_arn,
        Attributes={
            "RawMessageDelivery": "true",
            "FilterPolicy": json.dumps({"status": sorted(str(s) for s in TERMINAL_STATUSES)}),
        },
    )
    kms_alias = credentials_key(client("kms"))
    return Resources(
        table_name=table_name,
        key_table_name=key_table,
        bucket_name=bucket,
        jobs_queue_url=jobs_url,
        jobs_dlq_url=jobs_dlq,
        events_queue_url=events_url,
        events_dlq_url=events_dlq,
        events_topic_arn=topic_arn,
        max_receive_count=max_receive_count,
        notifications_queue_url=notifications_url,
        notifications_dlq_url=notifications_dlq,
        credentials_kms_key_id=kms_alias,
        parts_queue_url=parts_url,
        parts_dlq_url=parts_dlq,
    )


def credentials_key(kms: Any) -> str:
    """The credentials KMS key and its alias on moto (the stateful stack's key on AWS); returns the alias."""
    aliases = {a["AliasName"] for a in kms.list_aliases().get("Aliases", [])}
    if DEFAULT_LOCAL_KMS_ALIAS not in aliases:
        key_id = kms.create_key(Description="tts credentials (local)")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=DEFAULT_LOCAL_KMS_ALIAS, TargetKeyId=key_id)
    return DEFAULT_LOCAL_KMS_ALIAS
