"""local/moto_patches.py: moto's costs per request do not grow with what it holds, and its semantics hold.

tests/conftest.py applies the DynamoDB patch to the whole suite; the SQS/SNS patches are applied here per test
(the `sqs_patched` fixture), as the local stack's moto server runs with them.
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local import moto_patches

HASH_TABLE = "patch-hash"
RANGE_TABLE = "patch-range"


def _ddb() -> Any:
    return boto3.client("dynamodb", region_name="us-east-1")


def _create_tables(ddb: Any, suffix: str = "") -> None:
    ddb.create_table(
        TableName=HASH_TABLE + suffix,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.create_table(
        TableName=RANGE_TABLE + suffix,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def _seed(ddb: Any, suffix: str = "", n: int = 20) -> None:
    for i in range(n):
        ddb.put_item(
            TableName=HASH_TABLE + suffix, Item={"pk": {"S": f"k{i}"}, "n": {"N": "1"}, "s": {"S": "x"}}
        )
        ddb.put_item(
            TableName=RANGE_TABLE + suffix, Item={"pk": {"S": "p"}, "sk": {"S": f"s{i}"}, "n": {"N": "1"}}
        )


def _dump(ddb: Any, suffix: str = "") -> dict[str, list[Any]]:
    out = {}
    for table in (HASH_TABLE, RANGE_TABLE):
        items = ddb.scan(TableName=table + suffix)["Items"]
        out[table] = sorted(json.dumps(i, sort_keys=True) for i in items)
    return out


def _add(table: str, key: dict[str, Any], n: int = 1) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": key,
            "UpdateExpression": "ADD n :n",
            "ExpressionAttributeValues": {":n": {"N": str(n)}},
        }
    }


def _put_new(table: str, item: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "Put": {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)", **extra}
    }


def _outcome(ddb: Any, items: list[dict[str, Any]]) -> tuple[str, Any, str]:
    try:
        ddb.transact_write_items(TransactItems=items)
    except ClientError as exc:
        return (
            exc.response["Error"]["Code"],
            exc.response.get("CancellationReasons"),
            exc.response["Error"]["Message"],
        )
    return "ok", None, ""


def K(pk: str, sk: str | None = None) -> dict[str, Any]:
    key = {"pk": {"S": pk}}
    if sk is not None:
        key["sk"] = {"S": sk}
    return key


def _scenarios(s: str) -> list[list[dict[str, Any]]]:
    """Transactions over the seeded tables (named with suffix s): successes, every kind of failure."""
    h, r = HASH_TABLE + s, RANGE_TABLE + s
    return [
        # all succeed: update, put, delete, condition check, on both tables
        [
            _add(h, K("k1")),
            _put_new(h, {"pk": {"S": "new"}, "n": {"N": "5"}}),
            {"Delete": {"TableName": r, "Key": K("p", "s3")}},
            {
                "ConditionCheck": {
                    "TableName": h,
                    "Key": K("k2"),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            _add(r, K("p", "new")),
        ],
        # the last condition fails: the writes before it are undone, the reason carries the old item
        [
            _add(h, K("k1")),
            _put_new(r, {"pk": {"S": "p"}, "sk": {"S": "fresh"}}),
            {"Delete": {"TableName": h, "Key": K("k4")}},
            _add(h, K("brand-new")),
            _put_new(h, {"pk": {"S": "k5"}}, ReturnValuesOnConditionCheckFailure="ALL_OLD"),
        ],
        # a failing condition check in the middle
        [
            _add(r, K("p", "s1"), 7),
            {
                "ConditionCheck": {
                    "TableName": h,
                    "Key": K("nope"),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {"Delete": {"TableName": r, "Key": K("p", "s2")}},
        ],
        # the same item twice: a validation error, nothing written
        [_add(h, K("k6")), _add(h, K("k7")), _add(h, K("k6"))],
        # a key missing its range key: a validation error after a write
        [_add(h, K("k8")), _add(r, K("p"))],
        # an update that fails on the item's type (a string cannot be ADDed to)
        [
            _add(h, K("k9")),
            {
                "Update": {
                    "TableName": h,
                    "Key": K("k10"),
                    "UpdateExpression": "ADD s :n",
                    "ExpressionAttributeValues": {":n": {"N": "1"}},
                }
            },
        ],
        # a table that does not exist
        [_add(h, K("k11")), _add("no-such-table", K("x"))],
        # a conditional delete that fails
        [
            {"Delete": {"TableName": h, "Key": K("k12")}},
            {
                "Delete": {
                    "TableName": r,
                    "Key": K("p", "s12"),
                    "ConditionExpression": "n = :two",
                    "ExpressionAttributeValues": {":two": {"N": "2"}},
                }
            },
        ],
    ]


def _as_moto(monkeypatch: pytest.MonkeyPatch, patches: list[tuple[type, str, Any]]) -> None:
    """Put back what the patches replaced (moto's own code)."""
    for owner, name, _ in patches:
        original = moto_patches.MOTO_ORIGINALS.get((owner, name))
        if original is not None:
            monkeypatch.setattr(owner, name, original)


def test_transactions_behave_exactly_as_in_moto(aws) -> None:
    """Each scenario on moto's own code and on ours: the same answer, the same tables."""
    ddb = _ddb()
    for i, _ in enumerate(_scenarios("")):
        results = []
        for impl in ("moto", "ours"):
            suffix = f"-{i}-{impl}"
            _create_tables(ddb, suffix)
            _seed(ddb, suffix)
            with pytest.MonkeyPatch.context() as mp:
                if impl == "moto":
                    _as_moto(mp, moto_patches.dynamodb_patches())
                outcome = _outcome(ddb, _scenarios(suffix)[i])
            tables = _dump(ddb, suffix)
            tables = {name.split("-")[1]: items for name, items in tables.items()}
            results.append((outcome[0], outcome[1], outcome[2].replace(suffix, ""), tables))
        assert results[0] == results[1], f"scenario {i}"


def _gsi_table(ddb: Any) -> None:
    ddb.create_table(
        TableName="gsi",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "list_pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
            {"AttributeName": "score", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_sk",
                "KeySchema": [
                    {"AttributeName": "list_pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["n", "m"]},
            },
            {
                "IndexName": "by_score",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "score", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(40):
        item = {
            "pk": {"S": f"t{i:02d}"},
            "n": {"N": str(i % 7)},
            "score": {"N": str((i * 37) % 11 - 5) + (".5" if i % 3 else "")},
            "status": {"S": ("queued", "done", "failed")[i % 3]},
            "m": {"M": {"a": {"S": f"a{i}"}, "b": {"L": [{"N": "1"}, {"S": "x"}]}}},
            "l": {"L": [{"S": "zero"}, {"N": str(i)}]},
        }
        if i % 5:  # a sparse index: some items are not in it; some share a sort key
            item.update(
                {"list_pk": {"S": "task"}, "sk": {"S": f"2026-12-{i % 9:02d}#{i}" if i % 4 else "same"}}
            )
        ddb.put_item(TableName="gsi", Item=item)


def _queries() -> list[dict[str, Any]]:
    task = {":p": {"S": "task"}}
    return [
        {"IndexName": "by_sk", "KeyConditionExpression": "list_pk = :p", "ExpressionAttributeValues": task},
        {
            "IndexName": "by_sk",
            "KeyConditionExpression": "list_pk = :p",
            "ExpressionAttributeValues": task,
            "ScanIndexForward": False,
            "Limit": 4,
        },
        {
            "IndexName": "by_sk",
            "KeyConditionExpression": "list_pk = :p AND sk < :c",
            "ExpressionAttributeValues": {**task, ":c": {"S": "2026-12-05"}},
            "Limit": 3,
        },
        {
            "IndexName": "by_sk",
            "KeyConditionExpression": "list_pk = :p AND begins_with(sk, :c)",
            "FilterExpression": "n > :n",
            "ExpressionAttributeValues": {**task, ":c": {"S": "2026-12-0"}, ":n": {"N": "2"}},
            "Limit": 5,
        },
        {
            "IndexName": "by_score",
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": "queued"}},
            "ScanIndexForward": False,
            "Limit": 2,
            "ProjectionExpression": "pk, score, m.a, l[1]",
        },
        {
            "IndexName": "by_score",
            "KeyConditionExpression": "#s = :s AND score BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": "done"}, ":lo": {"N": "-2"}, ":hi": {"N": "3.5"}},
        },
        {"KeyConditionExpression": "pk = :k", "ExpressionAttributeValues": {":k": {"S": "t07"}}},
    ]


def _all_pages(ddb: Any, query: dict[str, Any]) -> list[Any]:
    pages, start = [], None
    for _ in range(50):
        page = ddb.query(TableName="gsi", **query, **({"ExclusiveStartKey": start} if start else {}))
        page.pop("ResponseMetadata")
        pages.append(page)
        start = page.get("LastEvaluatedKey")
        if start is None:
            break
    return pages


def test_queries_answer_exactly_as_in_moto(aws) -> None:
    """GSI and table queries (orders, pages, conditions, filters, projections) on moto's code and ours."""
    ddb = _ddb()
    _gsi_table(ddb)
    for query in _queries():
        ours = _all_pages(ddb, query)
        with pytest.MonkeyPatch.context() as mp:
            _as_moto(mp, moto_patches.dynamodb_patches())
            theirs = _all_pages(ddb, query)
        assert ours == theirs, query
        assert sum(len(p["Items"]) for p in ours) > 0, query
    scanned = ddb.scan(TableName="gsi", ProjectionExpression="pk, m.b[1], l")["Items"]
    with pytest.MonkeyPatch.context() as mp:
        _as_moto(mp, moto_patches.dynamodb_patches())
        assert ddb.scan(TableName="gsi", ProjectionExpression="pk, m.b[1], l")["Items"] == scanned


def test_the_scenarios_cover_success_and_every_failure(aws) -> None:
    ddb = _ddb()
    _create_tables(ddb)
    _seed(ddb)
    codes = []
    for items in _scenarios(""):
        code, reasons, _ = _outcome(ddb, items)
        codes.append((code, [r["Code"] for r in reasons] if reasons else None))
    assert codes[0] == ("ok", None)
    assert codes[1] == (
        "TransactionCanceledException",
        ["None", "None", "None", "None", "ConditionalCheckFailed"],
    )
    assert codes[2][1] == ["None", "ConditionalCheckFailed", "None"]
    assert codes[3][0] == codes[4][0] == "ValidationException"  # the same item twice; a key without its range
    assert codes[5][0] == "ValidationException"  # raised by the second item, after the first was written
    assert codes[6][0] == "ResourceNotFoundException"
    assert codes[7][1] == ["None", "ConditionalCheckFailed"]


def test_a_transaction_copies_the_items_it_writes_not_the_table(aws, monkeypatch) -> None:
    from moto.dynamodb.models.table import Table

    ddb = _ddb()
    _create_tables(ddb)
    _seed(ddb, n=300)
    calls: list[type] = []
    real_deepcopy = copy.deepcopy

    def counting_deepcopy(x: Any, memo: Any = None, _nil: Any = []) -> Any:  # noqa: B006 (copy's signature)
        calls.append(type(x))
        return real_deepcopy(x, memo)

    monkeypatch.setattr(copy, "deepcopy", counting_deepcopy)
    assert _outcome(ddb, _scenarios("")[0])[0] == "ok"
    assert _outcome(ddb, _scenarios("")[1])[0] == "TransactionCanceledException"
    monkeypatch.undo()
    # moto deep-copies each table once per item (every item of it, each time); we copy the few items written
    assert Table not in calls
    assert len(calls) < 200, len(calls)


def test_a_failed_transaction_restores_its_items_and_keeps_a_concurrent_write(aws, monkeypatch) -> None:
    """Another writer's item, written while the transaction runs, survives the transaction's rollback."""
    from moto.dynamodb.models import DynamoDBBackend

    ddb = _ddb()
    _create_tables(ddb)
    _seed(ddb)
    before = _dump(ddb)
    real_update = DynamoDBBackend.update_item

    def update_and_meanwhile_another_write(self: Any, *args: Any, **kwargs: Any) -> Any:
        # what another client's PutItem would do between two items of this transaction
        self.get_table(HASH_TABLE).put_item({"pk": {"S": "other"}, "n": {"N": "42"}})
        return real_update(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "update_item", update_and_meanwhile_another_write)
    code, reasons, _ = _outcome(ddb, _scenarios("")[1])
    monkeypatch.undo()
    assert code == "TransactionCanceledException"
    assert reasons[-1]["Code"] == "ConditionalCheckFailed"
    after = _dump(ddb)
    other = json.dumps({"n": {"N": "42"}, "pk": {"S": "other"}}, sort_keys=True)
    assert other in after[HASH_TABLE]
    after[HASH_TABLE].remove(other)
    assert after == before  # every item the transaction touched is as it was


def test_one_winner_of_a_conditional_race_and_no_lost_update(aws) -> None:
    ddb = _ddb()
    _create_tables(ddb)
    ddb.put_item(TableName=HASH_TABLE, Item={"pk": {"S": "counter"}, "n": {"N": "0"}})
    barrier = threading.Barrier(8)
    outcomes: list[tuple[str, Any, str]] = []
    clients = [boto3.client("dynamodb", region_name="us-east-1") for _ in range(8)]  # not thread-safe to make

    def race(i: int) -> None:
        client = clients[i]
        barrier.wait()
        outcomes.append(
            _outcome(
                client,
                [
                    _put_new(HASH_TABLE, {"pk": {"S": "claim"}, "owner": {"S": str(i)}}),
                    _add(HASH_TABLE, K("counter")),
                ],
            )
        )
        # and a transaction every thread wins: 8 increments, none lost
        _outcome(
            client, [_add(HASH_TABLE, K("counter"), 10), _put_new(HASH_TABLE, {"pk": {"S": f"own-{i}"}})]
        )

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(outcomes) == 8
    assert [o[0] for o in outcomes].count("ok") == 1
    losers = [o for o in outcomes if o[0] != "ok"]
    assert all(o[0] == "TransactionCanceledException" for o in losers)
    assert all([r["Code"] for r in o[1]] == ["ConditionalCheckFailed", "None"] for o in losers)
    counter = ddb.get_item(TableName=HASH_TABLE, Key=K("counter"))["Item"]["n"]["N"]
    assert counter == "81"  # one winner's +1, eight times +10


def test_item_copies_are_not_kept_forever(aws) -> None:
    from moto.dynamodb.models.dynamo_type import Item

    ddb = _ddb()
    _create_tables(ddb)
    _seed(ddb, n=50)
    tracked = len(Item.instances_tracked)
    for _ in range(20):
        _outcome(ddb, _scenarios("")[1])
        ddb.scan(TableName=HASH_TABLE)
    assert len(Item.instances_tracked) == tracked


# -- SQS and SNS ---------------------------------------------------------------------------------------------


@pytest.fixture
def sqs_patched(aws, monkeypatch) -> dict[str, Any]:
    from moto.sqs.models import Queue

    originals = {"attributes": Queue.__dict__["attributes"]}
    for owner, name, value in moto_patches.sqs_and_sns_patches():
        monkeypatch.setattr(owner, name, value)
    return originals


@pytest.fixture
def counted_visibility(monkeypatch) -> list[int]:
    """How many times a message's visibility is evaluated (what a scan of the queue costs per message)."""
    from moto.sqs.models import Message

    calls = [0]
    real = Message.visible

    def visible(self: Any) -> bool:
        calls[0] += 1
        return real.fget(self)  # type: ignore[no-any-return]

    monkeypatch.setattr(Message, "visible", property(visible))
    return calls


def _queue(sqs: Any, name: str, **attributes: str) -> str:
    return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


def _fill(sqs: Any, url: str, n: int) -> None:
    for start in range(0, n, 10):
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)]
        )


