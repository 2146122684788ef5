"""Make moto's DynamoDB safe under threads, as DynamoDB itself is.

moto applies a transaction item by item and, when one condition fails, restores a copy of the whole table
taken before it started. Two transactions on two threads can then undo each other's committed writes
(seen here: a lost stats update while 16 submissions raced). Real DynamoDB serializes them; one lock
around moto's write paths gives the same semantics to the in-process mock and the local moto server.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_LOCK = threading.RLock()
_WRITE_METHODS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
    "get_item",
    "query",
    "scan",
    "transact_get_items",
)


def make_dynamodb_thread_safe() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITE_METHODS:
        method = getattr(DynamoDBBackend, name, None)
        if method is None or getattr(method, "_tts_locked", False):
            continue

        def locked(*args: Any, __method: Any = method, **kwargs: Any) -> Any:
            with _LOCK:
                return __method(*args, **kwargs)

        functools.update_wrapper(locked, method)
        locked._tts_locked = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, locked)
