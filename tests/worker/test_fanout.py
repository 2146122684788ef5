"""Fan-out (issue 12): a long text as parts on several workers, joined in S3, byte-identical to one worker.

The byte-identity tests run tiny-random on in-process moto with S3's real 5 MiB multipart minimum: the WAV
cases are long enough (several MiB per part) that the join really is UploadPartCopy plus a header part.
"""

from __future__ import annotations

import json
import random
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.worker.support import FakeSynthesizer, MemoryEvents, MemoryTasks, make_job
from tts_common.domain import TaskStatus, marks_key_for, part_audio_key
from tts_common.messages import SynthesisJob
from tts_common.voice import AudioFormat
from tts_worker.audio import AudioAssembler
from tts_worker.core import CoreConfig, WorkerCore
from tts_worker.failures import Disposition
from tts_worker.fanout import (
    MIN_PART_BYTES,
    Copy,
    FanoutPorts,
    PartStore,
    PlannedPiece,
    QueueSender,
    Upload,
    group_parts,
    join_audio,
    layout_of,
    plan_join,
    wav_header,
)
from tts_worker.ports import QueueMessage
from tts_worker.synthesizer.base import Synthesizer

SENTENCES = [
    "Hyvää huomenta kaikille.",
    "Tämä on pitkä testi, jossa on monta lausetta ja vähän pidempiäkin lauseita mukana.",
    "Kello on kolme.",
    "Sataa lunta, ja tuuli puhaltaa pohjoisesta kohti etelää koko päivän ajan ilman taukoa.",
    "Kiitos!",
]


def long_text(chars: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    n = 0
    while n < chars:
        s = rng.choice(SENTENCES)
        out.append(s)
        n += len(s) + 1
    return " ".join(out)


@dataclass
class Fleet:
    """One moto account: the bucket, the table, the jobs and parts queues; cores built on them."""

    sqs: Any
    s3: Any
    resources: Any

    def store(self) -> Any:
        from tts_common.adapters.s3 import AudioStore

        return AudioStore(s3_client=self.s3, bucket=self.resources.bucket_name)

    def ports(self, *, part_chars: int, min_chars: int) -> FanoutPorts:
        import boto3

        from tts_common.storage.plans import PlanLedger

        return FanoutPorts(
            ledger=PlanLedger(
                dynamodb_client=boto3.client("dynamodb", region_name="us-east-1"),
                table_name=self.resources.table_name,
            ),
            parts=PartStore(s3_client=self.s3, bucket=self.resources.bucket_name),
            parts_queue=QueueSender(sqs_client=self.sqs, queue_url=self.resources.parts_queue_url),
            jobs_queue=QueueSender(sqs_client=self.sqs, queue_url=self.resources.jobs_queue_url),
            part_chars=part_chars,
            min_chars=min_chars,
        )

    def core(
        self, synthesizer: Synthesizer, events: MemoryEvents, fanout: FanoutPorts | None = None
    ) -> WorkerCore:
        return WorkerCore(
            synthesizer=synthesizer,
            store=self.store(),
            events=events,
            tasks=MemoryTasks(),
            config=CoreConfig(),
            fanout=fanout,
        )

    def take(self, url: str) -> list[QueueMessage]:
        got: list[QueueMessage] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            if not batch:
                return got
            for m in batch:
                got.append(QueueMessage(m["MessageId"], m["Body"], 1))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def audio(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.resources.bucket_name, Key=key)["Body"].read())

    def keys(self, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.resources.bucket_name, Prefix=prefix)
        return [o["Key"] for o in listed.get("Contents", [])]


@pytest.fixture
def fleet(aws: None) -> Fleet:
    import boto3

    from local.provision import provision

    resources = provision(prefix="fan")
    return Fleet(
        sqs=boto3.client("sqs", region_name="us-east-1"),
        s3=boto3.client("s3", region_name="us-east-1"),
        resources=resources,
    )


