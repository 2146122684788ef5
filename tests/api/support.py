"""Helpers for the API tests: API Gateway events, queue readers, and the worker's part played by hand."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3

EVENTS_DIR = Path(__file__).parent / "events"
REGION = "us-east-1"
# The tenant whose key the `client` fixture sends.
TENANT = "acme"


@cache
def aws_client(service: str) -> Any:
    """One client per service for the whole run: moto stubs it under every later mock too."""
    return boto3.client(service, region_name=REGION)


@dataclass
class TickingClock:
    """A clock that moves one second per reading, so submission order is listing order."""

    # Starts at the real time: the store judges expiry by the real clock.
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class RecordedMetrics:
    """Stands in for Powertools Metrics (whose metric set is shared by every instance in the process)."""

    added: list[tuple[str, float]] = field(default_factory=list)

    def add_metric(self, *, name: str, unit: Any, value: float) -> None:
        self.added.append((name, value))

    def total(self, name: str) -> float:
        return sum(v for n, v in self.added if n == name)


def api_event(
    kind: str,
    *,
    method: str,
    path: str,
    body: Any = None,
    query: dict[str, str] | None = None,
    tenant: str | None = None,
    headers: dict[str, str] | None = None,
):
    """An API Gateway event (kind `rest_v1` or `http_v2`) from the fixture file, for one request; with a
    `tenant`, the context the Lambda authorizer gives a key of that tenant (else no authorizer ran)."""
    event = json.loads((EVENTS_DIR / f"{kind}.json").read_text())
    event["headers"].update(headers or {})
    if tenant is not None:
        from tts_common.tenancy import CONTEXT_KEY_ID, CONTEXT_TENANT

        context = {CONTEXT_TENANT: tenant, CONTEXT_KEY_ID: f"{tenant}-key"}
        if kind == "rest_v1":  # REST: the authorizer's context flat, beside its principalId
            event["requestContext"]["authorizer"] = {
                "principalId": tenant,
                **context,
                "integrationLatency": 3,
            }
        else:  # HTTP API: a Lambda authorizer's context under `lambda`
            event["requestContext"]["authorizer"] = {"lambda": context}
    payload = None if body is None else json.dumps(body)
    if kind == "rest_v1":
        event.update(path=path, httpMethod=method, body=payload)
        event["requestContext"].update(httpMethod=method, path=f"/prod{path}")
        event["pathParameters"] = {"proxy": path.lstrip("/")}
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    else:
        event.update(rawPath=path, body=payload, rawQueryString=urlencode(query or {}))
        event["requestContext"]["http"].update(method=method, path=path)
        if query:
            event["queryStringParameters"] = query
        event["headers"].pop("content-length", None)
    return event


def key_store(resources) -> Any:
    from tts_common.tenancy import ApiKeyStore

    return ApiKeyStore(dynamodb_client=aws_client("dynamodb"), table_name=resources.key_table_name)


def create_key(resources, tenant_id: str, name: str = "test") -> str:
    """A new key of the tenant in the test's key table; the clear key."""
    key, _ = key_store(resources).create(tenant_id, name, datetime.now(UTC))
    return key


def drain(queue_url: str) -> list[str]:
    """Every body now on a queue, received and deleted."""
    sqs = aws_client("sqs")
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = got.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def jobs_on_queue(resources) -> list[Any]:
    from tts_common.messages import SynthesisJob

    return [SynthesisJob.model_validate_json(body) for body in drain(resources.jobs_queue_url)]


def events_on_queue(resources) -> list[Any]:
    from tts_common.messages import LifecycleEvent

    return [LifecycleEvent.model_validate_json(body) for body in drain(resources.events_queue_url)]


def finish_task(repository, resources, task_id: str, *, audio: bytes = b"RIFF....WAVEfmt fake") -> None:
    """Play the worker's part: audio into the bucket, a `done` event into the record (in the task's format
    and at the rate its voice asks for, else 16 kHz)."""
    from tts_common.domain import TaskStatus, audio_key_for
    from tts_common.messages import AudioInfo, LifecycleEvent
    from tts_common.voice import FORMATS

    voice = repository.get(task_id, tenant_id=None).voice
    key = audio_key_for(task_id, voice.format)
    content_type = FORMATS[voice.format].content_type
    aws_client("s3").put_object(Bucket=resources.bucket_name, Key=key, Body=audio, ContentType=content_type)
    info = AudioInfo(
        audio_key=key,
        file_size=len(audio),
        format=voice.format,
        sampling_rate=voice.output_rate(16_000),
        duration_s=1.25,
        device="cpu",
    )
    now = datetime.now(UTC)
    repository.apply_events(
        task_id,
        [
            LifecycleEvent(task_id=task_id, status=TaskStatus.PROCESSING, at=now - timedelta(seconds=2)),
            LifecycleEvent(task_id=task_id, status=TaskStatus.DONE, at=now, audio=info),
        ],
    )


def fail_task(repository, task_id: str) -> None:
    from tts_common.domain import TaskStatus
    from tts_common.messages import ErrorInfo, LifecycleEvent

    repository.apply_events(
        task_id,
        [
            LifecycleEvent(
                task_id=task_id,
                status=TaskStatus.FAILED,
                at=datetime.now(UTC),
                attempt=3,
                error=ErrorInfo(code="empty_tokenization", message="nothing to say"),
            )
        ],
    )
