"""The lifecycle consumer (events queue → Task records) and the sweeper that runs every few minutes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import constants
from infra.capabilities.grants import grant_objects, grant_table_read_write, grant_task_reads
from infra.capabilities.service_function import service_function
from infra.capabilities.work_queue import QUEUE_RETENTION
from infra.config import DeploymentConfig
from tts_common.domain import INPUTS_PREFIX
from tts_common.storage.plans import PLAN_PREFIX

CONSUMER_TIMEOUT = Duration.seconds(30)
SWEEPER_TIMEOUT = Duration.seconds(120)
CONSUMER_BATCH_SIZE = 10
MEMORY_MB = 512


class TaskEvents(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
        events_queue: sqs.IQueue,
        jobs_dead_letter_queue: sqs.IQueue,
        table: dynamodb.ITable,
        bucket: s3.IBucket,
        jobs_queue: sqs.IQueue,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        env = {
            **environment,
            "REQUEUE_AFTER_S": str(config.requeue_after_s),
            "STALE_AFTER_S": str(config.stale_after_s),
            # A job older than the queue's retention is gone: its task can only fail.
            "QUEUED_STALE_AFTER_S": str(int(QUEUE_RETENTION.to_seconds())),
        }

        def new_function(
            construct_id: str, handler: str, timeout: Duration, description: str
        ) -> lambda_.Function:
            return service_function(
                self,
                construct_id,
                code=code,
                handler=handler,
                layers=layers,
                environment=env,
                timeout=timeout,
                memory_size=MEMORY_MB,
                log_retention_days=config.log_retention_days,
                description=description,
            )

        def consuming(fn: lambda_.Function, queue: sqs.IQueue) -> lambda_.Function:
            fn.add_event_source(
                sources.SqsEventSource(queue, batch_size=CONSUMER_BATCH_SIZE, report_batch_item_failures=True)
            )
            return fn

        self.consumer = consuming(
            new_function(
                "Consumer",
                constants.TASK_EVENTS_HANDLER,
                CONSUMER_TIMEOUT,
                "Applies lifecycle events to Task records",
            ),
            events_queue,
        )
        self.sweeper = new_function(
            "Sweeper",
            constants.SWEEP_HANDLER,
            SWEEPER_TIMEOUT,
            "Re-enqueues half-submitted tasks and fails stuck ones",
        )
        # The next run comes in minutes; a retried run would only overlap it.
        self.sweeper.configure_async_invoke(retry_attempts=0)
        events.Rule(
            self,
            "SweepSchedule",
            description="Runs the task sweeper",
            schedule=events.Schedule.rate(Duration.minutes(constants.SWEEP_EVERY_MINUTES)),
            targets=[targets.LambdaFunction(self.sweeper)],
        )
        self.dead_letters = consuming(
            new_function(
                "DeadLetters",
                constants.DEAD_LETTER_HANDLER,
                CONSUMER_TIMEOUT,
                "Fails the task of every job or part that reaches the jobs or parts DLQ (dead_lettered)",
            ),
            jobs_dead_letter_queue,
        )
        grant_task_reads(self.dead_letters, table)
        # A dead-lettered part marks its parent's plan failed: UpdateItem on plan items only (plan#<task>, in
        # the same table), never on a task's own item.
        self.dead_letters.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{PLAN_PREFIX}*"]}},
            )
        )
        topic.grant_publish(self.dead_letters)
        for function in (self.consumer, self.sweeper):
            grant_table_read_write(function, table)
            jobs_queue.grant_send_messages(function)
            topic.grant_publish(function)
            grant_objects(
                function,
                bucket,
                prefix=INPUTS_PREFIX,
                actions=["s3:GetObject"],
                why="a re-enqueued job may need its parked input text",
            )

    @property
    def functions(self) -> tuple[lambda_.Function, ...]:
        return (self.consumer, self.sweeper, self.dead_letters)
