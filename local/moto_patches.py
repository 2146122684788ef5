"""Make moto behave like AWS under the local stack's load: safe under threads, and with a cost per request
that does not grow with the data it holds (written against moto 5.2; tests/local/test_moto_patches.py
compares the patched paths with moto's own).

- DynamoDB under threads: moto applies a transaction item by item and, when one condition fails, restores
  its backup. Two transactions on two threads could then undo each other's committed writes (seen here: a
  lost stats update while 16 submissions raced). Real DynamoDB serializes them; one lock around moto's
  DynamoDB calls gives the same semantics to the in-process mock and the local moto server.
- TransactWriteItems: moto backs up by deep-copying the whole table once per item of the transaction, so
  a submission's cost grew with every stored task (p50 1.2 s -> 16 s by ~1,800 tasks). Here a transaction
  backs up only the items it writes and restores exactly those: all-or-nothing, conditions and
  CancellationReasons as moto's.
- Queries on a GSI: moto compares every item of the table, through DynamoType's Python-level comparisons,
  and sorts the whole table first; then converts each returned item to JSON once per projected attribute.
  The same comparisons on plain values, and one conversion per item: a list view of 3,000 tasks drops from
  ~0.2-0.5 s (held under the lock) to a few tens of ms, now mostly the fixed cost of the page returned.
- Memory: moto keeps every model instance it ever creates for its dashboard (`instances_tracked`),
  including each deep copy of a DynamoDB item and each SQS message (17.5 GB RSS seen). Items and messages
  are not tracked. SQS remembers every deleted receipt handle and SNS every published message: both capped.
- SQS (and so every SNS -> SQS delivery): SendMessage computed all the queue's attributes, counting its
  messages by scanning the queue three times; GetQueueAttributes did so three times per name asked (and
  ReceiveMessage asks for one per message it returns); ReceiveMessage listed every visible message to take
  the first few; Delete and ChangeMessageVisibility scanned the queue in Python for the receipt handle.
  Attributes are now computed per name when asked, visible messages are found lazily, and receipt handles
  are indexed.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

_LOCK = threading.RLock()
_DYNAMODB_METHODS = (
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
# How much history moto keeps for a day of local use.
DELETED_RECEIPT_HANDLES_KEPT = 10_000  # per queue: deleting one of these again still succeeds
SNS_NOTIFICATIONS_KEPT = 1_000  # per topic

# What each patch replaced, by (class, attribute): the tests compare moto's own behaviour with ours.
MOTO_ORIGINALS: dict[tuple[type, str], Any] = {}
_applied: set[str] = set()
_applied_lock = threading.Lock()


def patch_moto() -> None:
    """Everything below: what the local stack's moto server runs with."""
    make_dynamodb_thread_safe()
    bound_sqs_and_sns_costs()


def make_dynamodb_thread_safe() -> None:
    """One lock around moto's DynamoDB calls, transactions that back up only the items they write, and
    cheaper comparisons (tests/conftest.py applies this to every test)."""
    if not _once("dynamodb"):
        return
    from moto.dynamodb.models import DynamoDBBackend

    _apply(dynamodb_patches())
    for name in _DYNAMODB_METHODS:
        method = getattr(DynamoDBBackend, name)

        def locked(*args: Any, __method: Any = method, **kwargs: Any) -> Any:
            with _LOCK:
                return __method(*args, **kwargs)

        functools.update_wrapper(locked, method)
        setattr(DynamoDBBackend, name, locked)


def bound_sqs_and_sns_costs() -> None:
    """SQS and SNS calls that cost the same whatever the queue holds, and a bounded history."""
    if _once("sqs_sns"):
        _apply(sqs_and_sns_patches())


def dynamodb_patches() -> list[tuple[type, str, Any]]:
    """(class, attribute, new value) for each DynamoDB change but the lock."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import Table

    return [
        (Item, "__new__", _untracked_new),
        (DynamoDBBackend, "transact_write_items", _transact_write_items),
        (DynamoType, "cast_value", property(_cast_value(DynamoType.cast_value.fget))),  # type: ignore[attr-defined]
        (Table, "sorted_items", _sorted_items(Table.sorted_items)),
        (Table, "all_items", _all_items(Table.all_items)),
        (Item, "project", _project),
    ]


def sqs_and_sns_patches() -> list[tuple[type, str, Any]]:
    """(class, attribute, new value) for each SQS and SNS change (tests apply them with monkeypatch)."""
    from moto.sns.models import Topic
    from moto.sqs.models import Message, Queue, SQSBackend

    return [
        (Message, "__new__", _untracked_new),
        (Message, "mark_received", _indexing_receipt_handles(Message.mark_received)),
        (Queue, "attributes", property(_QueueAttributes)),
        (Queue, "messages", property(_VisibleMessages)),
        (Queue, "delete_message", _delete_message),
        (Queue, "__init__", _after_init(Queue.__init__, _cap_deleted_handles)),
        (SQSBackend, "change_message_visibility", _change_message_visibility),
        (Topic, "__init__", _after_init(Topic.__init__, _cap_sent_notifications)),
    ]


def _apply(patches: list[tuple[type, str, Any]]) -> None:
    for owner, name, value in patches:
        MOTO_ORIGINALS.setdefault((owner, name), owner.__dict__.get(name))
        setattr(owner, name, value)


def _once(name: str) -> bool:
    with _applied_lock:
        if name in _applied:
            return False
        _applied.add(name)
        return True


def _new_untracked(cls: type, *_args: Any, **_kwargs: Any) -> Any:
    """`__new__` without adding the instance to moto's never-emptied `instances_tracked` list."""
    return object.__new__(cls)


