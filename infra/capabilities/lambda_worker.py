"""worker=lambda: the container-image function (CPU) fed by the jobs queue in batches."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, Size
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import constants
from infra.capabilities.environment import worker_environment
from infra.capabilities.service_function import ARCHITECTURE, acknowledge_function_defaults, log_group
from infra.capabilities.worker_grants import grant_worker
from infra.capabilities.worker_image import image_asset_props
from infra.config import DeploymentConfig


class LambdaWorker(Construct):
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
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            code=lambda_.DockerImageCode.from_image_asset(
                **image_asset_props(config, repo_root=repo_root, target=constants.LAMBDA_IMAGE_TARGET)
            ),
            architecture=ARCHITECTURE,
            memory_size=config.worker_memory_mb,
            timeout=Duration.seconds(config.worker_timeout_s),
            ephemeral_storage_size=Size.mebibytes(config.worker_ephemeral_storage_mb),
            reserved_concurrent_executions=config.worker_reserved_concurrency,
            environment={
                **environment,
                **worker_environment(config, device="cpu"),
                "PARTS_QUEUE_URL": parts_queue.queue_url,
            },
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group(self, "FunctionLogs", retention_days=config.log_retention_days),
            description="TTS worker (CPU): synthesizes queued jobs",
        )
        acknowledge_function_defaults(self.function, zip_runtime=False)
        self.function.add_event_source(
            sources.SqsEventSource(
                jobs_queue,
                batch_size=config.worker_batch_size,
                max_batching_window=Duration.seconds(config.worker_batch_window_s),
                report_batch_item_failures=True,
                # Caps concurrency without reserving any (new accounts have no concurrency to reserve).
                max_concurrency=config.worker_max_concurrency,
            )
        )
        # A long text's parts, one per invocation, on fewer concurrent workers than the jobs may use, so a
        # huge text never takes the last slots from short tasks (SQS allows 2 at least).
        self.function.add_event_source(
            sources.SqsEventSource(
                parts_queue,
                batch_size=1,
                report_batch_item_failures=True,
                max_concurrency=max(
                    2, config.worker_max_concurrency - max(1, config.worker_max_concurrency // 4)
                ),
            )
        )
        grant_worker(
            self.function,
            jobs_queue=jobs_queue,
            parts_queue=parts_queue,
            bucket=bucket,
            topic=topic,
            table=table,
            model_store_prefix=config.model_store_prefix,
        )