def run_fanned_out(
    fleet: Fleet,
    synthesizer: Synthesizer,
    job: SynthesisJob,
    *,
    part_chars: int,
    events: MemoryEvents | None = None,
    shuffle: int | None = 0,
    redeliver: bool = True,
) -> list[QueueMessage]:
    """Plan, run every part (shuffled, the first one twice), run the join (twice); the part messages."""
    events = events or MemoryEvents()
    core = fleet.core(synthesizer, events, fleet.ports(part_chars=part_chars, min_chars=part_chars))
    [planned] = core.process_batch([QueueMessage("parent", job.model_dump_json())])
    assert planned.disposition is Disposition.SUCCEEDED
    parts = fleet.take(fleet.resources.parts_queue_url)
    assert len(parts) >= 2
    order = list(parts)
    if shuffle is not None:
        random.Random(shuffle).shuffle(order)
    if redeliver:
        order.insert(1, order[0])
    for message in order:
        [outcome] = core.process_batch([message])
        assert outcome.disposition is Disposition.SUCCEEDED, outcome
    joins = fleet.take(fleet.resources.jobs_queue_url)
    assert joins, "the last part stored sends the join"
    for message in [*joins, joins[0]]:  # a re-run join changes nothing
        [outcome] = core.process_batch([message])
        assert outcome.disposition is Disposition.SUCCEEDED, outcome
    return parts


def single_worker(fleet: Fleet, synthesizer: Synthesizer, job: SynthesisJob) -> bytes:
    core = fleet.core(synthesizer, MemoryEvents())
    [outcome] = core.process_batch([QueueMessage("whole", job.model_dump_json())])
    assert outcome.disposition is Disposition.SUCCEEDED
    return fleet.audio(job.audio_key)


# -- byte identity on tiny-random ---------------------------------------------------------------------------

CASES = [
    # (format, sample rate or None for native, characters, part characters)
    (AudioFormat.WAV, None, 9000, 2600),  # UploadPartCopy: parts of ~6 MiB
    (AudioFormat.PCM, None, 9000, 2600),
    (AudioFormat.WAV, 22050, 6000, 2000),  # streaming re-encode through the multipart sink
    (AudioFormat.FLAC, None, 6000, 2000),
    (AudioFormat.MP3, 24000, 2500, 600),
    (AudioFormat.OGG_OPUS, 48000, 2500, 600),
    (AudioFormat.OGG_VORBIS, None, 2500, 600),
    (AudioFormat.PCM, 8000, 2500, 600),
]


@pytest.mark.parametrize(("audio_format", "rate", "chars", "part_chars"), CASES)
def test_fanned_out_audio_is_the_single_worker_synthesis(
    fleet: Fleet,
    tiny_synthesizer: Synthesizer,
    audio_format: AudioFormat,
    rate: int | None,
    chars: int,
    part_chars: int,
) -> None:
    text = long_text(chars)
    voice = {"format": audio_format, **({"sample_rate": rate} if rate else {})}
    whole = make_job(text, task_id="whole-1", **voice)
    fanned = make_job(text, task_id="fanned-1", **voice)
    expected = single_worker(fleet, tiny_synthesizer, whole)
    events = MemoryEvents()
    parts = run_fanned_out(fleet, tiny_synthesizer, fanned, part_chars=part_chars, events=events)

    got = fleet.audio(fanned.audio_key)
    assert len(got) == len(expected)
    assert got == expected
    # The marks too (offsets moved across parts).
    for marks_format in ("json", "vtt"):
        whole_marks = fleet.audio(marks_key_for("whole-1", marks_format))  # type: ignore[arg-type]
        fanned_marks = fleet.audio(marks_key_for("fanned-1", marks_format))  # type: ignore[arg-type]
        assert fanned_marks == whole_marks
    # Lifecycle: processing with a growing count of pieces across parts, done once joined.
    mine = [e for e in events.events if e.task_id == "fanned-1"]
    progress = [e.progress.pieces_done for e in mine if e.status is TaskStatus.PROCESSING and e.progress]
    assert progress == sorted(progress) or max(progress) == progress[-1]
    total = mine[-1].progress.pieces_total if mine[-1].progress else 0
    assert {e.status for e in mine} >= {TaskStatus.PROCESSING, TaskStatus.COMPLETED, TaskStatus.DONE}
    assert max(progress) == total
    assert fleet.keys("parts/fanned-1/") == []  # cleaned up after the join
    if audio_format is AudioFormat.WAV and rate is None:
        assert len(parts) >= 3
        assert len(got) > 3 * MIN_PART_BYTES


