"""What must outlive every deployment: the tasks table and the audio bucket."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra import constants
from infra.capabilities.audio_bucket import AudioBucket
from infra.capabilities.task_table import TaskTable
from infra.config import DeploymentConfig


class StatefulStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.tasks = TaskTable(self, "Tasks", deletion_protection=not config.is_dev)
        self.audio = AudioBucket(
            self,
            "Audio",
            retention_days=config.retention_days,
            destroy_on_removal=config.is_dev,
            cors_origins=config.cors_origins,
        )
        CfnOutput(self, constants.OUTPUT_TABLE_NAME, value=self.tasks.table.table_name)
        CfnOutput(self, constants.OUTPUT_TABLE_ARN, value=self.tasks.table.table_arn)
        CfnOutput(self, constants.OUTPUT_BUCKET_NAME, value=self.audio.bucket.bucket_name)
        CfnOutput(self, constants.OUTPUT_BUCKET_ARN, value=self.audio.bucket.bucket_arn)
