"""A submission whose answer is lost on the way back: botocore sends it again, and that must not turn a new
task into a dedupe hit (a `deduplicated: true` with no job ever sent), nor a timeout into a 500."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from tests.voices import make_voice
from tts_common.adapters.aws import ClientTimeouts
from tts_common.exceptions import DependencyUnavailable
from tts_common.task import Task
from tts_common.voice import dedupe_key

TENANT = "acme"

TEXT = "Vastaus katosi matkalla"
VOICE = make_voice()
KEY = dedupe_key(TEXT, VOICE, tenant_id=TENANT)
# Two attempts per call (the API's budget): the first send and one resend by botocore.
TIMEOUTS = ClientTimeouts(connect_s=1.0, read_s=2.0, max_attempts=2)
_TRANSACT = "before-send.dynamodb.TransactWriteItems"


def new_task() -> Task:
    return Task(
        task_id=uuid.uuid4().hex,
        dedupe_key=KEY,
        voice=VOICE,
        text_chars=len(TEXT),
        submitted_at=datetime.now(UTC),
        text=TEXT,
        tenant_id=TENANT,
    )


@pytest.fixture
def records(resources) -> Any:
    from tts_common.storage.models import records_for

    return records_for(resources.table_name, "us-east-1", None, TIMEOUTS)


@pytest.fixture
def repository(records) -> Any:
    from tts_common.storage.repository import TaskRepository

    return TaskRepository(records, ttl_days=30)


@contextmanager
def answers_lost(records: Any, *, sends: int, applied: bool) -> Iterator[list[dict[str, Any]]]:
    """The first `sends` TransactWriteItems requests time out on their way back: the table applies each one
    first if `applied`, else never sees it. Later requests go to moto as usual. Yields every request body."""
    from moto.core.models import botocore_stubber

    seen: list[dict[str, Any]] = []

    def lose_the_answer(request: Any, event_name: str, **_: Any) -> None:
        seen.append(json.loads(request.body))
        if len(seen) > sends:
            return  # moto answers
        if applied:
            botocore_stubber(event_name=event_name, request=request)  # the table writes it...
        raise ReadTimeoutError(endpoint_url=request.url)  # ...and the answer never arrives

    events = records.connection.client.meta.events
    events.register_first(_TRANSACT, lose_the_answer)
    try:
        yield seen
    finally:
        events.unregister(_TRANSACT, lose_the_answer)


def test_a_resent_submission_that_the_table_applied_is_reported_created(repository, records) -> None:
    # Given: the table applies the first send of the submission, but its answer is lost
    task = new_task()
    with answers_lost(records, sends=1, applied=True) as sends:
        # When: botocore sends it again
        stored, created = repository.create_or_get(task)

    # Then: the task is new (its job will be sent), not a dedupe hit of itself
    assert created
    assert stored.task_id == task.task_id
    stats = repository.stats(tenant_id=TENANT)
    assert stats.submitted == 1
    assert stats.dedupe_hits == 0
    assert repository.get(task.task_id, tenant_id=None).dedupe_hits == 0
    # And the resend is the same idempotent request (DynamoDB applies a token once; moto ignores it)
    assert len(sends) == 2
    tokens = [body.get("ClientRequestToken") for body in sends]
    assert tokens[0] is not None
    assert task.task_id in tokens[0]
    assert tokens[1] == tokens[0]


def test_a_submission_that_never_reached_the_table_is_unavailable_and_a_retry_creates_it(
    repository, records
) -> None:
    # Given: every send of the submission times out before the table sees it
    with (
        answers_lost(records, sends=TIMEOUTS.max_attempts, applied=False) as sends,
        pytest.raises(DependencyUnavailable),
    ):
        # When
        repository.create_or_get(new_task())

    # Then: a typed "try again" (the API's 503), after every attempt, and nothing was written
    assert len(sends) == TIMEOUTS.max_attempts
    assert repository.stats(tenant_id=TENANT).submitted == 0

    # And the client's retry (a new request, so a new task id) creates the task
    retry = new_task()
    stored, created = repository.create_or_get(retry)
    assert created
    assert stored.task_id == retry.task_id
    assert repository.stats(tenant_id=TENANT).submitted == 1