def test_a_part_failing_for_good_fails_the_parent(fleet: Fleet) -> None:
    from tts_common.exceptions import ModelLoadError

    text = long_text(3000)
    job = make_job(text, task_id="doomed-1")
    events = MemoryEvents()
    good = FakeSynthesizer()
    core = fleet.core(good, events, fleet.ports(part_chars=800, min_chars=800))
    core.process_batch([QueueMessage("parent", job.model_dump_json())])
    parts = fleet.take(fleet.resources.parts_queue_url)
    bad = fleet.core(
        FakeSynthesizer(failures={"": ModelLoadError("no model")}),
        events,
        fleet.ports(part_chars=800, min_chars=800),
    )
    [failed] = bad.process_batch([QueueMessage(parts[1].message_id, parts[1].body, receive_count=3)])
    assert failed.disposition is Disposition.DEAD_LETTER  # the last attempt: failed is published
    # The other parts stop: dropped at start, no join is ever sent.
    for message in [parts[0], *parts[2:]]:
        [outcome] = core.process_batch([message])
        assert outcome.disposition is Disposition.DROPPED
    assert fleet.take(fleet.resources.jobs_queue_url) == []
    statuses = [e.status for e in events.events if e.task_id == "doomed-1"]
    assert TaskStatus.FAILED in statuses
    assert TaskStatus.DONE not in statuses
    failed_event = next(e for e in events.events if e.status is TaskStatus.FAILED)
    assert failed_event.error is not None
    assert failed_event.error.message.startswith(f"part 2 of {len(parts)}: ")


def test_a_redelivered_parent_resends_only_the_missing_parts(fleet: Fleet) -> None:
    text = long_text(3000)
    job = make_job(text, task_id="again-1")
    core = fleet.core(FakeSynthesizer(), MemoryEvents(), fleet.ports(part_chars=800, min_chars=800))
    core.process_batch([QueueMessage("parent", job.model_dump_json())])
    parts = fleet.take(fleet.resources.parts_queue_url)
    core.process_batch([parts[0]])
    core.process_batch([QueueMessage("parent", job.model_dump_json(), receive_count=2)])
    again = fleet.take(fleet.resources.parts_queue_url)
    assert sorted(json.loads(m.body)["part"] for m in again) == list(range(1, len(parts)))


def test_short_texts_are_not_fanned_out(fleet: Fleet) -> None:
    core = fleet.core(FakeSynthesizer(), MemoryEvents(), fleet.ports(part_chars=800, min_chars=2000))
    job = make_job(long_text(1500), task_id="short-1")
    [outcome] = core.process_batch([QueueMessage("m", job.model_dump_json())])
    assert outcome.disposition is Disposition.SUCCEEDED
    assert fleet.take(fleet.resources.parts_queue_url) == []
    assert fleet.audio(job.audio_key)


def test_ledger_counts_a_part_once_under_races(fleet: Fleet) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime

    ledger = fleet.ports(part_chars=800, min_chars=800).ledger
    ledger.create("race-1", parts_total=3, pieces_total=30, join_job="{}", now=datetime.now(UTC))
    with ThreadPoolExecutor(8) as pool:
        firsts = list(pool.map(lambda _: ledger.mark_stored("race-1", 1, 10)[1], range(8)))
    assert firsts.count(True) == 1
    ledger.report("race-1", 0, 4)
    ledger.report("race-1", 0, 2)  # a redelivery behind its own mark lowers nothing
    state = ledger.get("race-1")
    assert state.part_done == {0: 4, 1: 10}
    assert state.pieces_done == 14
    assert state.stored == {1}


# -- the pieces of the join, without a model ----------------------------------------------------------------


def test_plan_join_covers_the_bytes_with_valid_parts() -> None:
    rng = random.Random(0)
    for _ in range(3000):
        m = rng.randint(1, 50)
        sizes = [(f"k{i}", rng.randint(1, 4 * m)) for i in range(rng.randint(1, 8))]
        prefix = b"H" * min(m - 1, rng.choice([0, 0, 1, 3]))  # a header is far below the minimum
        data = {k: bytes([i % 251]) * s for i, (k, s) in enumerate(sizes)}
        segments = plan_join(sizes, prefix, minimum=m)
        joined = b"".join(
            s.prefix + b"".join(data[r.key][r.start : r.end] for r in s.ranges)
            if isinstance(s, Upload)
            else data[s.key][s.start : s.end]
            for s in segments
        )
        assert joined == prefix + b"".join(data[k] for k, _ in sizes)
        lengths = [s.size if isinstance(s, Upload) else s.end - s.start for s in segments]
        assert all(n >= m for n in lengths[:-1])
        assert all(n > 0 for n in lengths)
        assert all(n < 2 * m for s, n in zip(segments, lengths, strict=True) if isinstance(s, Upload))
        assert all(isinstance(s, Copy | Upload) for s in segments)