_untracked_new = staticmethod(_new_untracked)


def _after_init(init: Callable[..., None], then: Callable[[Any], None]) -> Callable[..., None]:
    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        then(self)

    return wrapper


# -- DynamoDB: a transaction backs up the items it writes, not the tables ------------------------------


class _UndoLog:
    """The items a transaction is about to write, as they were, and how to put them back."""

    def __init__(self) -> None:
        self._items: list[tuple[Any, Any, Any, Any]] = []  # (table, hash key, range key, item copy or None)
        self._streams: dict[int, tuple[Any, int]] = {}

    def save(self, table: Any, hash_key: Any, range_key: Any) -> None:
        current = table.get_item(hash_key, range_key)
        # A copy: UpdateItem changes the stored item in place.
        self._items.append((table, hash_key, range_key, copy.deepcopy(current)))
        if table.stream_shard is not None and id(table) not in self._streams:
            self._streams[id(table)] = (table, len(table.stream_shard.items))

    def restore(self) -> None:
        for table, hash_key, range_key, saved in reversed(self._items):
            if table.range_key_attr is None:
                if saved is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = saved
                continue
            bucket = table.items[hash_key]
            if saved is None:
                bucket.pop(range_key, None)
                if not bucket:
                    del table.items[hash_key]
            else:
                bucket[range_key] = saved
        for table, length in self._streams.values():
            if table.stream_shard is not None:
                del table.stream_shard.items[length:]


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto 5.2's DynamoDBBackend.transact_write_items, with an undo log instead of copies of the tables."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    undo = _UndoLog()
    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[tuple[str, str, dict[str, Any] | None] | tuple[None, None, None]] = []
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        if len(list(item.keys())) > 1:
            undo.restore()  # moto raises this without undoing the items before it
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            condition_expression = op.get("ConditionExpression")
            expression_attribute_names = op.get("ExpressionAttributeNames")
            expression_attribute_values = op.get("ExpressionAttributeValues")
            return_values_on_condition_check_failure = op.get("ReturnValuesOnConditionCheckFailure")

            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            check_unicity(table_name, key)

            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition_op = get_filter_expression(
                    condition_expression, expression_attribute_names, expression_attribute_values
                )
                if not condition_op.expr(current):
                    if return_values_on_condition_check_failure == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)

            if op_type != "ConditionCheck":
                table = self.get_table(table_name)
                undo.save(table, *self.get_keys_value(table, key))
            if op_type == "Put":
                self.put_item(
                    table_name,
                    op["Item"],
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Delete":
                self.delete_item(
                    table_name,
                    key,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            undo.restore()
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:  # as moto: any other failure cancels the transaction with its name as the code
            errors.append((type(e).__name__, str(e), original_item))

    if any(code is not None for code, _, _ in errors):
        undo.restore()
        raise TransactionCanceledException(errors)


# A GSI query compares every item of the table (moto has no index): ~60 us per item in moto's DynamoType
# comparisons made a list view of 3,000 tasks take 0.2-0.5 s, under the lock above. The same comparisons
# without the Python-level dispatch are several times cheaper (still linear in the table).
_PLAIN_TYPES = frozenset({"S", "B", "BOOL"})  # moto's cast_value of these is the value itself
_SORTABLE_TYPES = frozenset({"S", "N", "B"})


def _cast_value(moto_cast_value: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def cast_value(self: Any) -> Any:
        kind = self.type
        if kind in _PLAIN_TYPES:
            return self.value
        if kind == "N":
            return Decimal(self.value)
        return moto_cast_value(self)

    return cast_value


def _sorted_items(moto_sorted_items: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    def sorted_items(
        self: Any, hash_key_attrs: list[str], range_key_attrs: list[Any], items: list[Any]
    ) -> Any:
        names = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
        keys = [tuple(item.attrs[name] for name in names) for item in items]
        # moto sorts on tuples of DynamoType: equal when type and value are, ordered by value. Tuples of
        # values order the same when each position holds one scalar type (always, for key attributes).
        if keys and not all(
            len({key[i].type for key in keys}) == 1 and keys[0][i].type in _SORTABLE_TYPES
            for i in range(len(names))
        ):
            return moto_sorted_items(self, hash_key_attrs, range_key_attrs, items)
        order = sorted(range(len(items)), key=lambda i: tuple(v.cast_value for v in keys[i]))
        items[:] = [items[i] for i in order]
        return items

    return sorted_items


def _all_items(moto_all_items: Callable[[Any], list[Any]]) -> Callable[[Any], list[Any]]:
    def all_items(self: Any) -> list[Any]:
        items = list(self.items.values())
        if self.range_key_attr:
            items = [item for bucket in items for item in bucket.values()]
        # moto sorts on the keys as DynamoType; on their values when each is one scalar type (always).
        hash_types = {item.hash_key.type for item in items}
        range_types = {item.range_key.type for item in items if item.range_key}
        if not (hash_types | range_types) <= _SORTABLE_TYPES or len(hash_types) > 1 or len(range_types) > 1:
            return moto_all_items(self)
        return sorted(
            items,
            key=lambda x: (
                (x.hash_key.cast_value, x.range_key.cast_value) if x.range_key else x.hash_key.cast_value
            ),
        )

    return all_items


def _project(self: Any, projection_expressions: list[list[str]]) -> Any:
    """Item.project, converting the item to JSON once (moto does it once per attribute projected: a GSI's
    INCLUDE list made that 25 times per item returned)."""
    from botocore.utils import merge_dicts
    from moto.dynamodb.models.dynamo_type import Item, serializer
    from moto.dynamodb.models.utilities import find_nested_key

    as_json = self.to_regular_json()
    result: dict[str, Any] = {}
    for expression in projection_expressions:
        merge_dicts(result, find_nested_key(expression, as_json))
    return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=serializer.serialize(result)["M"])


# -- SQS: per-message costs that do not grow with the queue ----------------------------------------


class _QueueAttributes(Mapping[str, Any]):
    """Queue.attributes, computed per name when read: counting messages scans the queue, and only
    GetQueueAttributes for a count needs one."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        self._names = dict.fromkeys(names)

    def __getitem__(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names:
            raise KeyError(name)
        queue = self._queue
        if name == "RedrivePolicy" and queue.redrive_policy:
            value = json.dumps(queue.redrive_policy)
        else:
            value = getattr(queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _VisibleMessages:
    """Queue.messages, found lazily: ReceiveMessage stops at the few it returns."""

    def __init__(self, queue: Any) -> None:
        self._messages = list(queue._messages)  # a snapshot, as moto's list was

    def __iter__(self) -> Iterator[Any]:
        return (m for m in self._messages if m.visible and not m.delayed)

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self)


# receipt handle -> message: every handle a live message has had (handles are unique).
_BY_RECEIPT_HANDLE: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def _indexing_receipt_handles(mark_received: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(mark_received)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        mark_received(self, *args, **kwargs)
        _BY_RECEIPT_HANDLE[self.receipt_handle] = self

    return wrapper


def _delete_message(self: Any, receipt_handle: str) -> None:
    """Queue.delete_message, finding the message by its receipt handle."""
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    if receipt_handle in self.deleted_messages:
        return  # already deleted: deleting it again succeeds
    message = _BY_RECEIPT_HANDLE.get(receipt_handle)
    if message is None:
        raise ReceiptHandleIsInvalid()
    try:
        self._messages.remove(message)
    except ValueError:
        raise ReceiptHandleIsInvalid() from None
    self.pending_messages.discard(message)
    self.deleted_messages.update(message.all_receipt_handles)


def _change_message_visibility(
    self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int
) -> None:
    """SQSBackend.change_message_visibility, finding the message by its receipt handle."""
    from moto.core.utils import unix_time_millis
    from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid

    queue = self.get_queue(queue_name)
    message = _BY_RECEIPT_HANDLE.get(receipt_handle)
    if message is None or message not in queue._messages:
        raise ReceiptHandleIsInvalid
    given_visibility_timeout = unix_time_millis() + int(visibility_timeout) * 1000
    if given_visibility_timeout - message.sent_timestamp > 43200 * 1000:
        raise InvalidParameterValue(
            f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
            "VisibilityTimeout for the message is beyond the limit [43200 seconds]"
        )
    message.change_visibility(visibility_timeout)
    if message.visible and message in queue.pending_messages:
        queue.pending_messages.remove(message)


# -- bounded history --------------------------------------------------------------------------------


class _RecentSet:
    """A set that keeps its newest `maxlen` members (what moto needs of Queue.deleted_messages)."""

    def __init__(self, maxlen: int) -> None:
        self._maxlen = maxlen
        self._members: dict[Any, None] = {}
        self._lock = threading.Lock()

    def add(self, member: Any) -> None:
        with self._lock:
            self._members.pop(member, None)
            self._members[member] = None
            while len(self._members) > self._maxlen:
                del self._members[next(iter(self._members))]

    def update(self, members: Iterable[Any]) -> None:
        for member in members:
            self.add(member)

    def __contains__(self, member: object) -> bool:
        return member in self._members

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._members))

    def __len__(self) -> int:
        return len(self._members)


def _cap_deleted_handles(queue: Any) -> None:
    queue.deleted_messages = _RecentSet(DELETED_RECEIPT_HANDLES_KEPT)


def _cap_sent_notifications(topic: Any) -> None:
    topic.sent_notifications = deque(maxlen=SNS_NOTIFICATIONS_KEPT)
