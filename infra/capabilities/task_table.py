"""The tasks table: task records, dedupe claims and counters, keyed and indexed by tts_common's schema."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from tts_common.storage import schema


class TaskTable(Construct):
    """On-demand, point-in-time recovery, TTL, the schema's GSIs; CloudFormation never deletes it."""

    def __init__(self, scope: Construct, construct_id: str, *, deletion_protection: bool) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=schema.PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=schema.TTL_ATTRIBUTE,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=deletion_protection,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index_name, partition_key, sort_key in schema.INDEXES:
            # Key attributes are always projected; DynamoDB refuses them in NonKeyAttributes.
            keys = {schema.PARTITION_KEY, partition_key, sort_key}
            self.table.add_global_secondary_index(
                index_name=index_name,
                partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=sort_key, type=dynamodb.AttributeType.STRING),
                projection_type=dynamodb.ProjectionType.INCLUDE,
                non_key_attributes=[a for a in schema.INDEX_PROJECTION if a not in keys],
            )
        # A stable logical id: refactoring the construct tree must never replace the table.
        self.table.node.default_child.override_logical_id("TasksTable")  # type: ignore[union-attr]