def test_wav_header_is_libsndfiles() -> None:
    assembler = AudioAssembler(total=1, native_rate=16000, audio_format=AudioFormat.WAV, output_rate=16000)
    assembler.add(0, np.linspace(-0.5, 0.5, 1234, dtype=np.float32))
    body = assembler.finish()
    assert body[:44] == wav_header(data_bytes=2 * 1234, rate=16000)
    assert len(body) == 44 + 2 * 1234


def test_group_parts_keeps_order_and_folds_a_short_tail() -> None:
    pieces = [PlannedPiece(index=i, position=i, text="x" * 100) for i in range(21)]
    parts = group_parts(pieces, part_chars=1000)
    assert [p.position for part in parts for p in part] == list(range(21))
    assert [len(p) for p in parts] == [10, 11]  # a 100-character tail joins the part before
    assert [len(p) for p in group_parts(pieces[:15], part_chars=1000)] == [10, 5]


# -- fairness: a fixed fleet serves short jobs between a part's pieces --------------------------------------


class ArrivingSynthesizer(FakeSynthesizer):
    """Speaks like FakeSynthesizer; calls `on_piece(n)` after its n-th item (a job arriving meanwhile)."""

    def __init__(self, on_piece: Callable[[int], None]) -> None:
        super().__init__()
        self.on_piece = on_piece

    def synthesize(self, items: Any) -> Any:
        results = super().synthesize(items)
        self.on_piece(len(self.items))
        return results


def test_a_short_job_arriving_while_parts_run_is_served_within_a_piece(fleet: Fleet) -> None:
    import threading

    from tts_common.adapters.sqs import JobQueue
    from tts_worker.ecs_loop import run_loop

    long_job = make_job(long_text(6000), task_id="long-1")
    short_job = make_job("Lyhyt teksti.", task_id="short-1")
    sent: list[int] = []

    def arrive(n: int) -> None:
        if n == 3 and not sent:  # the long text's 2nd piece is done: a short task is submitted
            fleet.sqs.send_message(
                QueueUrl=fleet.resources.jobs_queue_url, MessageBody=short_job.model_dump_json()
            )
            sent.append(n)

    synthesizer = ArrivingSynthesizer(arrive)
    core = fleet.core(synthesizer, MemoryEvents(), fleet.ports(part_chars=1500, min_chars=1500))
    jobs = JobQueue(sqs_client=fleet.sqs, queue_url=fleet.resources.jobs_queue_url)
    parts = JobQueue(sqs_client=fleet.sqs, queue_url=fleet.resources.parts_queue_url)
    fleet.sqs.send_message(QueueUrl=fleet.resources.jobs_queue_url, MessageBody=long_job.model_dump_json())
    run_loop(
        core=core, queue=jobs, parts=parts, stop=threading.Event(), wait_s=0, max_polls=30, yield_every_s=0
    )

    texts = [item.text for item in synthesizer.items]
    served_at = texts.index("Lyhyt teksti.")
    long_pieces = len(texts) - 1
    assert sent == [3]
    # Served right after the piece in hand (the 3rd), not after the part (~20 pieces) or the text (~80).
    assert served_at <= 4, (served_at, long_pieces)
    assert long_pieces > 40
    assert fleet.audio(short_job.audio_key)
    assert fleet.audio(long_job.audio_key)


# -- the join's memory: bounded by its blocks, not by the text ----------------------------------------------


