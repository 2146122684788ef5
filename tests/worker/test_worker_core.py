"""The worker core with fake ports: what each kind of job leads to, in events, audio and outcomes."""

from __future__ import annotations

import io
import itertools

import pytest
import soundfile as sf

from tests.worker.support import (
    SAMPLING_RATE,
    FakeSynthesizer,
    MemoryEvents,
    MemoryMetrics,
    MemoryStore,
    MemoryTasks,
    job_body,
    make_core,
    make_job,
    raw_json,
    statuses,
    with_raw_voice,
)
from tts_common.domain import TaskStatus, audio_key_for, normalize_text, text_key_for
from tts_common.exceptions import SynthesisFailed
from tts_common.messages import AudioInfo
from tts_common.voice import AudioFormat, seed_for, waveform_key
from tts_worker.core import MessageOutcome, WorkerCore
from tts_worker.failures import Disposition
from tts_worker.job_input import parse_job, recover_task_id
from tts_worker.ports import QueueMessage


def message(body: str, receive_count: int = 1, message_id: str = "m-1") -> QueueMessage:
    return QueueMessage(message_id=message_id, body=body, receive_count=receive_count)


def process_one(core: WorkerCore, received: QueueMessage) -> MessageOutcome:
    """One message through the core, as a batch of one."""
    [outcome] = core.process_batch([received])
    return outcome


def test_a_job_writes_its_wav_and_reports_processing_completed_done(
    fake_synthesizer: FakeSynthesizer, store: MemoryStore, events: MemoryEvents, metrics: MemoryMetrics
) -> None:
    # Given
    core = make_core(fake_synthesizer, store, events, metrics)

    # When
    [outcome] = core.process_batch([message(job_body("Hyvää huomenta.", task_id="t1"), receive_count=2)])

    # Then
    assert (outcome.disposition, outcome.settled, outcome.task_id) == (Disposition.SUCCEEDED, True, "t1")
    info, body = store.audio[audio_key_for("t1", AudioFormat.WAV)]
    assert info.file_size == len(body)
    assert (info.sampling_rate, info.device) == (SAMPLING_RATE, "cpu")
    decoded = sf.info(io.BytesIO(body))
    assert (decoded.samplerate, decoded.subtype) == (SAMPLING_RATE, "PCM_16")
    assert info.duration_s == pytest.approx(decoded.frames / SAMPLING_RATE)
    assert statuses(events.events, "t1") == ["processing", "completed", "done"]
    assert all(e.attempt == 2 for e in events.events)
    assert events.events[0].progress is not None
    assert events.events[0].progress.pieces_done == 0
    assert events.events[-1].audio == events.events[-2].audio == info
    assert metrics.total("TasksCompleted") == 1
    assert metrics.total("AudioSeconds") == pytest.approx(info.duration_s)
    assert metrics.total("SynthesisSeconds") >= 0


def test_each_piece_is_seeded_from_the_waveform_key_and_its_place(
    fake_synthesizer: FakeSynthesizer, store: MemoryStore, events: MemoryEvents
) -> None:
    # Given: three sentences, one of them nothing but digits (unspeakable, skipped)
    job = make_job("Ensimmäinen lause. 12345. Kolmas lause on tässä.", task_id="t1")
    core = make_core(fake_synthesizer, store, events)

    # When
    process_one(core, message(job.model_dump_json()))

    # Then
    assert [i.text for i in fake_synthesizer.items] == ["Ensimmäinen lause.", "Kolmas lause on tässä."]
    key = waveform_key(normalize_text(job.text or ""), job.voice)
    assert [i.seed for i in fake_synthesizer.items] == [seed_for(key, 0), seed_for(key, 2)]
    info, _ = store.audio[audio_key_for("t1", AudioFormat.WAV)]
    speech = sum(round(len(i.text) * 0.07 * SAMPLING_RATE) for i in fake_synthesizer.items)
    assert info.duration_s == pytest.approx((speech + 0.2 * SAMPLING_RATE) / SAMPLING_RATE)
    progress = [
        (e.status, e.progress.pieces_done, e.progress.pieces_total) for e in events.events if e.progress
    ]
    assert progress == [
        (TaskStatus.PROCESSING, 0, 2),
        (TaskStatus.PROCESSING, 1, 2),
        (TaskStatus.COMPLETED, 2, 2),
        (TaskStatus.DONE, 2, 2),
    ]


