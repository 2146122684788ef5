"""Dashboard, alarms and outputs: what an operator looks at after `make deploy`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from infra_helpers import REPO_ROOT, Assembly, render

from infra import constants
from tts_common.domain import TaskStatus
from tts_common.metrics import STATUS_DIMENSION, Metric

pytestmark = pytest.mark.infra


def dashboard_metrics(app: Assembly) -> str:
    body = app.only(app.service_name, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]
    return render(body)


def dashboard_body(app: Assembly) -> dict[str, Any]:
    """The dashboard body as JSON; each CloudFormation token (a queue name, the region) is a placeholder."""
    body = app.only(app.service_name, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    return dict(json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts)))


def app_metrics_on_dashboard(app: Assembly) -> list[tuple[str, dict[str, str]]]:
    """(metric name, dimensions) of every graphed metric in the app's namespace."""
    found = []
    for widget in dashboard_body(app)["widgets"]:
        for row in widget["properties"].get("metrics", []):
            # [namespace, name, dim1, value1, ..., {rendering options}]; a math expression row is a dict.
            fields = [f for f in row if isinstance(f, str)]
            if fields and fields[0] == app.config.metrics_namespace:
                found.append((fields[1], dict(zip(fields[2::2], fields[3::2], strict=True))))
    return found


def app_metrics_in_alarms(app: Assembly) -> set[str]:
    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if node.get("Namespace") == app.config.metrics_namespace and "MetricName" in node:
                yield node["MetricName"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    return set(walk(alarms(app)))


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
        app.config.metrics_namespace,
    ):
        assert name in metrics, f"{name} missing from the {mode} dashboard"
    transitions = [dims for name, dims in app_metrics_on_dashboard(app) if name == Metric.TASK_TRANSITIONS]
    assert {dims[STATUS_DIMENSION] for dims in transitions} == set(TaskStatus)
    assert all(dims["service"] == app.config.service_name for _, dims in app_metrics_on_dashboard(app))
    worker_metric = '\\"Duration\\"' if mode == "lambda" else "RunningTaskCount"
    assert worker_metric in metrics


@pytest.mark.parametrize("mode", ["lambda", "ecs"])
def test_dashboard_and_alarms_read_only_metrics_the_functions_emit(
    mode: str, request: pytest.FixtureRequest
) -> None:
    # Given the synthesized dashboard and alarms
    app: Assembly = request.getfixturevalue(f"{mode}_app")
    graphed = {name for name, _ in app_metrics_on_dashboard(app)}
    # Then every custom metric they read is one tts_common.metrics declares (and the functions emit),
    unknown = (graphed | app_metrics_in_alarms(app)) - set(Metric)
    assert not unknown, f"the {mode} dashboard or alarms read metrics no function emits: {sorted(unknown)}"
    # and every metric the functions emit is on the dashboard.
    unseen = set(Metric) - graphed
    assert not unseen, f"metrics emitted but not on the {mode} dashboard: {sorted(unseen)}"


def test_every_declared_metric_is_emitted_through_the_declaration() -> None:
    # Given the functions' sources
    sources = {path: path.read_text(encoding="utf-8") for path in (REPO_ROOT / "functions").rglob("*.py")}
    code = "\n".join(sources.values())
    # Then each declared metric is emitted somewhere by its member,
    never = [m.name for m in Metric if not re.search(rf"\bMetric\.{m.name}\b", code)]
    assert not never, f"declared in tts_common.metrics but emitted by no function: {never}"
    # and no function names a metric with a string of its own.
    copies = [
        f"{path.relative_to(REPO_ROOT)}: {m.value}"
        for path, text in sources.items()
        for m in Metric
        if re.search(rf"[\"']{m.value}[\"']", text)
    ]
    assert not copies, f"metric names as string literals (use tts_common.metrics.Metric): {copies}"


def test_alarms_cover_dead_letters_age_worker_and_api(lambda_app: Assembly) -> None:
    config = lambda_app.config
    # The DLQ consumer fails and deletes dead-lettered jobs: one alarm counts them, one sees any left behind.
    dead_lettered = alarm_named(lambda_app, "JobsDeadLetters")
    assert f'"MetricName": "{Metric.TASKS_DEAD_LETTERED}"' in render(dead_lettered)
    assert f'"Namespace": "{config.metrics_namespace}"' in render(dead_lettered)
    assert dead_lettered["Threshold"] == 1
    assert dead_lettered["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    unhandled = alarm_named(lambda_app, "UnhandledJobDeadLetters")
    assert unhandled["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert "JobsDeadLetterQueue" in render(unhandled["Dimensions"])
    # Fan-out parts have a DLQ of their own, drained by the same consumer: the same pair of alarms.
    parts = alarm_named(lambda_app, "PartsDeadLetters")
    assert f'"MetricName": "{Metric.PARTS_DEAD_LETTERED}"' in render(parts)
    assert parts["Threshold"] == 1
    unhandled_parts = alarm_named(lambda_app, "UnhandledPartDeadLetters")
    assert unhandled_parts["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert "PartsDeadLetterQueue" in render(unhandled_parts["Dimensions"])

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
    assert f'"MetricName": "{Metric.TASKS_FAILED}"' in worker
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
