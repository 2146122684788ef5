"""The core with a synthesizer that batches: groups by length, isolation of bad pieces, long texts."""

from __future__ import annotations

import tracemalloc

import pytest

from tests.worker.support import (
    BatchingFakeSynthesizer,
    FakeSynthesizer,
    MemoryEvents,
    MemoryStore,
    job_body,
    make_core,
    statuses,
)
from tts_common.domain import TaskStatus, audio_key_for
from tts_common.exceptions import SynthesisFailed
from tts_common.voice import AudioFormat
from tts_worker.failures import Disposition
from tts_worker.ports import QueueMessage
from tts_worker.text_split import split_text

TEXTS = {
    "short": "Hei.",
    "two": "Hyvää huomenta. Kuinka voit tänään?",
    "long": " ".join(f"Tämä on lause numero {n}, ja se on melko pitkä lause." for n in range(9)),
    "mid": "Kissa istui ikkunalaudalla ja katseli lintuja, jotka lensivät ohi.",
}


def batch_of(texts: dict[str, str]) -> list[QueueMessage]:
    return [QueueMessage(message_id=f"m-{t}", body=job_body(text, task_id=t)) for t, text in texts.items()]


def audio_alone(texts: dict[str, str]) -> dict[str, bytes]:
    """Each job's WAV when it is the only job and every piece is synthesized on its own."""
    found = {}
    for task_id, text in texts.items():
        store = MemoryStore()
        make_core(FakeSynthesizer(), store, MemoryEvents()).process_batch(batch_of({task_id: text}))
        found[task_id] = store.audio[audio_key_for(task_id, AudioFormat.WAV)][1]
    return found


def test_pieces_of_all_jobs_are_grouped_by_length_one_call_per_group() -> None:
    # Given: a synthesizer that takes any number of items per call
    synthesizer = BatchingFakeSynthesizer()
    store = MemoryStore()
    core = make_core(synthesizer, store, MemoryEvents(), max_batch=4)

    # When
    outcomes = core.process_batch(batch_of(TEXTS))

    # Then: 1 + 2 + 9 + 1 = 13 pieces in ceil(13 / 4) calls, each call's lengths sorted and adjacent
    assert all(o.disposition is Disposition.SUCCEEDED for o in outcomes)
    assert [len(c) for c in synthesizer.calls] == [4, 4, 4, 1]
    lengths = [len(i.text) for c in synthesizer.calls for i in c]
    assert lengths == sorted(lengths)
    assert sorted(store.audio) == sorted(audio_key_for(t, AudioFormat.WAV) for t in TEXTS)


def test_each_job_is_split_at_its_own_max_piece_chars() -> None:
    # Given: one long sentence, keyed (and sent) with two piece limits
    text = "Kissa istui ikkunalaudalla, katseli lintuja, jotka lensivät ohi, ja mietti hiljaa itsekseen."
    messages = [
        QueueMessage(message_id="m-a", body=job_body(text, task_id="a", max_piece_chars=400)),
        QueueMessage(message_id="m-b", body=job_body(text, task_id="b", max_piece_chars=30)),
    ]
    synthesizer = BatchingFakeSynthesizer()

    # When
    make_core(synthesizer, MemoryStore(), MemoryEvents(), max_batch=64).process_batch(messages)

    # Then: whatever the worker's own settings, a job is spoken as it was keyed
    pieces = sorted(i.text for c in synthesizer.calls for i in c)
    assert split_text(text, 400) == [text]
    assert len(split_text(text, 30)) > 2
    assert pieces == sorted([text, *split_text(text, 30)])


@pytest.mark.parametrize("io_workers", [1, 4])
def test_batching_does_not_change_any_jobs_audio(io_workers: int) -> None:
    store = MemoryStore()
    core = make_core(BatchingFakeSynthesizer(), store, MemoryEvents(), max_batch=5, io_workers=io_workers)

    core.process_batch(batch_of(TEXTS))

    assert {t: store.audio[audio_key_for(t, AudioFormat.WAV)][1] for t in TEXTS} == audio_alone(TEXTS)


def test_the_padded_size_bound_limits_each_call() -> None:
    synthesizer = BatchingFakeSynthesizer()
    core = make_core(synthesizer, MemoryStore(), MemoryEvents(), max_batch=64, max_group_chars=120)

    core.process_batch(batch_of(TEXTS))

    for call in synthesizer.calls:
        assert len(call) == 1 or len(call) * max(len(i.text) for i in call) <= 120


def test_a_bad_piece_fails_only_its_own_job_in_a_shared_group() -> None:
    # Given: one piece of the "two" job breaks the model whenever it is in a call
    synthesizer = BatchingFakeSynthesizer(failures={"Kuinka": SynthesisFailed("nan in the output")})
    store, events = MemoryStore(), MemoryEvents()
    core = make_core(synthesizer, store, events, max_batch=16)

    # When
    outcomes = {o.task_id: o.disposition for o in core.process_batch(batch_of(TEXTS))}

    # Then: the group was retried piece by piece; only "two" failed, the others match their solo audio
    assert outcomes == {
        "short": Disposition.SUCCEEDED,
        "two": Disposition.RETRY,
        "long": Disposition.SUCCEEDED,
        "mid": Disposition.SUCCEEDED,
    }
    assert len(synthesizer.calls[0]) == 13
    assert all(len(c) == 1 for c in synthesizer.calls[1:])
    assert audio_key_for("two", AudioFormat.WAV) not in store.audio
    others = {t: x for t, x in TEXTS.items() if t != "two"}
    assert {t: store.audio[audio_key_for(t, AudioFormat.WAV)][1] for t in others} == audio_alone(others)
    assert statuses(events.events, "two") == ["processing"]