def test_queue_attributes_are_moto_s(sqs_patched) -> None:
    from moto.sqs.models import sqs_backends

    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq = _queue(sqs, "dlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    _queue(sqs, "plain")
    _queue(
        sqs,
        "redriven",
        VisibilityTimeout="120",
        RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
    )
    _queue(sqs, "ordered.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    _queue(sqs, "encrypted", KmsMasterKeyId="alias/aws/sqs")
    _queue(sqs, "with-policy", Policy=json.dumps({"Version": "2012-10-17", "Statement": []}))
    backend = sqs_backends["123456789012"]["us-east-1"]
    original = sqs_patched["attributes"]
    _fill(sqs, sqs.get_queue_url(QueueName="plain")["QueueUrl"], 10)
    for name in ("dlq", "plain", "redriven", "ordered.fifo", "encrypted", "with-policy"):
        queue = backend.queues[name]
        assert dict(queue.attributes) == original.fget(queue), name
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert got["QueueArn"].endswith(name)
    plain = sqs.get_queue_url(QueueName="plain")["QueueUrl"]
    got = sqs.get_queue_attributes(QueueUrl=plain, AttributeNames=["ApproximateNumberOfMessages", "QueueArn"])
    assert got["Attributes"]["ApproximateNumberOfMessages"] == "10"


def test_send_publish_receive_and_delete_do_not_scan_the_queue(sqs_patched, counted_visibility) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    sns = boto3.client("sns", region_name="us-east-1")
    url = _queue(sqs, "deep")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = sns.create_topic(Name="events")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    _fill(sqs, url, 300)
    counted_visibility[0] = 0

    sqs.send_message(QueueUrl=url, MessageBody="one more")
    sns.publish(TopicArn=topic, Message="an event")
    sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])  # the health check
    assert counted_visibility[0] == 0

    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, WaitTimeSeconds=0)["Messages"]
    assert [m["Body"] for m in got] == ["m0", "m1"]
    assert counted_visibility[0] < 10  # moto's own: 300 per received message, twice over, and more
    counted_visibility[0] = 0
    sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 60}
            for i, m in enumerate(got)
        ],
    )
    sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
    )
    assert counted_visibility[0] <= 2
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"
    ]
    assert attrs["ApproximateNumberOfMessages"] == "300"  # 300 + 2 sent - 2 deleted


