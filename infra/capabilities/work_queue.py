"""An encrypted, TLS-only SQS queue whose poison messages move to a dead-letter queue after N receives."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from tts_common.settings import JOBS_QUEUE_RETENTION_S

# The longest SQS keeps a message: time to inspect and redrive what failed.
DLQ_RETENTION = Duration.days(14)
# The sweeper fails a task queued longer than this (QUEUED_STALE_AFTER_S): its job is gone.
QUEUE_RETENTION = Duration.seconds(JOBS_QUEUE_RETENTION_S)


class WorkQueue(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        visibility_timeout: Duration,
        max_receive_count: int,
        retention: Duration = QUEUE_RETENTION,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            retention_period=retention,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=max_receive_count
            ),
        )
