"""Everything stateless: the API and its key authorizer, the queues and channel, the worker (Lambda or ECS),
task events, monitoring.

One stack rather than one per capability: the parts reference each other both ways (the worker publishes to
the channel whose consumer re-enqueues jobs), and cross-stack exports would only add deploy-order coupling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as lambda_event_sources
from constructs import Construct

from infra import constants
from infra.capabilities.api import Api
from infra.capabilities.authorizer import KeyAuthorizer
from infra.capabilities.common_layer import CommonLayer
from infra.capabilities.ecs_worker import EcsWorker
from infra.capabilities.environment import authorizer_environment, service_environment
from infra.capabilities.event_channel import EventChannel
from infra.capabilities.lambda_worker import LambdaWorker
from infra.capabilities.monitoring import MonitoredWorker, Monitoring
from infra.capabilities.notifier import Notifier
from infra.capabilities.polly_credentials import grant_polly_credentials
from infra.capabilities.stateful_refs import StatefulRefs
from infra.capabilities.task_events import CONSUMER_TIMEOUT, TaskEvents
from infra.capabilities.work_queue import WorkQueue
from infra.config import VISIBILITY_PER_WORKER_TIMEOUT, DeploymentConfig

CODE_EXCLUDES = ["**/__pycache__", "**/*.pyc", "tests", ".pytest_cache"]


class ServiceStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        stateful_stack_name: str,
        repo_root: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        stateful = StatefulRefs(self, "Stateful", stateful_stack_name=stateful_stack_name)
        table = stateful.table
        bucket = stateful.bucket

        self.channel = EventChannel(
            self,
            "Channel",
            consumer_visibility_timeout=Duration.seconds(
                VISIBILITY_PER_WORKER_TIMEOUT * CONSUMER_TIMEOUT.to_seconds()
            ),
            max_receive_count=config.max_receive_count,
        )
        self.jobs = WorkQueue(
            self,
            "Jobs",
            visibility_timeout=Duration.seconds(config.jobs_visibility_timeout_s),
            max_receive_count=config.max_receive_count,
        )
        # A long text's parts (fan-out, tts_worker.fanout): a queue of their own, so whole jobs go first.
        self.parts = WorkQueue(
            self,
            "Parts",
            visibility_timeout=Duration.seconds(config.jobs_visibility_timeout_s),
            max_receive_count=config.max_receive_count,
        )
        environment = service_environment(
            config,
            table_name=stateful.table_name,
            bucket_name=stateful.bucket_name,
            jobs_queue=self.jobs.queue,
            topic=self.channel.topic,
        )
        layer = CommonLayer(
            self,
            "CommonLayer",
            repo_root=repo_root,
            source_dir=repo_root / constants.COMMON_LAYER_DIR,
            bundling=config.layer_bundling,
        ).layer

        self.authorizer = KeyAuthorizer(
            self,
            "KeyAuthorizer",
            config=config,
            code=lambda_.Code.from_asset(
                str(repo_root / constants.AUTHORIZER_CODE_DIR), exclude=CODE_EXCLUDES
            ),
            layers=[layer],
            environment=authorizer_environment(config, key_table_name=stateful.key_table_name),
            key_table=stateful.key_table,
        )
        self.api = Api(
            self,
            "Api",
            config=config,
            code=lambda_.Code.from_asset(str(repo_root / constants.API_CODE_DIR), exclude=CODE_EXCLUDES),
            layers=[layer],
            environment=environment,
            table=table,
            bucket=bucket,
            jobs_queue=self.jobs.queue,
            topic=self.channel.topic,
            authorizer=self.authorizer.authorizer,
        )
        # The Polly routes verify SigV4 signatures themselves: the credentials, decryptable for that only.
        grant_polly_credentials(
            self.api.function,
            key_table=stateful.key_table,
            key_table_name=stateful.key_table_name,
            credentials_key=stateful.credentials_key,
            bucket=bucket,
        )
        self.task_events = TaskEvents(
            self,
            "TaskEvents",
            config=config,
            code=lambda_.Code.from_asset(
                str(repo_root / constants.TASK_EVENTS_CODE_DIR), exclude=CODE_EXCLUDES
            ),
            layers=[layer],
            environment=environment,
            events_queue=self.channel.events.queue,
            jobs_dead_letter_queue=self.jobs.dead_letter_queue,
            table=table,
            bucket=bucket,
            jobs_queue=self.jobs.queue,
            topic=self.channel.topic,
        )

        # Another subscriber on the channel: signed webhooks when a task ends (nothing above changes for it).
        self.notifier = Notifier(
            self,
            "Notifier",
            config=config,
            code=lambda_.Code.from_asset(str(repo_root / constants.NOTIFIER_CODE_DIR), exclude=CODE_EXCLUDES),
            layers=[layer],
            environment=environment,
            topic=self.channel.topic,
            table=table,
            key_table=stateful.key_table,
            key_table_name=stateful.key_table_name,
            bucket=bucket,
            credentials_key=stateful.credentials_key,
        )

        worker_class = LambdaWorker if config.worker == "lambda" else EcsWorker
        self.worker = worker_class(
            self,
            worker_class.__name__,
            config=config,
            repo_root=repo_root,
            environment=environment,
            jobs_queue=self.jobs.queue,
            parts_queue=self.parts.queue,
            bucket=bucket,
            table=table,
            topic=self.channel.topic,
        )
        # A dead-lettered part fails its parent task like a dead-lettered job.
        self.task_events.dead_letters.add_event_source(
            lambda_event_sources.SqsEventSource(
                self.parts.dead_letter_queue, batch_size=10, report_batch_item_failures=True
            )
        )
        if isinstance(self.worker, LambdaWorker):
            monitored = MonitoredWorker(function=self.worker.function)
            CfnOutput(self, constants.OUTPUT_WORKER_FUNCTION_NAME, value=self.worker.function.function_name)
        else:
            monitored = MonitoredWorker(service=self.worker.service)
            CfnOutput(self, constants.OUTPUT_ECS_CLUSTER_NAME, value=self.worker.cluster.cluster_name)

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            jobs_queue=self.jobs.queue,
            jobs_dlq=self.jobs.dead_letter_queue,
            parts_dlq=self.parts.dead_letter_queue,
            events_queue=self.channel.events.queue,
            events_dlq=self.channel.events.dead_letter_queue,
            rest_api=self.api.rest_api,
            worker=monitored,
            task_event_functions=self.task_events.functions,
        )

        CfnOutput(self, constants.OUTPUT_API_URL, value=self.api.url)
        CfnOutput(
            self,
            constants.OUTPUT_USAGE_PLAN_ID,
            value=self.api.usage_plan.usage_plan_id,
            description="The usage plan tenant keys join (tts-admin keys create; docs/DEPLOY.md)",
        )
        CfnOutput(
            self,
            constants.OUTPUT_KEY_TABLE_NAME,
            value=stateful.key_table_name,
            description="The API key table (in the stateful stack) that tts-admin manages",
        )
        CfnOutput(self, constants.OUTPUT_JOBS_QUEUE_URL, value=self.jobs.queue.queue_url)
        CfnOutput(self, constants.OUTPUT_JOBS_DLQ_URL, value=self.jobs.dead_letter_queue.queue_url)
        CfnOutput(self, constants.OUTPUT_EVENTS_QUEUE_URL, value=self.channel.events.queue.queue_url)
        CfnOutput(
            self, constants.OUTPUT_EVENTS_DLQ_URL, value=self.channel.events.dead_letter_queue.queue_url
        )
        CfnOutput(self, constants.OUTPUT_EVENTS_TOPIC_ARN, value=self.channel.topic.topic_arn)
        CfnOutput(self, constants.OUTPUT_NOTIFICATIONS_QUEUE_URL, value=self.notifier.queue.queue_url)
        CfnOutput(
            self,
            constants.OUTPUT_NOTIFICATIONS_DLQ_URL,
            value=self.notifier.notifications.dead_letter_queue.queue_url,
        )
        CfnOutput(self, constants.OUTPUT_DASHBOARD_NAME, value=self.monitoring.dashboard.dashboard_name)
        if self.monitoring.alarm_topic is not None:
            CfnOutput(self, constants.OUTPUT_ALARM_TOPIC_ARN, value=self.monitoring.alarm_topic.topic_arn)