def test_receipt_handles_keep_moto_s_semantics(sqs_patched) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq = _queue(sqs, "jobs-dlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = _queue(
        sqs, "jobs", RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    )
    other = _queue(sqs, "other")
    sqs.send_message(QueueUrl=url, MessageBody="job")

    def receive(queue_url: str, visibility: int = 0) -> list[Any]:
        return sqs.receive_message(  # type: ignore[no-any-return]
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=visibility,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])

    first = receive(url)[0]
    second = receive(url, visibility=30)[0]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    assert receive(url) == []  # in flight
    # a heartbeat on the current handle; the handle of another queue is invalid here
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"], VisibilityTimeout=0)
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        sqs.delete_message(QueueUrl=other, ReceiptHandle=second["ReceiptHandle"])
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
    # visible again, received twice already: the next receive moves it to the DLQ
    assert receive(url) == []
    moved = receive(dlq)
    assert [m["Body"] for m in moved] == ["job"]
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])  # it left this queue
    # moto accepts any handle the message has had; deleting twice succeeds
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=first["ReceiptHandle"])
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=moved[0]["ReceiptHandle"])
    assert receive(dlq) == []
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        sqs.change_message_visibility(
            QueueUrl=dlq, ReceiptHandle=moved[0]["ReceiptHandle"], VisibilityTimeout=5
        )


