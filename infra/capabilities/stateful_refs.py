"""The stateful stack's tables and bucket as the service stack sees them: read from its outputs by name.

Named outputs (Fn::GetStackOutput) instead of CDK's generated cross-stack references: the stateful stack can
be updated without waiting on its consumers, and every reference renders the same way in IAM policies, so the
cdk-nag acknowledgments that name them stay exact.
"""

from __future__ import annotations

from aws_cdk import Fn
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import constants
from tts_common.storage import schema


class StatefulRefs(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stateful_stack_name: str) -> None:
        super().__init__(scope, construct_id)

        def output(name: str) -> str:
            return Fn.get_stack_output(stateful_stack_name, name)

        self.table_name = output(constants.OUTPUT_TABLE_NAME)
        self.bucket_name = output(constants.OUTPUT_BUCKET_NAME)
        self.key_table_name = output(constants.OUTPUT_KEY_TABLE_NAME)
        self.table: dynamodb.ITable = dynamodb.Table.from_table_attributes(
            self,
            "TasksTable",
            table_arn=output(constants.OUTPUT_TABLE_ARN),
            global_indexes=[name for name, _, _ in schema.INDEXES],
        )
        self.key_table: dynamodb.ITable = dynamodb.Table.from_table_attributes(
            self, "ApiKeysTable", table_arn=output(constants.OUTPUT_KEY_TABLE_ARN)
        )
        self.credentials_key: kms.IKey = kms.Key.from_key_arn(
            self, "CredentialsKey", output(constants.OUTPUT_CREDENTIALS_KEY_ARN)
        )
        self.bucket: s3.IBucket = s3.Bucket.from_bucket_attributes(
            self,
            "AudioBucket",
            bucket_arn=output(constants.OUTPUT_BUCKET_ARN),
            bucket_name=self.bucket_name,
        )
