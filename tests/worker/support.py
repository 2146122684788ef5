"""Helpers for the worker tests: jobs, fakes for the core's ports, a view of the moto resources."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from tests.voices import make_voice
from tts_common.domain import audio_key_for, normalize_text, text_key_for
from tts_common.messages import AudioInfo, LifecycleEvent, SynthesisJob
from tts_common.voice import VoiceSpec, dedupe_key
from tts_worker.core import CoreConfig, WorkerCore
from tts_worker.synthesizer.base import SynthesisItem, SynthesisResult, Synthesizer

SAMPLING_RATE = 16_000
TINY = "tiny-random"
# The tenant the worker tests' tasks belong to (the worker never reads it).
TENANT = "acme"


# -- jobs and events -----------------------------------------------------------------------------------------


_VOICE_FIELDS = frozenset(VoiceSpec.model_fields)


def make_job(
    text: str | None = "Hyvää huomenta. Tämä on testi.",
    *,
    task_id: str = "task-1",
    text_key: str | None = None,
    model_id: str = TINY,
    **overrides: Any,
) -> SynthesisJob:
    """A job as the API would build it: dedupe key from the normalized text and the voice. Keyword
    arguments that name a VoiceSpec field (speed, format, ...) go into the voice, others into the job."""
    voice = make_voice(model_id=model_id, **{k: v for k, v in overrides.items() if k in _VOICE_FIELDS})
    fields: dict[str, Any] = {
        "task_id": task_id,
        "dedupe_key": dedupe_key(normalize_text(text or task_id), voice, tenant_id=TENANT),
        "voice": voice,
        "text": text if text_key is None else None,
        "text_key": text_key,
        "audio_key": audio_key_for(task_id, voice.format),
        "submitted_at": datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
    }
    fields.update({k: v for k, v in overrides.items() if k not in _VOICE_FIELDS})
    return SynthesisJob(**fields)


def job_body(text: str | None = "Hyvää huomenta. Tämä on testi.", **kwargs: Any) -> str:
    return make_job(text, **kwargs).model_dump_json()


def statuses(events: Sequence[LifecycleEvent], task_id: str) -> list[str]:
    return [str(e.status) for e in events if e.task_id == task_id]


# -- fakes ---------------------------------------------------------------------------------------------------


class FakeSynthesizer(Synthesizer):
    """Deterministic noise, 0.07 s per character; raises what `failures` maps a substring of the text to."""

    def __init__(self, failures: dict[str, Exception] | None = None) -> None:
        self.failures = failures or {}
        self.items: list[SynthesisItem] = []

    @property
    def model_id(self) -> str:
        return "fake"

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def sampling_rate(self) -> int:
        return SAMPLING_RATE

    def is_speakable(self, text: str, model_id: str = "") -> bool:
        return any(ch.isalpha() for ch in text)

    def synthesize(self, items: Sequence[SynthesisItem]) -> list[SynthesisResult]:
        results = []
        for item in items:
            self.items.append(item)
            for needle, exc in self.failures.items():
                if needle in item.text:
                    raise exc
            rng = np.random.default_rng(item.seed)
            samples = round(len(item.text) * 0.07 * SAMPLING_RATE / item.speaking_rate)
            waveform = rng.uniform(-0.5, 0.5, samples).astype(np.float32)
            results.append(SynthesisResult(waveform=waveform, sampling_rate=SAMPLING_RATE, device="cpu"))
        return results


class BatchingFakeSynthesizer(FakeSynthesizer):
    """Like a GPU synthesizer: takes any number of items per call, padded, so the core groups by length."""

    def __init__(self, failures: dict[str, Exception] | None = None) -> None:
        super().__init__(failures)
        self.calls: list[list[SynthesisItem]] = []

    @property
    def max_items_per_call(self) -> int | None:
        return None

    @property
    def pads_batches(self) -> bool:
        return True

    def synthesize(self, items: Sequence[SynthesisItem]) -> list[SynthesisResult]:
        self.calls.append(list(items))
        return super().synthesize(items)


class CountingSynthesizer(Synthesizer):
    """Wraps a real synthesizer and counts the items it was asked to speak."""

    def __init__(self, inner: Synthesizer) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def device(self) -> str:
        return self.inner.device

    @property
    def sampling_rate(self) -> int:
        return self.inner.sampling_rate

    @property
    def max_items_per_call(self) -> int | None:
        return self.inner.max_items_per_call

    @property
    def pads_batches(self) -> bool:
        return self.inner.pads_batches

    def sampling_rate_for(self, model_id: str) -> int:
        return self.inner.sampling_rate_for(model_id)

    def is_speakable(self, text: str, model_id: str = "") -> bool:
        return self.inner.is_speakable(text, model_id)

    def synthesize(self, items: Sequence[SynthesisItem]) -> list[SynthesisResult]:
        self.calls += len(items)
        return self.inner.synthesize(items)


@dataclass
class MemoryStore:
    audio: dict[str, tuple[AudioInfo, bytes]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    puts: int = 0
    marks: dict[str, bytes] = field(default_factory=dict)

    def put_marks(self, key: str, body: bytes, *, content_type: str, task_id: str) -> None:
        self.marks[key] = body

    def find_audio(self, audio_key: str) -> AudioInfo | None:
        found = self.audio.get(audio_key)
        return found[0] if found else None

    def put_audio(self, info: AudioInfo, body: bytes, *, task_id: str) -> None:
        self.puts += 1
        self.audio[info.audio_key] = (info, body)

    def get_text(self, key: str) -> str:
        return self.texts[key]


@dataclass
class MemoryTasks:
    """The task lookup: every task exists unless its id is in `missing`."""

    missing: set[str] = field(default_factory=set)

    def exists(self, task_id: str) -> bool:
        return task_id not in self.missing


@dataclass
class MemoryEvents:
    events: list[LifecycleEvent] = field(default_factory=list)
    fail_with: Exception | None = None

    def publish(self, event: LifecycleEvent) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.events.append(event)


@dataclass
class MemoryMetrics:
    values: list[tuple[str, str, float]] = field(default_factory=list)

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.values.append((name, str(unit), value))

    def total(self, name: str) -> float:
        return sum(v for n, _, v in self.values if n == name)


# -- AWS on moto ---------------------------------------------------------------------------------------------


@dataclass
class WorkerAws:
    """The service's resources on in-process moto, plus helpers to look at what the worker left there."""

    resources: Any
    sqs: Any
    s3: Any

    def read_events(self) -> list[LifecycleEvent]:
        """Every lifecycle event published so far (SNS → events queue, raw delivery), in arrival order."""
        found: list[LifecycleEvent] = []
        for _ in range(50):
            got = self.sqs.receive_message(
                QueueUrl=self.resources.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not got:
                break
            for message in got:
                found.append(LifecycleEvent.model_validate_json(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.resources.events_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return sorted(found, key=lambda e: e.at)

    def count(self, queue_url: str) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def known(self, bodies: Sequence[str]) -> list[str]:
        """The bodies, after writing a task record for each valid job, as the API does before sending it."""
        from tts_common.storage.models import records_for
        from tts_common.storage.repository import TaskRepository
        from tts_common.task import Task

        repository = TaskRepository(records_for(self.resources.table_name, "us-east-1"), ttl_days=30)
        for body in bodies:
            try:
                job = SynthesisJob.model_validate_json(body)
            except ValueError:
                continue  # malformed: the worker refuses it before looking for its task
            repository.create_or_get(
                Task(
                    task_id=job.task_id,
                    tenant_id=TENANT,
                    dedupe_key=job.dedupe_key,
                    voice=job.voice,
                    text_chars=len(job.text or ""),
                    submitted_at=datetime.now(UTC),
                    text=job.text,
                    text_key=job.text_key,
                )
            )
        return list(bodies)

    def send_job(self, body: str) -> None:
        [known] = self.known([body])
        self.sqs.send_message(QueueUrl=self.resources.jobs_queue_url, MessageBody=known)

    def put_text(self, task_id: str, text: str) -> str:
        key = text_key_for(task_id)
        self.s3.put_object(Bucket=self.resources.bucket_name, Key=key, Body=text.encode())
        return key

    def audio_keys(self) -> list[str]:
        """The audio files (the speech marks and subtitles beside them are `marks_keys`)."""
        return [key for key in self._audio_prefix_keys() if not _is_marks_key(key)]

    def marks_keys(self) -> list[str]:
        return [key for key in self._audio_prefix_keys() if _is_marks_key(key)]

    def _audio_prefix_keys(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.resources.bucket_name, Prefix="audio/")
        return [o["Key"] for o in listed.get("Contents", [])]

    def audio_bytes(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.resources.bucket_name, Key=key)["Body"].read())


def _is_marks_key(key: str) -> bool:
    from tts_common.domain import MARKS_FORMATS

    return any(key.endswith(f".{facts.extension}") for facts in MARKS_FORMATS.values())


def raw_json(**fields: Any) -> str:
    return json.dumps(fields)


def with_raw_voice(body: str, **voice: Any) -> str:
    """A job body whose voice says what no VoiceSpec would accept (a forged or corrupt message)."""
    raw = json.loads(body)
    raw["voice"].update(voice)
    return json.dumps(raw)


def make_core(
    synthesizer: FakeSynthesizer,
    store: MemoryStore,
    events: MemoryEvents,
    metrics: MemoryMetrics | None = None,
    tasks: MemoryTasks | None = None,
    **config: object,
) -> WorkerCore:
    """A core on in-memory ports, with a clock that ticks one millisecond per reading."""
    ticks = itertools.count()
    return WorkerCore(
        synthesizer=synthesizer,
        store=store,
        events=events,
        tasks=tasks or MemoryTasks(),
        config=CoreConfig(**config),  # type: ignore[arg-type]
        metrics=metrics,
        clock=lambda: datetime(2026, 11, 27, tzinfo=UTC) + timedelta(milliseconds=next(ticks)),
    )
