"""The table's key schema and indexes: one source of truth for PynamoDB, the local stack and the CDK app."""

from __future__ import annotations

PARTITION_KEY = "pk"
TTL_ATTRIBUTE = "expires_at"

# Newest-first listing of every task: a sparse index on task items only.
LIST_INDEX = "by_submitted"
LIST_INDEX_PK = "list_pk"
LIST_INDEX_SK = "submitted_sk"

# Newest-first listing filtered by status.
STATUS_INDEX = "by_status"
STATUS_INDEX_PK = "status"
STATUS_INDEX_SK = "submitted_sk"

# Attributes the list views need; the input text stays out of the indexes.
INDEX_PROJECTION = (
    "task_id",
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
    "error_code",
    "error_message",
    "dedupe_hits",
    TTL_ATTRIBUTE,
)

INDEXES: tuple[tuple[str, str, str], ...] = (
    (LIST_INDEX, LIST_INDEX_PK, LIST_INDEX_SK),
    (STATUS_INDEX, STATUS_INDEX_PK, STATUS_INDEX_SK),
)

# Stats counters are spread over this many items so that concurrent transactions rarely meet on one.
STATS_SHARDS = 8
