"""The service dashboard and the alarms that page someone, with an optional e-mail topic for them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import DeploymentConfig
from tts_common.domain import TaskStatus
from tts_common.metrics import STATUS_DIMENSION, Metric

PERIOD = Duration.minutes(5)
API_5XX_THRESHOLD = 5


@dataclass(frozen=True)
class MonitoredWorker:
    """The worker in whichever mode was deployed: a Lambda function, or an ECS service."""

    function: lambda_.IFunction | None = None
    service: ecs.Ec2Service | None = None


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        jobs_queue: sqs.IQueue,
        jobs_dlq: sqs.IQueue,
        parts_dlq: sqs.IQueue,
        events_queue: sqs.IQueue,
        events_dlq: sqs.IQueue,
        rest_api: apigw.RestApi,
        worker: MonitoredWorker,
        task_event_functions: Sequence[lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.alarm_topic = self._alarm_topic(config.alarm_email) if config.alarm_email else None
        self.alarms: list[cloudwatch.Alarm] = []

        worker_errors = self._worker_errors_metric(worker)
        # The DLQ consumer fails each dead-lettered job's task and deletes the message, so the queue itself
        # stays near empty: the alarm counts what it failed, and what it could not handle (messages left).
        self._alarm(
            "JobsDeadLetters",
            self._app_metric(Metric.TASKS_DEAD_LETTERED),
            threshold=1,
            description="Jobs reached the dead-letter queue: their tasks were failed as dead_lettered.",
        )
        self._alarm(
            "UnhandledJobDeadLetters",
            jobs_dlq.metric_approximate_number_of_messages_visible(statistic="Maximum", period=PERIOD),
            threshold=1,
            evaluation_periods=2,
            description="Messages stay in the jobs dead-letter queue: its consumer is failing.",
        )
        # Fan-out parts have their own DLQ, drained by the same consumer (each fails its parent's plan).
        self._alarm(
            "PartsDeadLetters",
            self._app_metric(Metric.PARTS_DEAD_LETTERED),
            threshold=1,
            description="Parts of long texts reached the parts dead-letter queue: their tasks were failed.",
        )
        self._alarm(
            "UnhandledPartDeadLetters",
            parts_dlq.metric_approximate_number_of_messages_visible(statistic="Maximum", period=PERIOD),
            threshold=1,
            evaluation_periods=2,
            description="Messages stay in the parts dead-letter queue: its consumer is failing.",
        )
        self._alarm(
            "EventsDeadLetters",
            events_dlq.metric_approximate_number_of_messages_visible(statistic="Maximum", period=PERIOD),
            threshold=1,
            description="Lifecycle events reached the dead-letter queue: Task records may be stale.",
        )
        self._alarm(
            "JobsOldestMessage",
            jobs_queue.metric_approximate_age_of_oldest_message(statistic="Maximum", period=PERIOD),
            threshold=config.oldest_message_alarm_s,
            evaluation_periods=2,
            description=f"A job waited {config.oldest_message_alarm_s} s or more: workers down or saturated.",
        )
        self._alarm(
            "WorkerErrors",
            worker_errors,
            threshold=1,
            description="The worker is failing jobs.",
        )
        self._alarm(
            "Api5xx",
            rest_api.metric_server_error(statistic="Sum", period=PERIOD),
            threshold=API_5XX_THRESHOLD,
            description=f"The API answered at least {API_5XX_THRESHOLD} server errors in 5 minutes.",
        )
        self._alarm(
            "TaskEventsErrors",
            cloudwatch.MathExpression(
                expression=" + ".join(f"FILL(e{i}, 0)" for i in range(len(task_event_functions))),
                using_metrics={
                    f"e{i}": fn.metric_errors(statistic="Sum", period=PERIOD)
                    for i, fn in enumerate(task_event_functions)
                },
                label="Task events errors",
                period=PERIOD,
            ),
            threshold=1,
            description="The lifecycle consumer or the sweeper is failing.",
        )

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{config.project}-{config.stage}",
            default_interval=Duration.hours(6),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Jobs queue depth",
                left=[
                    jobs_queue.metric_approximate_number_of_messages_visible(
                        statistic="Maximum", label="Visible"
                    ),
                    jobs_queue.metric_approximate_number_of_messages_not_visible(
                        statistic="Maximum", label="In flight"
                    ),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Age of oldest job (s)",
                left=[
                    jobs_queue.metric_approximate_age_of_oldest_message(
                        statistic="Maximum", label="Oldest job"
                    )
                ],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=config.oldest_message_alarm_s, label="Alarm")
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queues",
                left=[
                    jobs_dlq.metric_approximate_number_of_messages_visible(
                        statistic="Maximum", label="Jobs DLQ"
                    ),
                    parts_dlq.metric_approximate_number_of_messages_visible(
                        statistic="Maximum", label="Parts DLQ"
                    ),
                    events_dlq.metric_approximate_number_of_messages_visible(
                        statistic="Maximum", label="Events DLQ"
                    ),
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(*self._worker_widgets(worker, worker_errors))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API errors",
                left=[
                    rest_api.metric_client_error(statistic="Sum", label="4xx"),
                    rest_api.metric_server_error(statistic="Sum", label="5xx"),
                ],
                right=[rest_api.metric_count(statistic="Sum", label="Requests")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API latency (ms)",
                left=[
                    rest_api.metric_latency(statistic="p99", label="Latency p99"),
                    rest_api.metric_integration_latency(statistic="p99", label="Integration p99"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Tasks",
                left=[
                    self._app_metric(Metric.TASKS_SUBMITTED),
                    self._app_metric(Metric.DEDUPE_HITS),
                    self._app_metric(Metric.TASKS_COMPLETED),
                    self._app_metric(Metric.TASKS_FAILED),
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Task transitions by status",
                left=[
                    self._app_metric(Metric.TASK_TRANSITIONS, status=status, label=status.value)
                    for status in TaskStatus
                ],
                stacked=True,
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Synthesis and audio seconds",
                left=[
                    self._app_metric(Metric.SYNTHESIS_SECONDS, statistic="Sum", label="Synthesis s"),
                    self._app_metric(Metric.AUDIO_SECONDS, statistic="Sum", label="Audio s"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Sweeper",
                left=[
                    self._app_metric(Metric.TASKS_REQUEUED, label="Re-enqueued"),
                    self._app_metric(Metric.TASKS_TIMED_OUT, label="Timed out"),
                    self._app_metric(Metric.TASKS_FINISHED_BY_SWEEP, label="Finished as done"),
                    self._app_metric(Metric.TASKS_DEAD_LETTERED, label="Dead-lettered"),
                    self._app_metric(Metric.PARTS_DEAD_LETTERED, label="Parts dead-lettered"),
                ],
                width=8,
            ),
        )
        # The worker's model registry: a load is a miss (weights from the image, the store or the hub); many
        # loads against few hits mean more languages in play than TTS_MAX_RESIDENT_MODELS holds.
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Models",
                left=[
                    self._app_metric(Metric.MODEL_LOADS, label="Loads"),
                    self._app_metric(Metric.MODEL_HITS, label="Hits (resident)"),
                ],
                right=[
                    self._app_metric(Metric.MODEL_LOAD_SECONDS, statistic="p50", label="Load s p50"),
                    self._app_metric(Metric.MODEL_LOAD_SECONDS, statistic="Maximum", label="Load s max"),
                ],
                width=8,
            ),
            # The notifier (signed webhooks): undeliverable ones are a receiver down for the whole window.
            cloudwatch.GraphWidget(
                title="Webhooks",
                left=[
                    self._app_metric(Metric.WEBHOOKS_DELIVERED, label="Delivered"),
                    self._app_metric(Metric.WEBHOOKS_RETRIED, label="Retried"),
                    self._app_metric(Metric.WEBHOOKS_UNDELIVERABLE, label="Undeliverable"),
                ],
                width=8,
            ),
        )

    def _app_metric(
        self,
        name: Metric,
        *,
        status: TaskStatus | None = None,
        statistic: str = "Sum",
        label: str | None = None,
    ) -> cloudwatch.Metric:
        """A Powertools metric: its namespace, and the `service` dimension Powertools adds to every metric."""
        dimensions = {"service": self._config.service_name}
        if status is not None:
            dimensions[STATUS_DIMENSION] = status.value
        return cloudwatch.Metric(
            namespace=self._config.metrics_namespace,
            metric_name=name.value,
            dimensions_map=dimensions,
            statistic=statistic,
            period=PERIOD,
            label=label or name.value,
        )

    def _worker_errors_metric(self, worker: MonitoredWorker) -> cloudwatch.IMetric:
        if worker.function is not None:
            return worker.function.metric_errors(statistic="Sum", period=PERIOD)
        # ECS has no invocation errors: the worker's own failure count stands in.
        return self._app_metric(Metric.TASKS_FAILED, label="Worker failed tasks")

    def _worker_widgets(
        self, worker: MonitoredWorker, errors: cloudwatch.IMetric
    ) -> list[cloudwatch.IWidget]:
        if worker.function is not None:
            fn = worker.function
            return [
                cloudwatch.GraphWidget(
                    title="Worker duration (ms)",
                    left=[
                        fn.metric_duration(statistic="p50", label="p50"),
                        fn.metric_duration(statistic="p99", label="p99"),
                        fn.metric_duration(statistic="Maximum", label="max"),
                    ],
                    width=12,
                ),
                cloudwatch.GraphWidget(
                    title="Worker errors and throttles",
                    left=[errors, fn.metric_throttles(statistic="Sum", label="Throttles")],
                    right=[fn.metric_invocations(statistic="Sum", label="Invocations")],
                    width=12,
                ),
            ]
        assert worker.service is not None
        service = worker.service
        return [
            cloudwatch.GraphWidget(
                title="Worker synthesis time (s)",
                left=[
                    self._app_metric(Metric.SYNTHESIS_SECONDS, statistic="p50", label="p50"),
                    self._app_metric(Metric.SYNTHESIS_SECONDS, statistic="p99", label="p99"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Worker failed tasks",
                left=[errors],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Worker tasks",
                left=[
                    cloudwatch.Metric(
                        namespace="ECS/ContainerInsights",
                        metric_name=name,
                        dimensions_map={
                            "ClusterName": service.cluster.cluster_name,
                            "ServiceName": service.service_name,
                        },
                        statistic="Maximum",
                        label=name,
                    )
                    for name in ("DesiredTaskCount", "RunningTaskCount")
                ],
                width=8,
            ),
        ]

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        if self.alarm_topic is not None:
            alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
            alarm.add_ok_action(cw_actions.SnsAction(self.alarm_topic))
        self.alarms.append(alarm)
        return alarm

    def _alarm_topic(self, email: str) -> sns.Topic:
        # CloudWatch cannot publish to a topic under the AWS-managed SNS key; this key lets it.
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description="Encrypts the alarm notification topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(self, "AlarmTopic", master_key=key, enforce_ssl=True)
        stack = Stack.of(self)
        alarms_arn = f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["sns:Publish"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=[topic.topic_arn],
                conditions={"ArnLike": {"aws:SourceArn": alarms_arn}},
            )
        )
        topic.add_subscription(subscriptions.EmailSubscription(email))
        return topic