class DiskPartStore(PartStore):
    """PartStore over a directory (objects and uploaded parts are files), so that what tracemalloc sees
    during a join is the join's own memory, not the store's."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads: dict[str, dict[int, Path]] = {}

    def _path(self, key: str) -> Path:
        path = self.root / key.replace("/", "__")
        return path

    def read(self, key: str, start: int, end: int) -> bytes:
        with self._path(key).open("rb") as f:
            f.seek(start)
            return f.read(end - start)

    def put_object(self, key: str, body: bytes, *, content_type: str, metadata: dict[str, str]) -> None:
        self._path(key).write_bytes(body)

    def abort_uploads(self, key: str) -> None:
        return None

    def create_upload(self, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        self.uploads[key] = {}
        return key

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        path = self.root / f"up-{number}"
        path.write_bytes(body)
        self.uploads[key][number] = path
        return str(number)

    def copy_part(self, key: str, upload_id: str, number: int, source: str, start: int, end: int) -> str:
        path = self.root / f"up-{number}"
        with self._path(source).open("rb") as src, path.open("wb") as dst:
            src.seek(start)
            remaining = end - start
            while remaining:
                chunk = src.read(min(remaining, MIN_PART_BYTES))
                dst.write(chunk)
                remaining -= len(chunk)
        self.uploads[key][number] = path
        return str(number)

    def complete(self, key: str, upload_id: str, etags: dict[int, str]) -> None:
        with self._path(key).open("wb") as out:
            for number in sorted(etags):
                with self.uploads[key][number].open("rb") as f:
                    while chunk := f.read(MIN_PART_BYTES):
                        out.write(chunk)

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size


def disk_parts(
    store: DiskPartStore, task_id: str, *, parts: int, pieces: int, frames: int
) -> list[dict[str, Any]]:
    """`parts` part objects of `pieces` noise pieces each, as a part worker lays them out."""
    rng = np.random.default_rng(0)
    manifests = []
    pause = round(0.2 * 16000)
    for k in range(parts):
        with store._path(part_audio_key(task_id, k)).open("wb") as f:
            for j in range(pieces):
                if j or k:
                    f.write(bytes(2 * pause))
                f.write((rng.standard_normal(frames) * 3000).astype("<i2").tobytes())
        positions = list(range(k * pieces, (k + 1) * pieces))
        manifests.append(
            {
                "v": 1,
                "part": k,
                "native_rate": 16000,
                "pause_frames": pause,
                "leading_pause": k > 0,
                "positions": positions,
                "indices": positions,
                "piece_frames": [frames] * pieces,
                "bytes": 2 * (pieces * frames + pause * (pieces - (0 if k else 1))),
                "device": "cpu",
                "timings": [None] * pieces,
            }
        )
    return manifests


def measured_join(tmp: Path, parts: int, audio_format: AudioFormat, rate: int) -> tuple[int, int]:
    """(peak bytes tracemalloc saw during the join, joined file size)."""
    store = DiskPartStore(tmp)
    manifests = disk_parts(store, "mem", parts=parts, pieces=20, frames=200_000)  # ~8 MB of PCM a part
    layout = layout_of(manifests, pieces_total=20 * parts)
    tracemalloc.start()
    try:
        size = join_audio(
            store,
            task_id="mem",
            audio_key="audio/mem",
            manifests=manifests,
            layout=layout,
            audio_format=audio_format,
            output_rate=rate,
            pause_s=0.2,
            metadata={},
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size == store.size("audio/mem")
    return peak, size


@pytest.mark.parametrize(
    ("audio_format", "rate"),
    [(AudioFormat.WAV, 16000), (AudioFormat.WAV, 22050), (AudioFormat.FLAC, 16000), (AudioFormat.MP3, 24000)],
)
def test_join_memory_is_bounded_by_its_blocks_not_the_text(
    tmp_path: Path, audio_format: AudioFormat, rate: int
) -> None:
    small_dir, large_dir = tmp_path / "small", tmp_path / "large"
    small_dir.mkdir()
    large_dir.mkdir()
    small_peak, small_size = measured_join(small_dir, 2, audio_format, rate)
    large_peak, large_size = measured_join(large_dir, 8, audio_format, rate)
    print(
        f"join {audio_format.value}@{rate}: {small_size / MIN_PART_BYTES * 5:.0f} MiB -> peak "
        f"{small_peak / 2**20:.1f} MiB; {large_size / MIN_PART_BYTES * 5:.0f} MiB -> peak "
        f"{large_peak / 2**20:.1f} MiB"
    )
    assert large_size > 3.5 * small_size
    # Head (5 MiB) + one 8 MiB block + a read chunk (8 MiB) + copies in flight: never the file.
    assert large_peak < 48 * 2**20
    assert large_peak < small_peak * 1.3 + 4 * 2**20
