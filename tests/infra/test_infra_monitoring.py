"""Dashboard, alarms and outputs: what an operator looks at after `make deploy`."""

from __future__ import annotations

from typing import Any

import pytest
from infra_helpers import Assembly, render

from infra import constants

pytestmark = pytest.mark.infra


def dashboard_metrics(app: Assembly) -> str:
    body = app.only(app.service_name, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]
    return render(body)


def alarms(app: Assembly) -> dict[str, dict[str, Any]]:
    return app.resources(app.service_name, "AWS::CloudWatch::Alarm")


def alarm_named(app: Assembly, fragment: str) -> dict[str, Any]:
    found = [a for lid, a in alarms(app).items() if lid.startswith(f"Monitoring{fragment}")]
    assert len(found) == 1, f"expected one alarm {fragment}"
    return found[0]["Properties"]


@pytest.mark.parametrize("mode", ["lambda", "ecs"])
def test_dashboard_shows_queues_worker_api_and_tasks(mode: str, request: pytest.FixtureRequest) -> None:
    app: Assembly = request.getfixturevalue(f"{mode}_app")
    metrics = dashboard_metrics(app)
    for name in (
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "4XXError",
        "5XXError",
        "Latency",
        "p99",
        constants.METRIC_TASKS_SUBMITTED,
        constants.METRIC_TASKS_COMPLETED,
        constants.METRIC_TASKS_FAILED,
        constants.METRIC_SYNTHESIS_SECONDS,
        constants.METRIC_TASK_TRANSITIONS,
        app.config.metrics_namespace,
    ):
        assert name in metrics, f"{name} missing from the {mode} dashboard"
    for status in constants.TASK_STATUSES:
        assert f'\\"status\\",\\"{status}\\"' in metrics
    worker_metric = '\\"Duration\\"' if mode == "lambda" else "RunningTaskCount"
    assert worker_metric in metrics


def test_alarms_cover_dead_letters_age_worker_and_api(lambda_app: Assembly) -> None:
    config = lambda_app.config
    jobs_dlq = alarm_named(lambda_app, "JobsDeadLetters")
    assert jobs_dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert jobs_dlq["Threshold"] == 1
    assert jobs_dlq["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert "JobsDeadLetterQueue" in render(jobs_dlq["Dimensions"])

    assert "EventsDeadLetterQueue" in render(alarm_named(lambda_app, "EventsDeadLetters")["Dimensions"])

    oldest = alarm_named(lambda_app, "JobsOldestMessage")
    assert oldest["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert oldest["Threshold"] == config.oldest_message_alarm_s

    worker = alarm_named(lambda_app, "WorkerErrors")
    assert worker["MetricName"] == "Errors"
    assert worker["Namespace"] == "AWS/Lambda"

    api = alarm_named(lambda_app, "Api5xx")
    assert api["MetricName"] == "5XXError"
    assert api["Namespace"] == "AWS/ApiGateway"

    assert "TaskEventsErrors" in render(list(alarms(lambda_app)))


def test_ecs_worker_errors_come_from_the_worker_metrics(ecs_app: Assembly) -> None:
    worker = render(alarm_named(ecs_app, "WorkerErrors"))
    assert f'"Namespace": "{ecs_app.config.metrics_namespace}"' in worker
    assert f'"MetricName": "{constants.METRIC_TASKS_FAILED}"' in worker
    assert '"Name": "service"' in worker


def test_alarm_notifications_only_when_an_email_is_given(lambda_app: Assembly, ecs_app: Assembly) -> None:
    assert all("AlarmActions" not in a["Properties"] for a in alarms(lambda_app).values())
    assert constants.OUTPUT_ALARM_TOPIC_ARN not in lambda_app.templates[lambda_app.service_name]["Outputs"]

    ecs_app.service.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": ecs_app.config.alarm_email}
    )
    paging = [a for lid, a in alarms(ecs_app).items() if lid.startswith("Monitoring")]
    assert paging
    assert all(a["Properties"].get("AlarmActions") for a in paging)
    # The alarm topic is encrypted with a rotating key that CloudWatch may use.
    ecs_app.service.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    assert "cloudwatch.amazonaws.com" in render(ecs_app.resources(ecs_app.service_name, "AWS::KMS::Key"))


@pytest.mark.parametrize("mode", ["lambda", "ecs"])
def test_outputs_name_what_a_user_needs(mode: str, request: pytest.FixtureRequest) -> None:
    app: Assembly = request.getfixturevalue(f"{mode}_app")
    outputs = app.templates[app.service_name]["Outputs"]
    assert set(constants.SERVICE_OUTPUTS) <= set(outputs)
    assert set(constants.STATEFUL_OUTPUTS) <= set(app.templates[app.stateful_name]["Outputs"])
    assert "execute-api" in render(outputs[constants.OUTPUT_API_URL]["Value"])
    worker_output = (
        constants.OUTPUT_WORKER_FUNCTION_NAME if mode == "lambda" else constants.OUTPUT_ECS_CLUSTER_NAME
    )
    assert worker_output in outputs
