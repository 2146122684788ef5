"""The API key table: one item per key (tts_common.tenancy), holding its tenant and the key's hash only."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from tts_common.tenancy import KEY_TABLE_PARTITION_KEY


class KeyTable(Construct):
    """On-demand, point-in-time recovery and encryption like the tasks table; CloudFormation never deletes it:
    losing it would lock every tenant out."""

    def __init__(self, scope: Construct, construct_id: str, *, deletion_protection: bool) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(
                name=KEY_TABLE_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=deletion_protection,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # A stable logical id: refactoring the construct tree must never replace the table.
        self.table.node.default_child.override_logical_id("ApiKeysTable")  # type: ignore[union-attr]
