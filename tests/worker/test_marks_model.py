"""Speech marks on the real tiny-random model: the durations are the forward's own, the times are where the
sound is (alone on ONNX Runtime's decoder and in a padded batch), and the core stores every format."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.voices import make_voice
from tests.worker.support import TINY, MemoryEvents, MemoryStore, make_core
from tts_common.domain import MARKS_FORMATS, MarksFormat, TaskStatus, audio_key_for, marks_key_for
from tts_common.messages import SynthesisJob
from tts_common.voice import AudioFormat
from tts_worker.marks import SpeechMarks, SpokenPiece, build_marks
from tts_worker.ports import QueueMessage
from tts_worker.synthesizer.base import SynthesisItem, SynthesisResult
from tts_worker.synthesizer.vits import VitsSynthesizer
from tts_worker.synthesizer.vits_forward import decoder_reach

pytestmark = pytest.mark.model

TEXT = "Hyvää huomenta, tämä on aivan tavallinen testilause ilman mitään erikoista."
NEIGHBOURS = (
    "Kissa.",
    "Suomen kieli on uralilainen kieli, jota puhuu viisi miljoonaa ihmistä ja vähän muita.",
)


@pytest.fixture(scope="module")
def alone(tiny_model_dir: Path, model_cache_dir: Path) -> VitsSynthesizer:
    """One item per forward, the decoder on ONNX Runtime and the flow in torch (the test below hooks it)."""
    synthesizer = VitsSynthesizer.load(
        tiny_model_dir,
        device="cpu",
        decoder_runtime="onnxruntime",
        cpu_graph="torch",
        cache_dir=model_cache_dir,
    )
    assert synthesizer.decoder_runtime == "onnxruntime"
    return synthesizer


@pytest.fixture(scope="module")
def whole_graph(tiny_model_dir: Path, model_cache_dir: Path) -> VitsSynthesizer:
    """The CPU worker's default path: the whole graph on ONNX Runtime (TTS_CPU_GRAPH=auto)."""
    synthesizer = VitsSynthesizer.load(
        tiny_model_dir,
        device="cpu",
        decoder_runtime="onnxruntime",
        cpu_graph="onnx",
        cache_dir=model_cache_dir,
    )
    assert synthesizer.cpu_graph is not None
    return synthesizer


@pytest.fixture(scope="module")
def batched(tiny_model_dir: Path) -> VitsSynthesizer:
    """The CUDA code path (one padded forward per call), run on the CPU."""
    return VitsSynthesizer.load(tiny_model_dir, device="cpu", batch_forward=True, decoder_runtime="torch")


def marks_of(result: SynthesisResult, text: str) -> SpeechMarks:
    assert result.timing is not None
    piece = SpokenPiece(offset=0, start=0, timing=result.timing)
    return build_marks(
        text, [piece], sampling_rate=result.sampling_rate, duration_s=len(result.waveform) / 16_000
    )


def test_every_token_has_the_duration_the_forward_used_alone_and_in_a_batch(
    alone: VitsSynthesizer, batched: VitsSynthesizer, whole_graph: VitsSynthesizer
) -> None:
    items = [SynthesisItem(text=t, seed=i) for i, t in enumerate((NEIGHBOURS[0], TEXT, NEIGHBOURS[1]))]

    lone = [alone.synthesize([item])[0] for item in items]
    together = batched.synthesize(items)
    graph = whole_graph.synthesize(items)

    for one, on_onnx in zip(lone, graph, strict=True):
        assert on_onnx.timing == one.timing, "the whole graph on ONNX Runtime gives the same durations"
        assert len(on_onnx.waveform) == len(one.waveform)
    for one, other, item in zip(lone, together, items, strict=True):
        assert one.timing is not None
        assert other.timing is not None
        ids = alone.token_ids(item.text)
        assert ids is not None
        assert len(one.timing.samples) == len(ids)
        assert one.timing == other.timing, "a padded batch gives every token the durations it has alone"
        assert sum(one.timing.samples) == len(one.waveform) == len(other.waveform)
        assert all(samples % 256 == 0 for samples in one.timing.samples)  # whole frames