def test_the_same_job_gives_the_same_bytes(store: MemoryStore, events: MemoryEvents) -> None:
    body = job_body("Sama teksti, sama ääni.", task_id="t1")
    process_one(make_core(FakeSynthesizer(), store, events), message(body))
    first = store.audio.pop(audio_key_for("t1", AudioFormat.WAV))[1]

    process_one(make_core(FakeSynthesizer(), store, events), message(body))

    assert store.audio[audio_key_for("t1", AudioFormat.WAV)][1] == first


def test_voice_parameters_travel_to_the_synthesizer(
    fake_synthesizer: FakeSynthesizer, store: MemoryStore, events: MemoryEvents
) -> None:
    body = job_body("Nopeasti.", model_id="m-eng", speed=1.5, noise_scale=0.3, noise_scale_duration=0.4)
    process_one(make_core(fake_synthesizer, store, events), message(body))

    [item] = fake_synthesizer.items
    assert (item.speaking_rate, item.noise_scale, item.noise_scale_duration) == (1.5, 0.3, 0.4)
    assert item.model_id == "m-eng"


def test_progress_of_a_long_job_is_reported_at_most_every_interval(
    store: MemoryStore, events: MemoryEvents
) -> None:
    # Given: 12 pieces, and a clock that advances 0.5 s per reading
    clock = itertools.count(step=0.5)
    core = WorkerCore(
        synthesizer=FakeSynthesizer(),
        store=store,
        events=events,
        tasks=MemoryTasks(),
        monotonic=lambda: float(next(clock)),
    )
    text = " ".join(f"Lause numero {n}." for n in range(12))

    # When
    process_one(core, message(job_body(text)))

    # Then: each piece costs two readings (1 s), so every second piece is reported
    processing = [
        e.progress.pieces_done for e in events.events if e.status is TaskStatus.PROCESSING and e.progress
    ]
    assert processing == [0, 2, 4, 6, 8, 10]


def test_text_stored_in_the_bucket_is_read_from_there(
    fake_synthesizer: FakeSynthesizer, store: MemoryStore, events: MemoryEvents
) -> None:
    store.texts[text_key_for("t1")] = "Pitkä teksti ämpärissä."
    body = job_body(None, task_id="t1", text_key=text_key_for("t1"))

    outcome = process_one(make_core(fake_synthesizer, store, events), message(body))

    assert outcome.disposition is Disposition.SUCCEEDED
    assert [i.text for i in fake_synthesizer.items] == ["Pitkä teksti ämpärissä."]


def test_a_redelivered_finished_job_republishes_and_does_no_work(
    fake_synthesizer: FakeSynthesizer, store: MemoryStore, events: MemoryEvents, metrics: MemoryMetrics
) -> None:
    # Given: the audio was written by an earlier delivery
    existing = AudioInfo(
        audio_key=audio_key_for("t1", AudioFormat.WAV),
        file_size=44,
        format=AudioFormat.WAV,
        sampling_rate=16_000,
        duration_s=1.5,
        device="cuda",
    )
    store.audio[existing.audio_key] = (existing, b"")

    # When
    outcome = process_one(
        make_core(fake_synthesizer, store, events, metrics), message(job_body(task_id="t1"), receive_count=2)
    )

    # Then
    assert outcome.disposition is Disposition.SUCCEEDED
    assert fake_synthesizer.items == []
    assert store.puts == 0
    assert statuses(events.events, "t1") == ["completed", "done"]
    assert all(e.audio == existing for e in events.events)
    assert metrics.total("TasksCompleted") == 0


@pytest.mark.parametrize("text", ["", "   ", "12345 !!! ???"])
def test_text_with_nothing_to_speak_fails_now(
    text: str, fake_synthesizer: FakeSynthesizer, store: MemoryStore, events: MemoryEvents
) -> None:
    outcome = process_one(make_core(fake_synthesizer, store, events), message(job_body(text, task_id="t1")))

    assert (outcome.disposition, outcome.settled) == (Disposition.FAILED, True)
    [failed] = events.events
    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == "empty_tokenization"
    assert store.puts == 0


