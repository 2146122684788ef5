"""What every function of the service shares: runtime, architecture, tracing, logs, their nag notes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.nag import acknowledge

RUNTIME = lambda_.Runtime.PYTHON_3_11
# x86_64 everywhere: GPU instances are x86_64, so one image platform and one set of layer wheels serve all.
ARCHITECTURE = lambda_.Architecture.X86_64


# CloudWatch Logs' retention choices by their number of days (the config validates against these keys).
RETENTION_DAYS: Mapping[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def log_group(scope: Construct, construct_id: str, *, retention_days: int) -> logs.LogGroup:
    """A log group with the configured retention, removed with its stack (logs are not the record)."""
    return logs.LogGroup(
        scope,
        construct_id,
        retention=RETENTION_DAYS[retention_days],
        removal_policy=RemovalPolicy.DESTROY,
    )


def acknowledge_function_defaults(function: lambda_.Function, *, zip_runtime: bool) -> None:
    """The findings every function of this service has for the same reasons."""
    role = function.role
    assert role is not None
    acknowledge(
        role,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "AWSLambdaBasicExecutionRole only lets the function write its own CloudWatch Logs streams.",
    )
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray's PutTraceSegments and PutTelemetryRecords take no resource ARN; "
        "'*' is the only form IAM accepts.",
    )
    if zip_runtime:
        cfn_function = function.node.default_child
        assert cfn_function is not None
        acknowledge(
            cfn_function,
            "AwsSolutions-L1",
            "Python 3.11 is pinned project-wide "
            "(requires-python <3.12, the worker image and the layer wheels).",
        )


def service_function(
    scope: Construct,
    construct_id: str,
    *,
    code: lambda_.Code,
    handler: str,
    layers: Sequence[lambda_.ILayerVersion],
    environment: Mapping[str, str],
    timeout: Duration,
    memory_size: int,
    log_retention_days: int,
    description: str,
) -> lambda_.Function:
    function = lambda_.Function(
        scope,
        construct_id,
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        code=code,
        handler=handler,
        layers=list(layers),
        environment=dict(environment),
        timeout=timeout,
        memory_size=memory_size,
        tracing=lambda_.Tracing.ACTIVE,
        log_group=log_group(scope, f"{construct_id}Logs", retention_days=log_retention_days),
        description=description,
    )
    acknowledge_function_defaults(function, zip_runtime=True)
    return function
