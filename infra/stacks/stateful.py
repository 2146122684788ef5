"""What must outlive every deployment: the tasks table, the API key table, the audio bucket and the key that
encrypts tenants' stored secrets."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra import constants
from infra.capabilities.audio_bucket import AudioBucket
from infra.capabilities.credentials_key import CredentialsKey
from infra.capabilities.key_table import KeyTable
from infra.capabilities.task_table import TaskTable
from infra.config import DeploymentConfig


class StatefulStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.tasks = TaskTable(self, "Tasks", deletion_protection=not config.is_dev)
        self.keys = KeyTable(self, "ApiKeys", deletion_protection=not config.is_dev)
        self.audio = AudioBucket(
            self,
            "Audio",
            retention_days=config.retention_days,
            destroy_on_removal=config.is_dev,
            cors_origins=config.cors_origins,
        )
        CfnOutput(self, constants.OUTPUT_TABLE_NAME, value=self.tasks.table.table_name)
        CfnOutput(self, constants.OUTPUT_TABLE_ARN, value=self.tasks.table.table_arn)
        CfnOutput(self, constants.OUTPUT_KEY_TABLE_NAME, value=self.keys.table.table_name)
        CfnOutput(self, constants.OUTPUT_KEY_TABLE_ARN, value=self.keys.table.table_arn)
        CfnOutput(self, constants.OUTPUT_BUCKET_NAME, value=self.audio.bucket.bucket_name)
        CfnOutput(self, constants.OUTPUT_BUCKET_ARN, value=self.audio.bucket.bucket_arn)
        self.credentials = CredentialsKey(self, "Credentials")
        CfnOutput(
            self,
            constants.OUTPUT_CREDENTIALS_KEY_ARN,
            value=self.credentials.key.key_arn,
            description="The KMS key tts-admin encrypts tenants' secrets with (webhooks secret)",
        )
