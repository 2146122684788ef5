"""The notifier's Lambda entry point on moto, wired from its settings as on AWS: a terminal event in the
batch is delivered (signed with the tenant's KMS-sealed secret), a failing one is reported as a batch item
failure, and a retry lands on the notifications queue with a delay."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.api.support import aws_client, finish_task
from tests.sqs_support import sqs_event
from tts_common.webhooks import Response, verify


@pytest.fixture
def wired(resources, monkeypatch, repository):
    """The handler with its real collaborators (moto), except the network."""
    from tts_common.settings import NotifierSettings, cached_settings
    from tts_common.webhook_secrets import WebhookSecretStore
    from tts_notifier import handler

    secret = WebhookSecretStore(
        dynamodb_client=aws_client("dynamodb"),
        kms_client=aws_client("kms"),
        table_name=resources.key_table_name,
        kms_key_id=resources.credentials_kms_key_id,
    ).put("acme", datetime.now(UTC))
    cached_settings.cache_clear()
    handler._notifier.cache_clear()
    posts: list[tuple[bytes, dict[str, str]]] = []
    statuses = [200]

    def network(target, body, headers):
        posts.append((body, headers))
        return Response(status=statuses[0])

    notifier = handler.notifier_from(cached_settings(NotifierSettings))
    from dataclasses import replace

    fake = replace(notifier, poster=network, resolver=lambda host, port: ["93.184.216.34"])
    monkeypatch.setattr(handler, "_notifier", lambda: fake)
    yield handler, secret, posts, statuses
    cached_settings.cache_clear()


def _done_task(repository, resources):
    from tests.notifier.test_notifier import _task, _terminal_event

    task = _task(repository)
    finish_task(repository, resources, task.task_id)
    return task, _terminal_event(task.task_id)


def test_a_batch_is_delivered_and_signed_with_the_stored_secret(wired, repository, resources, lambda_context):
    handler, secret, posts, _ = wired
    task, event = _done_task(repository, resources)

    answer = handler.handler(sqs_event([event, "not json"]), lambda_context)

    assert answer == {"batchItemFailures": []}
    [(body, headers)] = posts
    assert verify(body, headers["X-TTS-Signature"], secret, now=datetime.now(UTC).timestamp())
    assert json.loads(body)["data"]["conversion_id"] == task.task_id


def test_a_failed_attempt_is_retried_through_the_queue_with_a_delay(
    wired, repository, resources, lambda_context
):
    from tests.api.support import drain

    handler, _, posts, statuses = wired
    statuses[0] = 500
    _, event = _done_task(repository, resources)

    assert handler.handler(sqs_event([event]), lambda_context) == {"batchItemFailures": []}
    assert len(posts) == 1

    # The retry is on the notifications queue, delayed (moto honours DelaySeconds: nothing visible yet).
    assert drain(resources.notifications_queue_url) == []
    attributes = aws_client("sqs").get_queue_attributes(
        QueueUrl=resources.notifications_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


def test_a_dependency_failure_is_a_batch_item_failure(wired, lambda_context, monkeypatch):
    handler, *_ = wired

    class Down:
        def handle(self, body):
            raise RuntimeError("the table did not answer")

    monkeypatch.setattr(handler, "_notifier", lambda: Down())
    answer = handler.handler(sqs_event(["{}"]), lambda_context)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
