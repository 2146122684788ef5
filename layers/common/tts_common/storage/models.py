"""PynamoDB records. Built per table by a cached factory so that tests and stacks can name their own table."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pynamodb.attributes import (
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.connection import Connection
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from tts_common.adapters.aws import ClientTimeouts
from tts_common.storage import schema


@dataclass(frozen=True)
class Records:
    """The record classes bound to one table, and a connection for transactions.

    The classes are built at run time for a table name, so they are typed loosely here.
    """

    task: Any
    claim: Any
    stats: Any
    connection: Connection


def _meta(table_name: str, region: str, host: str | None, timeouts: ClientTimeouts | None) -> type:
    attrs: dict[str, object] = {"table_name": table_name, "region": region, "billing_mode": "PAY_PER_REQUEST"}
    if host:
        attrs["host"] = host
    if timeouts is not None:
        attrs.update(_connection_timeouts(timeouts))
    return type("Meta", (), attrs)


def _connection_timeouts(timeouts: ClientTimeouts) -> dict[str, Any]:
    """PynamoDB's names for the bounds; it counts retries, not attempts."""
    return {
        "connect_timeout_seconds": timeouts.connect_s,
        "read_timeout_seconds": timeouts.read_s,
        "max_retry_attempts": timeouts.max_attempts - 1,
    }


def _index(name: str, pk: str, sk: str, meta: type) -> GlobalSecondaryIndex:  # type: ignore[type-arg]
    index_meta = type(
        "Meta",
        (),
        {
            "index_name": name,
            "projection": IncludeProjection(list(schema.INDEX_PROJECTION)),
            "host": getattr(meta, "host", None),
            "region": meta.region,  # type: ignore[attr-defined]
        },
    )
    attrs = {
        "Meta": index_meta,
        pk: UnicodeAttribute(hash_key=True),
        sk: UnicodeAttribute(range_key=True),
    }
    cls = type(f"Index_{name}", (GlobalSecondaryIndex,), attrs)
    index: GlobalSecondaryIndex = cls()  # type: ignore[type-arg]
    return index