def test_sns_fans_out_to_sqs_with_attributes(sqs_patched) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    sns = boto3.client("sns", region_name="us-east-1")
    url = _queue(sqs, "events")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = sns.create_topic(Name="lifecycle")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    sns.publish(
        TopicArn=topic, Message="e1", MessageAttributes={"status": {"DataType": "String", "StringValue": "q"}}
    )
    got = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=0)["Messages"]
    assert got[0]["Body"] == "e1"
    assert got[0]["MessageAttributes"]["status"]["StringValue"] == "q"


def test_history_is_bounded_and_messages_untracked(sqs_patched, monkeypatch) -> None:
    from moto.sns.models import sns_backends
    from moto.sqs.models import Message, sqs_backends

    monkeypatch.setattr(moto_patches, "DELETED_RECEIPT_HANDLES_KEPT", 5)
    monkeypatch.setattr(moto_patches, "SNS_NOTIFICATIONS_KEPT", 3)
    sqs = boto3.client("sqs", region_name="us-east-1")
    sns = boto3.client("sns", region_name="us-east-1")
    url = _queue(sqs, "busy")
    topic = sns.create_topic(Name="chatty")["TopicArn"]
    tracked = len(Message.instances_tracked)
    _fill(sqs, url, 20)
    for _ in range(3):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    for i in range(10):
        sns.publish(TopicArn=topic, Message=f"n{i}")
    queue = sqs_backends["123456789012"]["us-east-1"].queues["busy"]
    assert len(queue.deleted_messages) <= 5
    sent = sns_backends["123456789012"]["us-east-1"].topics[topic].sent_notifications
    assert [n[1] for n in sent] == ["n7", "n8", "n9"]
    assert len(Message.instances_tracked) == tracked
    # a handle still remembered deletes again without error
    sqs.delete_message(QueueUrl=url, ReceiptHandle=[h for h in queue.deleted_messages if h][-1])
