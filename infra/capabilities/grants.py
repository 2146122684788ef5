"""Least-privilege grants, each with the cdk-nag acknowledgment its unavoidable wildcard needs.

S3 object keys and DynamoDB index names are per task or per index: a prefix (`audio/*`) or `index/*` is the
narrowest resource IAM can express for them, so each such grant acknowledges exactly its own finding.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

from infra.nag import acknowledge, finding_resource


def allow(grantee: iam.IGrantable, actions: Sequence[str], resources: Sequence[str]) -> None:
    """One statement on the grantee's own policy."""
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=list(actions), resources=list(resources))
    )


def grant_objects(
    grantee: iam.IGrantable, bucket: s3.IBucket, *, prefix: str, actions: Sequence[str], why: str
) -> None:
    """`actions` on the objects under `prefix` only."""
    resource = bucket.arn_for_objects(f"{prefix}*")
    allow(grantee, actions, [resource])
    acknowledge(
        _policy_owner(grantee),
        f"AwsSolutions-IAM5[Resource::{finding_resource(_policy_owner(grantee), resource)}]",
        f"Objects under {prefix} are keyed per task, so the prefix is the narrowest scope; {why}.",
    )


def grant_table_read_write(grantee: iam.IGrantable, table: dynamodb.ITable) -> None:
    """Items of the tasks table and queries on its indexes."""
    table.grant_read_write_data(grantee)
    acknowledge(
        _policy_owner(grantee),
        f"AwsSolutions-IAM5[Resource::{finding_resource(_policy_owner(grantee), table.table_arn)}/index/*]",
        "Queries use the table's GSIs (tts_common.storage.schema.INDEXES); index/* covers exactly those.",
    )


def grant_task_reads(grantee: iam.IGrantable, table: dynamodb.ITable) -> None:
    """GetItem on the tasks table only: look a task up by its key (no writes, no index queries)."""
    allow(grantee, ["dynamodb:GetItem"], [table.table_arn])


def grant_key_reads(grantee: iam.IGrantable, table: dynamodb.ITable) -> None:
    """GetItem on the API key table only: resolve one key by its id (no scans, no writes)."""
    allow(grantee, ["dynamodb:GetItem"], [table.table_arn])


def _policy_owner(grantee: iam.IGrantable) -> IConstruct:
    principal = grantee.grant_principal
    if not isinstance(principal, iam.Role):
        raise TypeError(f"expected a role to own the policy, got {principal!r}")
    return principal
