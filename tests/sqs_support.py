"""SQS helpers for tests: an event as Lambda delivers it, and draining a queue on moto."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def sqs_event(bodies: Sequence[str], *, receive_count: int = 1) -> dict[str, Any]:
    """An SQS event as Lambda delivers it."""
    return {
        "Records": [
            {
                "messageId": f"m-{i}",
                "receiptHandle": f"r-{i}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": str(receive_count),
                    "SentTimestamp": "1764244800000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1764244800000",
                },
                "messageAttributes": {},
                "md5OfBody": "0",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:queue",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def drain(queue_url: str, *, max_rounds: int = 10) -> list[str]:
    """Every body currently on a queue (received and deleted)."""
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1")
    bodies: list[str] = []
    for _ in range(max_rounds):
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not got:
            break
        for m in got:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return bodies
