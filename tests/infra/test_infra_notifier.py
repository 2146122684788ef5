"""The webhook notifier on AWS: its own queue on the channel (terminal events only), its function with partial
batch failures, least-privilege grants (KMS Decrypt for webhook secrets only), the credentials key in the
stateful stack, and never the local stack's loopback switch."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match
from infra_helpers import Assembly, actions_of, function_with_handler, policy_statements_of_role, render

from infra import constants
from infra.capabilities.notifier import NOTIFIED_STATUSES, NOTIFIER_TIMEOUT
from tts_common.settings import NotifierSettings
from tts_common.webhook_secrets import CONTEXT_PURPOSE, PURPOSE

pytestmark = pytest.mark.infra


def _role_statements(app: Assembly) -> list[dict]:
    role = function_with_handler(app, constants.NOTIFIER_HANDLER)["Properties"]["Role"]["Fn::GetAtt"][0]
    return policy_statements_of_role(app, role)


def test_the_notifications_queue_subscribes_to_terminal_events_only(lambda_app: Assembly) -> None:
    assert NOTIFIED_STATUSES == ["done", "failed"]
    lambda_app.service.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "sqs",
            "RawMessageDelivery": True,
            "FilterPolicy": {"status": ["done", "failed"]},
            "Endpoint": {"Fn::GetAtt": [Match.string_like_regexp("^NotifierNotificationsQueue"), "Arn"]},
        },
    )
    # The lifecycle consumer's subscription is unchanged: still every event.
    subscriptions = lambda_app.resources(lambda_app.service_name, "AWS::SNS::Subscription").values()
    events = [s for s in subscriptions if "ChannelEventsQueue" in render(s["Properties"]["Endpoint"])]
    assert len(events) == 1
    assert "FilterPolicy" not in events[0]["Properties"]


def test_the_queue_has_a_dlq_and_outlasts_the_retry_window(lambda_app: Assembly) -> None:
    queues = lambda_app.resources(lambda_app.service_name, "AWS::SQS::Queue")
    queue = next(q for lid, q in queues.items() if lid.startswith("NotifierNotificationsQueue"))["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0].startswith(
        "NotifierNotificationsDeadLetterQueue"
    )
    assert queue["VisibilityTimeout"] >= 6 * NOTIFIER_TIMEOUT.to_seconds()
    window_max = NotifierSettings.model_fields["webhook_retry_window_s"].metadata
    assert any(getattr(m, "le", 0) < queue["MessageRetentionPeriod"] for m in window_max if hasattr(m, "le"))
    assert queue["KmsMasterKeyId"] if "KmsMasterKeyId" in queue else queue["SqsManagedSseEnabled"]


def test_the_function_reports_partial_batch_failures_and_is_bounded(lambda_app: Assembly) -> None:
    lambda_app.service.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {
                "Fn::GetAtt": [Match.string_like_regexp("^NotifierNotificationsQueue"), "Arn"]
            },
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": Match.any_value()},
        },
    )
    props = function_with_handler(lambda_app, constants.NOTIFIER_HANDLER)["Properties"]
    assert props["Timeout"] == NOTIFIER_TIMEOUT.to_seconds()
    env = props["Environment"]["Variables"]
    assert {"TASKS_TABLE_NAME", "AUDIO_BUCKET_NAME", "TTS_KEY_TABLE", "NOTIFICATIONS_QUEUE_URL"} <= set(env)


@pytest.mark.parametrize("app_name", ["lambda_app", "ecs_app", "dev_app"])
def test_no_function_may_call_loopback_on_aws(app_name: str, request: pytest.FixtureRequest) -> None:
    app: Assembly = request.getfixturevalue(app_name)
    for function in app.resources(app.service_name, "AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert "WEBHOOK_ALLOW_LOOPBACK" not in variables
        assert "WEBHOOK_BACKOFF_SCALE" not in variables
    assert "WEBHOOK_ALLOW_LOOPBACK" not in render(app.templates[app.service_name])


def test_the_notifier_role_is_least_privilege(lambda_app: Assembly) -> None:
    statements = _role_statements(lambda_app)
    actions = {a for s in statements for a in actions_of(s)}
    assert {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "s3:GetObject",
        "sqs:SendMessage",
        "kms:Decrypt",
    } <= actions
    # No scans, queries, deletes or writes of objects; no KMS encrypt; no wildcards of whole services.
    assert not actions & {"dynamodb:Scan", "dynamodb:Query", "dynamodb:DeleteItem", "dynamodb:PutItem"}
    assert not actions & {"s3:PutObject", "kms:Encrypt", "kms:GenerateDataKey", "sns:Publish"}
    assert not any(a.endswith(":*") or a == "*" for a in actions)
    s3_resources = render([s["Resource"] for s in statements if "s3:GetObject" in actions_of(s)])
    assert "/audio/*" in s3_resources
    assert "/inputs/*" not in s3_resources
    [decrypt] = [s for s in statements if "kms:Decrypt" in actions_of(s)]
    assert decrypt["Condition"] == {"StringEquals": {f"kms:EncryptionContext:{CONTEXT_PURPOSE}": PURPOSE}}
    assert constants.OUTPUT_CREDENTIALS_KEY_ARN in render(decrypt["Resource"])


def test_no_other_function_may_decrypt_webhook_secrets(lambda_app: Assembly) -> None:
    notifier_role = function_with_handler(lambda_app, constants.NOTIFIER_HANDLER)["Properties"]["Role"]
    for function in lambda_app.resources(lambda_app.service_name, "AWS::Lambda::Function").values():
        role = function["Properties"].get("Role")
        if role == notifier_role or not isinstance(role, dict) or "Fn::GetAtt" not in role:
            continue
        for statement in policy_statements_of_role(lambda_app, role["Fn::GetAtt"][0]):
            if "kms:Decrypt" in actions_of(statement):
                assert render(statement.get("Condition", {})).count(f'"{PURPOSE}"') == 0


def test_the_credentials_key_rotates_is_retained_and_named_by_an_output(lambda_app: Assembly) -> None:
    resources = lambda_app.templates[lambda_app.stateful_name]["Resources"]
    key = resources["CredentialsKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    aliases = [r for r in resources.values() if r["Type"] == "AWS::KMS::Alias"]
    # Per stack: two stages in one account and region must not claim one alias.
    names = [a["Properties"]["AliasName"] for a in aliases]
    assert names == [f"alias/tts-credentials-{lambda_app.stateful_name}"]
    outputs = lambda_app.templates[lambda_app.stateful_name]["Outputs"]
    assert constants.OUTPUT_CREDENTIALS_KEY_ARN in outputs
    service_outputs = lambda_app.templates[lambda_app.service_name]["Outputs"]
    assert constants.OUTPUT_NOTIFICATIONS_QUEUE_URL in service_outputs