def test_a_failed_jobs_later_pieces_are_not_synthesized() -> None:
    synthesizer = BatchingFakeSynthesizer(failures={"numero 0,": SynthesisFailed("broken")})
    core = make_core(synthesizer, MemoryStore(), MemoryEvents(), max_batch=1)

    [outcome] = core.process_batch(batch_of({"long": TEXTS["long"]}))

    assert outcome.disposition is Disposition.RETRY
    assert len(synthesizer.calls) == 1


def test_a_batched_long_job_reports_progress_per_group() -> None:
    events = MemoryEvents()
    core = make_core(BatchingFakeSynthesizer(), MemoryStore(), events, max_batch=3, progress_interval_s=0)

    core.process_batch(batch_of({"long": TEXTS["long"]}))

    progress = [
        (e.progress.pieces_done, e.progress.pieces_total)
        for e in events.events
        if e.status is TaskStatus.PROCESSING and e.progress
    ]
    assert progress == [(0, 9), (3, 9), (6, 9)]
    assert statuses(events.events, "long")[-2:] == ["completed", "done"]


class QuietFakeSynthesizer(FakeSynthesizer):
    """0.002 s of audio per character: keeps a 100,000-character job's WAV small enough for a unit test."""

    def synthesize(self, items):  # type: ignore[no-untyped-def]
        return [
            type(r)(
                waveform=r.waveform[: max(1, len(r.waveform) // 35)],
                sampling_rate=r.sampling_rate,
                device="cpu",
            )
            for r in super().synthesize(items)
        ]


def test_a_100k_character_text_is_split_streamed_and_written_in_one_file() -> None:
    # Given: Polly's asynchronous limit, in sentences of about 60 characters
    sentence = "Tämä on lause, jonka pituus on noin kuusikymmentä merkkiä. "
    text = (sentence * (100_000 // len(sentence) + 1))[:100_000]
    store, events = MemoryStore(), MemoryEvents()
    synthesizer = QuietFakeSynthesizer()
    core = make_core(synthesizer, store, events)

    # When
    tracemalloc.start()
    [outcome] = core.process_batch(batch_of({"big": text}))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # Then: one piece per sentence, one WAV; memory peaks near the size of that WAV
    assert outcome.disposition is Disposition.SUCCEEDED
    assert len(synthesizer.items) == text.count(". ") + 1
    info, body = store.audio[audio_key_for("big", AudioFormat.WAV)]
    assert info.file_size == len(body)
    # (joining float32 pieces, as the seed did, peaks above 5x the WAV)
    assert peak < 1.5 * len(body) + 2_000_000
    done = [e for e in events.events if e.status is TaskStatus.DONE]
    assert done[0].progress is not None
    assert done[0].progress.pieces_total == len(synthesizer.items)


def test_a_progress_event_that_cannot_be_published_fails_only_its_job() -> None:
    # Given: the channel refuses the first progress event after `processing`
    class FlakyEvents(MemoryEvents):
        def publish(self, event):  # type: ignore[no-untyped-def]
            progress = event.progress
            if event.status is TaskStatus.PROCESSING and progress and progress.pieces_done == 3:
                raise ConnectionError("sns down")
            super().publish(event)

    store, events = MemoryStore(), FlakyEvents()
    core = make_core(BatchingFakeSynthesizer(), store, events, max_batch=3, progress_interval_s=0)

    # When
    outcomes = {o.task_id: o.disposition for o in core.process_batch(batch_of(TEXTS))}

    # Then
    assert outcomes["long"] is Disposition.RETRY
    assert {t for t, d in outcomes.items() if d is Disposition.SUCCEEDED} == {"short", "two", "mid"}
    assert audio_key_for("long", AudioFormat.WAV) not in store.audio


def test_jobs_in_alternating_languages_are_synthesized_one_model_per_call() -> None:
    # Given: four jobs, alternating between two models, on a synthesizer that takes many items per call
    synthesizer = BatchingFakeSynthesizer()
    store = MemoryStore()
    core = make_core(synthesizer, store, MemoryEvents(), max_batch=16)
    jobs = {"a": "m-fin", "b": "m-eng", "c": "m-fin", "d": "m-eng"}
    messages = [
        QueueMessage(message_id=f"m-{t}", body=job_body(f"Lause {t}. Toinen.", task_id=t, model_id=m))
        for t, m in jobs.items()
    ]

    # When
    outcomes = core.process_batch(messages)

    # Then: one call per model, the first-seen model first, and every job's audio written
    assert all(o.disposition is Disposition.SUCCEEDED for o in outcomes)
    assert [{i.model_id for i in call} for call in synthesizer.calls] == [{"m-fin"}, {"m-eng"}]
    assert sorted(store.audio) == sorted(audio_key_for(t, AudioFormat.WAV) for t in jobs)