@contextmanager
def flow_frames_zeroed(synthesizer: VitsSynthesizer, *, row: int, frames: tuple[int, int]) -> Iterator[None]:
    """The flow's output (the decoder's input) zeroed over `frames` of batch row `row`: the sound of the
    tokens spoken there, and only theirs, is replaced."""

    def hook(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
        changed = output.clone()
        changed[row, :, frames[0] : frames[1]] = 0
        return changed

    handle = synthesizer.model.flow.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@pytest.mark.parametrize("mode", ["alone", "padded batch"])
def test_a_word_marks_the_samples_its_tokens_made(
    mode: str, alone: VitsSynthesizer, batched: VitsSynthesizer
) -> None:
    """Given a word's mark, when the decoder's input is zeroed over exactly the frames the mark spans,
    then the audio changes inside the mark (and the decoder's reach around it) and nowhere else."""
    synthesizer = alone if mode == "alone" else batched
    items = [SynthesisItem(text=TEXT, seed=5)]
    if mode == "padded batch":
        items = [
            SynthesisItem(text=NEIGHBOURS[0], seed=1),
            items[0],
            SynthesisItem(text=NEIGHBOURS[1], seed=2),
        ]
    row = len(items) // 2
    before = synthesizer.synthesize(items)[row]
    marks = marks_of(before, TEXT)
    word = next(w for w in marks.words if w.value == "tavallinen")
    hop, reach = 256, decoder_reach(synthesizer.model.config)
    frames = (word.start_ms * 16 // hop, word.end_ms * 16 // hop)  # 16 samples per ms; marks fall on frames
    assert frames[1] - frames[0] >= 3

    with flow_frames_zeroed(synthesizer, row=row if mode == "padded batch" else 0, frames=frames):
        after = synthesizer.synthesize(items)[row]

    changed = np.flatnonzero(np.abs(after.waveform - before.waveform) > 1e-4)
    assert changed.size > (frames[1] - frames[0]) * hop // 2, "the word's own samples changed"
    assert changed.min() >= (frames[0] - reach) * hop
    assert changed.max() < (frames[1] + reach) * hop
    assert marks.words[0].start_ms == 0
    assert marks.sentences[0].end_ms == round(len(before.waveform) / 16)


# -- the core: marks beside the audio ------------------------------------------------------------------------


def _job(text: str, **voice: Any) -> SynthesisJob:
    spec = make_voice(model_id=TINY, **voice)
    return SynthesisJob(
        task_id="marks-1",
        dedupe_key="0" * 64,
        voice=spec,
        text=text,
        audio_key=audio_key_for("marks-1", spec.format),
        submitted_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_the_core_stores_every_marks_format_beside_the_audio(tiny_synthesizer: Any) -> None:
    import srt
    import webvtt

    store, events = MemoryStore(), MemoryEvents()
    core = make_core(tiny_synthesizer, store, events)
    text = "Hyvää huomenta, maailma!  Tämä on toinen lause, jossa on vähän enemmän sanoja kuin ensimmäisessä."
    job = _job(text, sample_rate=24_000, speed=1.25, max_piece_chars=40)

    [_outcome] = core.process_batch([QueueMessage("m-1", job.model_dump_json())])

    [done] = [e for e in events.events if e.status is TaskStatus.DONE]
    assert done.audio is not None
    assert done.audio.marks == tuple(MarksFormat)
    assert set(store.marks) == {marks_key_for("marks-1", f) for f in MarksFormat}
    duration_ms = done.audio.duration_s * 1000
    frame_ms = 256 / 16  # a frame at the native rate, whatever the delivered rate
    lines = [
        json.loads(line)
        for line in store.marks[marks_key_for("marks-1", MarksFormat.JSON)].decode().splitlines()
    ]
    times = [m["time"] for m in lines]
    assert times == sorted(times)
    assert times[0] == 0
    normalized = (
        "Hyvää huomenta, maailma! Tämä on toinen lause, jossa on vähän enemmän sanoja kuin ensimmäisessä."
    )
    assert [m["value"] for m in lines if m["type"] == "word"] == [w.strip(",.!") for w in normalized.split()]
    for m in lines:
        assert normalized.encode()[m["start"] : m["end"]].decode() == m["value"]
    captions = webvtt.from_buffer(
        io.StringIO(store.marks[marks_key_for("marks-1", MarksFormat.VTT)].decode())
    ).captions
    subtitles = list(srt.parse(store.marks[marks_key_for("marks-1", MarksFormat.SRT)].decode()))
    assert len(captions) == len(subtitles) >= 2
    assert abs(subtitles[-1].end.total_seconds() * 1000 - duration_ms) <= frame_ms
    assert abs(captions[-1].end_time.in_milliseconds() - duration_ms) <= frame_ms
    words = webvtt.from_buffer(
        io.StringIO(store.marks[marks_key_for("marks-1", MarksFormat.WORDS_VTT)].decode())
    ).captions
    assert len(words) == len(normalized.split())
    assert MARKS_FORMATS[MarksFormat.VTT].content_type.startswith("text/vtt")


def test_marks_do_not_move_with_the_delivered_rate(tiny_synthesizer: Any) -> None:
    """The same speech at 16 and 48 kHz (and in mp3) has the same marks: time is the audio's, not samples."""
    found = []
    for voice in ({}, {"sample_rate": 48_000}, {"format": "mp3", "sample_rate": 22_050}):
        store = MemoryStore()
        core = make_core(tiny_synthesizer, store, MemoryEvents())
        core.process_batch(
            [QueueMessage("m", _job("Kissa istui ikkunalla. Koira nukkui.", **voice).model_dump_json())]
        )
        found.append(store.marks[marks_key_for("marks-1", MarksFormat.JSON)])
    assert found[0] == found[1] == found[2]


def test_a_synthesizer_without_timing_gives_audio_and_no_marks(fake_synthesizer: Any) -> None:
    store, events = MemoryStore(), MemoryEvents()
    core = make_core(fake_synthesizer, store, events)

    core.process_batch([QueueMessage("m", _job("Hei maailma.").model_dump_json())])

    [done] = [e for e in events.events if e.status is TaskStatus.DONE]
    assert done.audio is not None
    assert done.audio.marks == ()
    assert store.marks == {}


def test_the_audio_store_keeps_the_marks_list_for_a_redelivery(aws: None) -> None:
    import boto3

    from tts_common.adapters.s3 import AudioStore
    from tts_common.messages import AudioInfo

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="marks-bucket")
    store = AudioStore(s3_client=s3, bucket="marks-bucket")
    info = AudioInfo(
        audio_key="audio/t.wav",
        file_size=3,
        format=AudioFormat.WAV,
        sampling_rate=16_000,
        duration_s=1.0,
        device="cpu",
        marks=(MarksFormat.JSON, MarksFormat.WORDS_VTT),
    )
    store.put_marks(
        marks_key_for("t", MarksFormat.JSON), b"{}\n", content_type="application/x-json-stream", task_id="t"
    )
    store.put_audio(info, b"abc", task_id="t")

    assert store.find_audio("audio/t.wav") == info
    assert s3.get_object(Bucket="marks-bucket", Key="audio/t.marks.jsonl")["Body"].read() == b"{}\n"
