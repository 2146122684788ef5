"""worker=ecs: the GPU worker as an ECS service on EC2 GPU capacity, scaled on the backlog, down to zero."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import constants
from infra.capabilities.environment import worker_environment
from infra.capabilities.service_function import log_group
from infra.capabilities.worker_grants import grant_worker
from infra.capabilities.worker_image import image_asset_props
from infra.config import DeploymentConfig
from infra.nag import acknowledge

GPUS_PER_TASK = 1
# How long a stopping task gets to finish (or release) the job in hand after SIGTERM.
STOP_TIMEOUT = Duration.seconds(120)
SCALING_PERIOD = Duration.minutes(1)
# AWS's Fluent Bit distribution; `stable` is the tag AWS recommends for production.
FLUENT_BIT_IMAGE = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"


def backlog_capacity_steps(max_tasks: int) -> list[int]:
    """Task counts the scaler can set: every count up to 10, then about +50% a step, ending at max_tasks.

    Application Auto Scaling allows 20 step adjustments per policy; this keeps the list short for any maximum.
    """
    steps = list(range(0, min(max_tasks, 10) + 1))
    while steps[-1] < max_tasks:
        steps.append(min(max_tasks, int(steps[-1] * 1.5)))
    return steps


class EcsWorker(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        repo_root: Path,
        environment: Mapping[str, str],
        jobs_queue: sqs.IQueue,
        parts_queue: sqs.IQueue,
        bucket: s3.IBucket,
        topic: sns.ITopic,
        table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = self._network(config)
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=self.vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.capacity_provider = self._gpu_capacity(config)
        self.cluster.add_asg_capacity_provider(self.capacity_provider)

        self.task_definition = ecs.Ec2TaskDefinition(
            self,
            "TaskDefinition",
            # Bridge mode: the task uses the instance's public address, so no NAT gateway is needed.
            network_mode=ecs.NetworkMode.BRIDGE,
        )
        worker_logs = log_group(self, "WorkerLogs", retention_days=config.log_retention_days)
        # Powertools metrics are EMF lines on stdout. Outside Lambda only a log shipper that sends the EMF
        # header turns them into metrics: a Fluent Bit (FireLens) router does, the awslogs driver cannot.
        self.task_definition.add_firelens_log_router(
            "LogRouter",
            image=ecs.ContainerImage.from_registry(FLUENT_BIT_IMAGE),
            firelens_config=ecs.FirelensConfig(type=ecs.FirelensLogRouterType.FLUENTBIT),
            memory_reservation_mib=64,
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="log-router",
                log_group=log_group(self, "LogRouterLogs", retention_days=config.log_retention_days),
            ),
        )
        self.container = self.task_definition.add_container(
            "Worker",
            image=ecs.ContainerImage.from_asset(
                **image_asset_props(config, repo_root=repo_root, target=constants.ECS_IMAGE_TARGET)
            ),
            gpu_count=GPUS_PER_TASK,
            memory_reservation_mib=config.ecs_task_memory_mib,
            environment={
                **environment,
                **worker_environment(config, device="cuda"),
                "PARTS_QUEUE_URL": parts_queue.queue_url,
                # Lambda sets the region itself; an ECS task on EC2 must be told.
                "AWS_REGION": Stack.of(self).region,
                "AWS_DEFAULT_REGION": Stack.of(self).region,
            },
            logging=ecs.LogDrivers.firelens(
                options={
                    "Name": "cloudwatch_logs",
                    "region": Stack.of(self).region,
                    "log_group_name": worker_logs.log_group_name,
                    "log_stream_prefix": "worker/",
                    "log_key": "log",
                    "log_format": "json/emf",
                }
            ),
            stop_timeout=STOP_TIMEOUT,
        )
        worker_logs.grant_write(self.task_definition.task_role)
        grant_worker(
            self.task_definition.task_role,
            jobs_queue=jobs_queue,
            parts_queue=parts_queue,
            bucket=bucket,
            topic=topic,
            table=table,
            model_store_prefix=config.model_store_prefix,
        )
        jobs_queue.grant_consume_messages(self.task_definition.task_role)
        parts_queue.grant_consume_messages(self.task_definition.task_role)

        self.service = ecs.Ec2Service(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            # Starts at zero; the backlog scaler below sets the count from then on.
            desired_count=0,
            capacity_provider_strategies=[
                ecs.CapacityProviderStrategy(
                    capacity_provider=self.capacity_provider.capacity_provider_name, weight=1
                )
            ],
            # One GPU per instance: replacing tasks in place keeps a deployment within the instance quota.
            min_healthy_percent=0,
            max_healthy_percent=100,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )
        self._scale_on_backlog(config, jobs_queue, parts_queue)
        self._acknowledge()

    def _network(self, config: DeploymentConfig) -> ec2.Vpc:
        vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24)
            ],
            # Nothing uses the default security group; restricting it would add a custom-resource Lambda.
            restrict_default_security_group=False,
        )
        vpc.add_gateway_endpoint("S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3)
        vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                log_group(self, "FlowLogs", retention_days=config.log_retention_days)
            ),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        return vpc

    def _gpu_capacity(self, config: DeploymentConfig) -> ecs.AsgCapacityProvider:
        security_group = ec2.SecurityGroup(
            self,
            "InstanceSecurityGroup",
            vpc=self.vpc,
            description="GPU workers: no inbound traffic; outbound to AWS APIs and the image registry",
            allow_all_outbound=True,
        )
        self.instance_role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="ECS container instances of the GPU worker cluster",
        )
        launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            instance_type=ec2.InstanceType(config.ecs_instance_type),
            machine_image=ecs.EcsOptimizedImage.amazon_linux2023(ecs.AmiHardwareType.GPU),
            role=self.instance_role,
            security_group=security_group,
            user_data=ec2.UserData.for_linux(),
            require_imdsv2=True,
            detailed_monitoring=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        config.ecs_root_volume_gib,
                        encrypted=True,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        delete_on_termination=True,
                    ),
                )
            ],
        )
        self.auto_scaling_group = autoscaling.AutoScalingGroup(
            self,
            "GpuInstances",
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            launch_template=launch_template,
            min_capacity=0,
            max_capacity=config.ecs_max_tasks,
        )
        return ecs.AsgCapacityProvider(
            self,
            "GpuCapacity",
            auto_scaling_group=self.auto_scaling_group,
            enable_managed_scaling=True,
            enable_managed_termination_protection=True,
            target_capacity_percent=100,
            machine_image_type=ecs.MachineImageType.AMAZON_LINUX_2,
        )

    def _scale_on_backlog(
        self, config: DeploymentConfig, jobs_queue: sqs.IQueue, parts_queue: sqs.IQueue
    ) -> None:
        """Tasks = ceil((visible + in flight) / backlog per task + parts visible + in flight): zero for empty
        queues, at most the max. A long text's part is minutes of work, so each one counts as a task's worth.

        Step scaling with exact capacities, because target tracking cannot scale out from zero running tasks.
        """
        self.scaling = self.service.auto_scale_task_count(min_capacity=0, max_capacity=config.ecs_max_tasks)
        wanted_tasks = cloudwatch.MathExpression(
            expression=(
                f"CEIL((FILL(visible, 0) + FILL(inflight, 0)) / {config.ecs_backlog_per_task}"
                " + FILL(parts, 0) + FILL(partsinflight, 0))"
            ),
            using_metrics={
                "parts": parts_queue.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=SCALING_PERIOD
                ),
                "partsinflight": parts_queue.metric_approximate_number_of_messages_not_visible(
                    statistic="Maximum", period=SCALING_PERIOD
                ),
                "visible": jobs_queue.metric_approximate_number_of_messages_visible(
                    statistic="Maximum", period=SCALING_PERIOD
                ),
                "inflight": jobs_queue.metric_approximate_number_of_messages_not_visible(
                    statistic="Maximum", period=SCALING_PERIOD
                ),
            },
            label="Worker tasks wanted for the jobs backlog",
            period=SCALING_PERIOD,
        )
        capacities = backlog_capacity_steps(config.ecs_max_tasks)
        steps = [
            appscaling.ScalingInterval(
                lower=capacity,
                upper=capacities[i + 1] if i + 1 < len(capacities) else None,
                change=capacity,
            )
            for i, capacity in enumerate(capacities)
        ]
        self.scaling.scale_on_metric(
            "ScaleOnBacklog",
            metric=wanted_tasks,
            scaling_steps=steps,
            adjustment_type=appscaling.AdjustmentType.EXACT_CAPACITY,
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
            evaluation_periods=1,
            cooldown=Duration.minutes(2),
        )

    def _acknowledge(self) -> None:
        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            "The environment holds resource names and tuning knobs only; "
            "the service has no secrets to inject.",
        )
        acknowledge(
            self.instance_role,
            "AwsSolutions-IAM5[Action::ecs:Submit*]",
            "The ECS agent's Submit*StateChange calls, on this cluster's ARN only "
            "(CDK's container-instance policy).",
        )
        acknowledge(
            self.instance_role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and ecs:DiscoverPollEndpoint take no resource; "
            "ecs:Poll is conditioned on this cluster (CDK's container-instance policy).",
        )
        assert self.task_definition.execution_role is not None
        acknowledge(
            self.task_definition.execution_role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken accepts only '*'; "
            "image pulls and log writes are scoped to their ARNs.",
        )
        acknowledge(
            self.auto_scaling_group,
            "AwsSolutions-AS3",
            "ECS managed scaling drives this group; "
            "scaling activity shows in ECS events and the service dashboard.",
        )
