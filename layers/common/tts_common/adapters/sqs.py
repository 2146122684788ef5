"""The jobs queue: send work orders, receive them with their receive count, delete what succeeded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tts_common.exceptions import DependencyUnavailable
from tts_common.messages import SynthesisJob


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int


class JobQueue:
    def __init__(self, *, sqs_client: Any, queue_url: str) -> None:
        self._sqs = sqs_client
        self._url = queue_url

    def send(self, job: SynthesisJob) -> str:
        response = self._sqs.send_message(QueueUrl=self._url, MessageBody=job.model_dump_json())
        return str(response["MessageId"])

    def send_many(self, jobs: list[SynthesisJob]) -> None:
        """Send in batches of 10; raise if any entry failed (the caller decides what that means)."""
        for start in range(0, len(jobs), 10):
            chunk = jobs[start : start + 10]
            response = self._sqs.send_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "MessageBody": job.model_dump_json()} for i, job in enumerate(chunk)],
            )
            if response.get("Failed"):
                failed_ids = ", ".join(chunk[int(f["Id"])].task_id for f in response["Failed"])
                raise DependencyUnavailable(
                    f"the jobs queue refused jobs for tasks {failed_ids}",
                    details={"dependency": "jobs queue", "reason": "SendMessageBatch partial failure"},
                )

    def receive(self, *, max_messages: int = 10, wait_s: int = 20) -> list[ReceivedMessage]:
        response = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=max(1, min(max_messages, 10)),
            WaitTimeSeconds=wait_s,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [
            ReceivedMessage(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m["Body"],
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            )
            for m in response.get("Messages", [])
        ]

    def delete_many(self, receipt_handles: list[str]) -> None:
        for start in range(0, len(receipt_handles), 10):
            chunk = receipt_handles[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)],
            )

    def change_visibility(self, receipt_handles: list[str], *, timeout_s: int) -> None:
        """Keep messages in work invisible for `timeout_s` more seconds (a long job's heartbeat)."""
        for start in range(0, len(receipt_handles), 10):
            chunk = receipt_handles[start : start + 10]
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": timeout_s}
                    for i, h in enumerate(chunk)
                ],
            )

    def ping(self) -> bool:
        try:
            self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])
        except (ClientError, BotoCoreError):
            return False
        return True