@pytest.mark.parametrize(
    "body",
    [
        raw_json(task_id="t1", text="hei"),
        raw_json(task_id="t1", foo=1),
        job_body(task_id="t1", audio_key="audio/somebody-else.wav"),
        job_body(task_id="t1", format="mp3", audio_key="audio/t1.wav"),
        with_raw_voice(job_body(task_id="t1"), speed=0.0),
        with_raw_voice(job_body(task_id="t1"), noise_scale=-1.0),
        with_raw_voice(job_body(task_id="t1", format="ogg_opus"), sample_rate=22050),
        with_raw_voice(job_body(task_id="t1"), pitch=2),
    ],
    ids=[
        "missing-fields",
        "garbage-fields",
        "foreign-audio-key",
        "key-of-another-format",
        "zero-speed",
        "negative-noise",
        "rate-the-format-cannot-hold",
        "unknown-voice-field",
    ],
)
def test_a_malformed_job_with_a_task_id_fails_that_task(
    body: str, fake_synthesizer: FakeSynthesizer, store: MemoryStore, events: MemoryEvents
) -> None:
    outcome = process_one(make_core(fake_synthesizer, store, events), message(body))

    assert (outcome.disposition, outcome.settled) == (Disposition.FAILED, True)
    [failed] = events.events
    assert (failed.task_id, failed.status) == ("t1", TaskStatus.FAILED)
    assert failed.error is not None
    assert failed.error.code == "malformed_job"
    assert fake_synthesizer.items == []


@pytest.mark.parametrize("body", ["not json", "[1, 2]", raw_json(text="no id"), raw_json(task_id="")])
def test_a_malformed_job_without_a_task_id_is_dropped(
    body: str, fake_synthesizer: FakeSynthesizer, store: MemoryStore, events: MemoryEvents
) -> None:
    outcome = process_one(make_core(fake_synthesizer, store, events), message(body))

    assert (outcome.disposition, outcome.settled, outcome.task_id) == (Disposition.FAILED, True, None)
    assert events.events == []


@pytest.mark.parametrize("error", [SynthesisFailed("gpu hiccup"), RuntimeError("surprise")])
def test_a_transient_failure_retries_without_reporting(
    error: Exception, store: MemoryStore, events: MemoryEvents
) -> None:
    synthesizer = FakeSynthesizer(failures={"huomenta": error})

    outcome = process_one(make_core(synthesizer, store, events), message(job_body(task_id="t1")))

    assert (outcome.disposition, outcome.settled) == (Disposition.RETRY, False)
    assert statuses(events.events, "t1") == ["processing"]


def test_the_last_attempt_of_a_transient_failure_reports_failed_and_goes_to_the_dlq(
    store: MemoryStore, events: MemoryEvents, metrics: MemoryMetrics
) -> None:
    synthesizer = FakeSynthesizer(failures={"huomenta": RuntimeError("surprise")})

    outcome = process_one(
        make_core(synthesizer, store, events, metrics), message(job_body(task_id="t1"), receive_count=3)
    )

    assert (outcome.disposition, outcome.settled) == (Disposition.DEAD_LETTER, False)
    failed = events.events[-1]
    assert failed.status is TaskStatus.FAILED
    assert failed.attempt == 3
    assert failed.error is not None
    assert failed.error.code == "internal_error"
    assert failed.error.message == "gave up after 3 attempts: an internal error stopped the synthesis"
    assert "surprise" not in failed.error.message
    assert metrics.total("TasksFailed") == 1


def test_a_failure_that_cannot_be_reported_is_retried(
    fake_synthesizer: FakeSynthesizer, store: MemoryStore
) -> None:
    events = MemoryEvents(fail_with=ConnectionError("sns down"))

    outcome = process_one(make_core(fake_synthesizer, store, events), message(job_body("", task_id="t1")))

    assert outcome.disposition is Disposition.RETRY