@lru_cache(maxsize=16)
def records_for(
    table_name: str, region: str, host: str | None = None, timeouts: ClientTimeouts | None = None
) -> Records:
    """The records for one table; without `timeouts`, PynamoDB's own (30 s read x 4 attempts)."""
    meta = _meta(table_name, region, host, timeouts)

    class TaskRecord(Model):
        Meta = meta  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True, attr_name=schema.PARTITION_KEY)
        task_id = UnicodeAttribute()
        # Whose task it is: every read through the API is checked against it (tts_common.tenancy).
        tenant_id = UnicodeAttribute()
        status = UnicodeAttribute()
        dedupe_key = UnicodeAttribute()
        # The task's VoiceSpec as JSON: the one place its voice is kept; jobs copy it from here.
        voice = UnicodeAttribute()
        text_chars = NumberAttribute()
        text = UnicodeAttribute(null=True)
        text_key = UnicodeAttribute(null=True)
        custom_filename = UnicodeAttribute(null=True)
        submitted_at = UTCDateTimeAttribute()
        last_event_at = UTCDateTimeAttribute(null=True)
        enqueued_at = UTCDateTimeAttribute(null=True)
        started_at = UTCDateTimeAttribute(null=True)
        completed_at = UTCDateTimeAttribute(null=True)
        failed_at = UTCDateTimeAttribute(null=True)
        attempts = NumberAttribute(default=0)
        pieces_done = NumberAttribute(default=0)
        pieces_total = NumberAttribute(default=0)
        audio_key = UnicodeAttribute(null=True)
        file_size = NumberAttribute(null=True)
        audio_format = UnicodeAttribute(null=True)
        sampling_rate = NumberAttribute(null=True)
        duration_s = NumberAttribute(null=True)
        device = UnicodeAttribute(null=True)
        # The marks formats stored beside the audio, comma-separated (MarksFormat values); null: none.
        marks = UnicodeAttribute(null=True)
        error_code = UnicodeAttribute(null=True)
        error_message = UnicodeAttribute(null=True)
        dedupe_hits = NumberAttribute(default=0)
        # A compatibility API's request fields its answers echo, as JSON (Task.client_request); null: none.
        client_request = UnicodeAttribute(null=True)
        # The webhook (tts_notifier): where to, and how its notification stands (not in the indexes).
        callback_url = UnicodeAttribute(null=True)
        webhook_state = UnicodeAttribute(null=True)
        webhook_event = UnicodeAttribute(null=True)
        webhook_attempts = NumberAttribute(null=True)
        webhook_updated_at = UTCDateTimeAttribute(null=True)
        webhook_last_status = NumberAttribute(null=True)
        webhook_last_error = UnicodeAttribute(null=True)
        webhook_delivered_at = UTCDateTimeAttribute(null=True)
        list_pk = UnicodeAttribute(attr_name=schema.LIST_INDEX_PK)
        status_pk = UnicodeAttribute(attr_name=schema.STATUS_INDEX_PK)
        # Set only while the task is unfinished: the sweeper's sparse index.
        open_pk = UnicodeAttribute(null=True, attr_name=schema.OPEN_INDEX_PK)
        submitted_sk = UnicodeAttribute(attr_name=schema.LIST_INDEX_SK)
        expires_at = TTLAttribute(null=True, attr_name=schema.TTL_ATTRIBUTE)
        version = VersionAttribute()

        by_submitted = _index(schema.LIST_INDEX, schema.LIST_INDEX_PK, schema.LIST_INDEX_SK, meta)
        by_status = _index(schema.STATUS_INDEX, schema.STATUS_INDEX_PK, schema.STATUS_INDEX_SK, meta)
        by_open = _index(schema.OPEN_INDEX, schema.OPEN_INDEX_PK, schema.OPEN_INDEX_SK, meta)

    class ClaimRecord(Model):
        """Who owns a dedupe key: the conditional put of this item decides a submission race."""

        Meta = meta  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True, attr_name=schema.PARTITION_KEY)
        task_id = UnicodeAttribute()
        expires_at = TTLAttribute(null=True, attr_name=schema.TTL_ATTRIBUTE)

    class StatsRecord(Model):
        """Counters kept in step with task transitions, so the report never scans the table."""

        Meta = meta  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True, attr_name=schema.PARTITION_KEY)
        submitted = NumberAttribute(default=0)
        dedupe_hits = NumberAttribute(default=0)
        processing_ms_total = NumberAttribute(default=0)
        processing_count = NumberAttribute(default=0)
        count_queued = NumberAttribute(default=0)
        count_processing = NumberAttribute(default=0)
        count_completed = NumberAttribute(default=0)
        count_done = NumberAttribute(default=0)
        count_failed = NumberAttribute(default=0)

    connection = Connection(region=region, host=host, **(_connection_timeouts(timeouts) if timeouts else {}))
    # Create the botocore clients now: created lazily, many threads' first requests would each build one.
    for model in (TaskRecord, ClaimRecord, StatsRecord):
        _ = model._get_connection().connection.client
    _ = connection.client
    return Records(task=TaskRecord, claim=ClaimRecord, stats=StatsRecord, connection=connection)


def task_pk(task_id: str) -> str:
    return f"task#{task_id}"


def claim_pk(dedupe_key: str) -> str:
    """A dedupe claim; the key already hashes the tenant in (tts_common.voice.dedupe_key)."""
    return f"dedupe#{dedupe_key}"


def stats_pk(tenant_id: str, shard: int) -> str:
    return f"stats#{tenant_id}#{shard}"


def stats_shard_for(task_id: str) -> int:
    """A task's transitions always count on the same shard, chosen by its id."""
    return zlib.crc32(task_id.encode()) % schema.STATS_SHARDS


def list_pk(tenant_id: str) -> str:
    """The tenant's partition of the list index."""
    return f"tenant#{tenant_id}"


def status_pk(tenant_id: str, status: str) -> str:
    """The tenant's partition of the status index for one status."""
    return f"tenant#{tenant_id}#{status}"


def open_shard_for(task_id: str) -> int:
    return zlib.crc32(task_id.encode()) % schema.OPEN_SHARDS


def open_pk(status: str, shard: int) -> str:
    """One shard of the sweeper's index of unfinished tasks in one status (every tenant's)."""
    return f"open#{status}#{shard}"
