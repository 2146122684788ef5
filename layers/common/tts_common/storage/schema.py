"""The table's key schema and indexes: one source of truth for PynamoDB, the local stack and the CDK app."""

from __future__ import annotations

PARTITION_KEY = "pk"
TTL_ATTRIBUTE = "expires_at"

# A tenant's tasks newest first: a sparse index on task items only, one partition per tenant
# (list_pk = tenant#<tenant id>).
LIST_INDEX = "by_submitted"
LIST_INDEX_PK = "list_pk"
LIST_INDEX_SK = "submitted_sk"

# A tenant's tasks in one status newest first (status_pk = tenant#<tenant id>#<status>).
STATUS_INDEX = "by_tenant_status"
STATUS_INDEX_PK = "status_pk"
STATUS_INDEX_SK = "submitted_sk"

# The sweeper's view across tenants: only unfinished tasks carry open_pk (open#<status>#<shard>), so the index
# holds just the tasks that can still stall, spread over OPEN_SHARDS partitions per status (no hot key).
OPEN_INDEX = "by_open"
OPEN_INDEX_PK = "open_pk"
OPEN_INDEX_SK = "submitted_sk"
OPEN_SHARDS = 8

# Attributes the list views need; the input text stays out of the indexes.
INDEX_PROJECTION = (
    "task_id",
    "tenant_id",
    "status",
    "dedupe_key",
    "voice",
    "text_chars",
    "custom_filename",
    "submitted_at",
    "last_event_at",
    "enqueued_at",
    "started_at",
    "completed_at",
    "failed_at",
    "attempts",
    "pieces_done",
    "pieces_total",
    "audio_key",
    "file_size",
    "audio_format",
    "sampling_rate",
    "duration_s",
    "device",
    "marks",
    "error_code",
    "error_message",
    "dedupe_hits",
    "client_request",
    TTL_ATTRIBUTE,
)

INDEXES: tuple[tuple[str, str, str], ...] = (
    (LIST_INDEX, LIST_INDEX_PK, LIST_INDEX_SK),
    (STATUS_INDEX, STATUS_INDEX_PK, STATUS_INDEX_SK),
    (OPEN_INDEX, OPEN_INDEX_PK, OPEN_INDEX_SK),
)

# Each tenant's stats counters are spread over this many items so that concurrent transactions rarely meet
# on one.
STATS_SHARDS = 8
