"""The lifecycle path: SNS channel → events queue (raw delivery) → task-events consumer, plus the sweeper."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match
from infra_helpers import Assembly, actions_of, function_with_handler, policy_statements_of_role, render

from infra import constants
from infra.capabilities.task_events import CONSUMER_TIMEOUT

pytestmark = pytest.mark.infra


def test_channel_is_an_encrypted_tls_only_topic(lambda_app: Assembly) -> None:
    topic = lambda_app.only(lambda_app.service_name, "AWS::SNS::Topic")
    assert topic["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"
    lambda_app.service.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            }
        },
    )


def test_events_queue_gets_raw_lifecycle_messages(lambda_app: Assembly) -> None:
    lambda_app.service.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "sqs",
            "RawMessageDelivery": True,
            "Endpoint": {"Fn::GetAtt": [Match.string_like_regexp("^ChannelEventsQueue"), "Arn"]},
        },
    )


def test_events_queue_has_a_dead_letter_queue_and_room_for_retries(lambda_app: Assembly) -> None:
    queues = lambda_app.resources(lambda_app.service_name, "AWS::SQS::Queue")
    events = next(q for lid, q in queues.items() if lid.startswith("ChannelEventsQueue"))["Properties"]
    assert events["RedrivePolicy"]["maxReceiveCount"] == lambda_app.config.max_receive_count
    assert events["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0].startswith(
        "ChannelEventsDeadLetterQueue"
    )
    assert events["VisibilityTimeout"] >= 6 * CONSUMER_TIMEOUT.to_seconds()


def test_consumer_reports_partial_batch_failures(lambda_app: Assembly) -> None:
    lambda_app.service.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [Match.string_like_regexp("^ChannelEventsQueue"), "Arn"]},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )
    env = function_with_handler(lambda_app, constants.TASK_EVENTS_HANDLER)["Properties"]["Environment"][
        "Variables"
    ]
    assert env["REQUEUE_AFTER_S"] == str(lambda_app.config.requeue_after_s)
    assert env["STALE_AFTER_S"] == str(lambda_app.config.stale_after_s)
    jobs_retention = next(
        q["Properties"]["MessageRetentionPeriod"]
        for name, q in lambda_app.service.find_resources("AWS::SQS::Queue").items()
        if name.startswith("JobsQueue") and "RedrivePolicy" in q["Properties"]
    )
    assert env["QUEUED_STALE_AFTER_S"] == str(jobs_retention)


def test_sweeper_runs_every_five_minutes(lambda_app: Assembly) -> None:
    sweeper = function_with_handler(lambda_app, constants.SWEEP_HANDLER)
    rule = lambda_app.only(lambda_app.service_name, "AWS::Events::Rule")["Properties"]
    assert rule["ScheduleExpression"] == f"rate({constants.SWEEP_EVERY_MINUTES} minutes)"
    assert rule["State"] == "ENABLED"
    sweeper_id = next(
        lid for lid, r in lambda_app.templates[lambda_app.service_name]["Resources"].items() if r is sweeper
    )
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [sweeper_id, "Arn"]}


@pytest.mark.parametrize("handler", [constants.TASK_EVENTS_HANDLER, constants.SWEEP_HANDLER])
def test_task_events_roles_are_least_privilege(lambda_app: Assembly, handler: str) -> None:
    role_id = function_with_handler(lambda_app, handler)["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = policy_statements_of_role(lambda_app, role_id)
    actions = {a for s in statements for a in actions_of(s)}
    assert {
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "sqs:SendMessage",
        "sns:Publish",
        "s3:GetObject",
    } <= actions
    s3_resources = render([s["Resource"] for s in statements if "s3:GetObject" in actions_of(s)])
    assert "/inputs/*" in s3_resources
    assert "/audio/*" not in s3_resources
    assert "s3:PutObject" not in actions
    assert not any(a.endswith(":*") for a in actions)


def test_a_dead_letter_consumer_fails_dead_lettered_jobs_with_reads_and_publish_only(
    lambda_app: Assembly,
) -> None:
    # The jobs DLQ is the event source of its own function, with partial batch failures
    lambda_app.service.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [Match.string_like_regexp("^JobsDeadLetterQueue"), "Arn"]},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )
    function = function_with_handler(lambda_app, constants.DEAD_LETTER_HANDLER)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    actions = {a for st in policy_statements_of_role(lambda_app, role) for a in actions_of(st)}
    # It reads a task by key and publishes `failed`; it never writes a task or sends jobs. A dead-lettered
    # part (the parts DLQ is its event source too) marks its parent's plan failed: UpdateItem on plan#* only.
    assert "dynamodb:GetItem" in actions
    assert "sns:Publish" in actions
    assert not {a for a in actions if a.startswith("dynamodb:")} - {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    [update] = [
        st for st in policy_statements_of_role(lambda_app, role) if "dynamodb:UpdateItem" in actions_of(st)
    ]
    assert update["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["plan#*"]}}
    lambda_app.service.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"EventSourceArn": {"Fn::GetAtt": [Match.string_like_regexp("^PartsDeadLetterQueue"), "Arn"]}},
    )
    assert "sqs:SendMessage" not in actions
