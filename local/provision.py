"""Create the service's resources (what the CDK app creates on AWS) against moto, in-process or server."""

from __future__ import annotations

import json
from dataclasses import dataclass

import boto3

from tts_common.storage import schema
from tts_common.storage.models import records_for
from tts_common.storage.repository import create_table

REGION = "us-east-1"


@dataclass(frozen=True)
class Resources:
    table_name: str
    bucket_name: str
    jobs_queue_url: str
    jobs_dlq_url: str
    events_queue_url: str
    events_dlq_url: str
    events_topic_arn: str
    max_receive_count: int

    def environment(self) -> dict[str, str]:
        """The environment variables every function reads (see tts_common.settings)."""
        return {
            "TASKS_TABLE_NAME": self.table_name,
            "AUDIO_BUCKET_NAME": self.bucket_name,
            "JOBS_QUEUE_URL": self.jobs_queue_url,
            "EVENTS_TOPIC_ARN": self.events_topic_arn,
            "JOBS_DLQ_URL": self.jobs_dlq_url,
            "MAX_RECEIVE_COUNT": str(self.max_receive_count),
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
    return Resources(
        table_name=table_name,
        bucket_name=bucket,
        jobs_queue_url=jobs_url,
        jobs_dlq_url=jobs_dlq,
        events_queue_url=events_url,
        events_dlq_url=events_dlq,
        events_topic_arn=topic_arn,
        max_receive_count=max_receive_count,
    )