def test_one_bad_job_never_fails_its_neighbours(store: MemoryStore, events: MemoryEvents) -> None:
    # Given
    synthesizer = FakeSynthesizer(failures={"rikki": SynthesisFailed("broken")})
    batch = [
        message(job_body("Ensimmäinen.", task_id="a"), message_id="m-a"),
        message(job_body("Tämä on rikki.", task_id="b"), message_id="m-b"),
        message("{not json", message_id="m-c"),
        message(job_body("", task_id="d"), message_id="m-d"),
        message(job_body("Viimeinen.", task_id="e"), message_id="m-e"),
    ]

    # When
    outcomes = make_core(synthesizer, store, events).process_batch(batch)

    # Then
    assert [(o.message_id, o.disposition) for o in outcomes] == [
        ("m-a", Disposition.SUCCEEDED),
        ("m-b", Disposition.RETRY),
        ("m-c", Disposition.FAILED),
        ("m-d", Disposition.FAILED),
        ("m-e", Disposition.SUCCEEDED),
    ]
    assert sorted(store.audio) == [audio_key_for("a", AudioFormat.WAV), audio_key_for("e", AudioFormat.WAV)]


def test_parse_job_accepts_what_the_api_sends() -> None:
    job = make_job("Hei.", task_id="t1")
    assert parse_job(job.model_dump_json()) == job


def test_recover_task_id_only_takes_a_plausible_id() -> None:
    assert recover_task_id(raw_json(task_id="abc")) == "abc"
    assert recover_task_id(raw_json(task_id="x" * 65)) is None
    assert recover_task_id(raw_json(task_id=5)) is None
    assert recover_task_id(raw_json(task_id="a\nb")) is None


def test_a_job_whose_task_does_not_exist_is_deleted_without_work_or_report(
    fake_synthesizer: FakeSynthesizer, store: MemoryStore, events: MemoryEvents
) -> None:
    # Given a valid job for a task the table does not hold
    core = make_core(fake_synthesizer, store, events, tasks=MemoryTasks(missing={"ghost"}))

    # When
    outcome = process_one(core, message(job_body(task_id="ghost")))

    # Then it is settled (deleted), and nothing was synthesized, stored or published
    assert (outcome.disposition, outcome.settled) == (Disposition.DROPPED, True)
    assert fake_synthesizer.items == []
    assert store.puts == 0
    assert events.events == []


@pytest.mark.parametrize(
    ("audio_format", "sample_rate", "subtype"),
    [("flac", 24_000, "PCM_16"), ("ogg_vorbis", None, "VORBIS"), ("wav", 8_000, "PCM_16")],
)
def test_the_audio_follows_the_voices_format_and_rate(
    audio_format: str, sample_rate: int | None, subtype: str, store: MemoryStore, events: MemoryEvents
) -> None:
    # Given
    body = job_body("Hyvää huomenta.", task_id="t1", format=audio_format, sample_rate=sample_rate)

    # When
    outcome = process_one(make_core(FakeSynthesizer(), store, events), message(body))

    # Then: the key, the facts and the file all say the asked format and rate (else the native one)
    assert outcome.disposition is Disposition.SUCCEEDED
    info, audio = store.audio[audio_key_for("t1", AudioFormat(audio_format))]
    rate = sample_rate or SAMPLING_RATE
    assert (info.format, info.sampling_rate) == (AudioFormat(audio_format), rate)
    decoded = sf.info(io.BytesIO(audio))
    assert (decoded.samplerate, decoded.subtype) == (rate, subtype)
    assert events.events[-1].audio == info


def test_the_same_text_in_two_formats_is_spoken_with_the_same_seeds(store: MemoryStore) -> None:
    # Given: one text as wav at the native rate and as flac at 48 kHz
    text = "Ensimmäinen lause. Toinen lause."
    spoken = {}
    for audio_format, rate in (("wav", None), ("flac", 48_000)):
        synthesizer = FakeSynthesizer()
        body = job_body(text, task_id=f"t-{audio_format}", format=audio_format, sample_rate=rate)

        # When
        process_one(make_core(synthesizer, store, MemoryEvents()), message(body))
        spoken[audio_format] = [(i.text, i.seed) for i in synthesizer.items]

    # Then
    assert spoken["wav"] == spoken["flac"]
    assert len(spoken["wav"]) == 2
