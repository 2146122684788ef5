"""The event channel (an SNS topic): lifecycle messages out to every subscriber."""

from __future__ import annotations

from typing import Any

from tts_common.messages import LifecycleEvent


class EventPublisher:
    def __init__(self, *, sns_client: Any, topic_arn: str) -> None:
        self._sns = sns_client
        self._topic = topic_arn

    def publish(self, event: LifecycleEvent) -> None:
        # The status attribute lets a subscriber filter (e.g. only `done` and `failed` for notifications).
        self._sns.publish(
            TopicArn=self._topic,
            Message=event.model_dump_json(),
            MessageAttributes={
                "status": {"DataType": "String", "StringValue": str(event.status)},
                "task_id": {"DataType": "String", "StringValue": event.task_id},
            },
        )
