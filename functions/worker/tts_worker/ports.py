"""What the core needs from the outside world; the adapters in tts_common (and test fakes) fit these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tts_common.messages import AudioInfo, LifecycleEvent


class JobMessage(Protocol):
    """What the core needs of a queue message (the SQS adapter's ReceivedMessage fits)."""

    @property
    def message_id(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def receive_count(self) -> int: ...


@dataclass(frozen=True, slots=True)
class QueueMessage:
    message_id: str
    body: str
    receive_count: int = 1


class AudioStorePort(Protocol):
    def find_audio(self, audio_key: str) -> AudioInfo | None: ...
    def put_audio(self, info: AudioInfo, body: bytes, *, task_id: str) -> None: ...
    def put_marks(self, key: str, body: bytes, *, content_type: str, task_id: str) -> None: ...
    def get_text(self, key: str) -> str: ...


class TaskLookup(Protocol):
    """Whether a job's task exists (the task repository fits): a job for no task is never synthesized."""

    def exists(self, task_id: str) -> bool: ...


class EventPort(Protocol):
    def publish(self, event: LifecycleEvent) -> None: ...


class MetricsSink(Protocol):
    """Powertools' Metrics fits; so does a list-backed fake."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...
