"""Speech marks from token durations: properties over random texts, then against the real tiny model.

The property tests feed real tokenizers (tiny-random, and tiny-random-rus, which romanizes with uroman) with
random texts in several scripts and give every token a random duration, so they test the character map and
the marks without a forward pass. The model tests show the times are where the model put the sound.
"""

from __future__ import annotations

import itertools
import json
import random
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tts_common.domain import MarksFormat
from tts_worker.audio import PIECE_PAUSE_S
from tts_worker.marks import SpeechMarks, SpokenPiece, build_marks, render, sentence_cues
from tts_worker.synthesizer.base import TokenTiming
from tts_worker.synthesizer.text_frontend import TextFrontEnd
from tts_worker.text_split import piece_offsets, split_text

RATE = 16_000
HOP = 256  # tiny-random's frame: 16 ms at 16 kHz
FRAME_MS = HOP * 1000 / RATE

LATIN = "abcdefghijklmnopqrstuvwxyzåäöéüàçñßøæÅÄÖÉÜÀÇÑABCDEFGHIJKLMNOPQRSTUVWXYZ"
CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЭЮЯ"
PUNCTUATION = ".,!?;:-—'\"()«»…"
EMOJI = ("🎉", "😀", "👍🏽", "❤️", "🇫🇮")
SEPARATORS = (" ", "  ", "   ", " — ", ". ", "! ", "? ", ", ", " 🎉 ", "... ", '" ')


def words_of(alphabet: str) -> st.SearchStrategy[str]:
    word = st.text(alphabet=alphabet, min_size=1, max_size=9)
    decorated = st.tuples(
        st.sampled_from(["", "", "", "(", "«", '"']),
        word,
        st.sampled_from(["", "", "", ",", ".", "!", "?", "…", ")", "»", "'s", "-" + "ko"]),
    ).map("".join)
    return st.one_of(decorated, decorated, decorated, st.sampled_from(EMOJI), st.sampled_from(["42", "3,14"]))


def texts_of(alphabet: str) -> st.SearchStrategy[str]:
    return st.lists(st.tuples(words_of(alphabet), st.sampled_from(SEPARATORS)), min_size=1, max_size=24).map(
        lambda parts: "".join(w + s for w, s in parts)[: -len(parts[-1][1])] or parts[0][0]
    )


def spoken_words(text: str) -> list[str]:
    """The oracle for "a word": a whitespace-separated run with a letter, digit or combining mark in it."""
    return [run for run in text.split() if any(c.isalnum() or unicodedata.category(c)[0] == "M" for c in run)]


def synthetic_marks(
    front_end: TextFrontEnd, text: str, *, max_chars: int, draw: random.Random
) -> tuple[SpeechMarks, list[SpokenPiece]]:
    """Marks for `text` as the core builds them, every token given a random whole number of frames."""
    pieces = split_text(text, max_chars)
    offsets = piece_offsets(text, pieces)
    pause = round(PIECE_PAUSE_S * RATE)
    spoken: list[SpokenPiece] = []
    frame = 0
    for piece, offset in zip(pieces, offsets, strict=True):
        tokens = front_end.tokens(piece)
        if tokens is None:
            continue  # the core skips a piece the tokenizer keeps nothing of
        if spoken:
            frame += pause
        samples = tuple(draw.randint(0, 6) * HOP for _ in tokens.ids)
        spoken.append(
            SpokenPiece(offset=offset, start=frame, timing=TokenTiming(samples, tuple(tokens.sources)))
        )
        frame += sum(samples)
    return build_marks(text, spoken, sampling_rate=RATE, duration_s=frame / RATE), spoken


def check_marks(marks: SpeechMarks, text: str) -> None:
    encoded = text.encode("utf-8")
    times = [m.start_ms for m in marks.marks]
    assert times == sorted(times), "marks are sorted by time"
    for at, m in enumerate(marks.marks):
        if m.type == "word":
            [home] = [
                i for i, s in enumerate(marks.marks) if s.type == "sentence" and s.start <= m.start < s.end
            ]
            assert home < at, "a sentence comes before its words"
    for m in marks.marks:
        assert 0 <= m.start_ms <= m.end_ms <= marks.duration_ms
        assert encoded[m.byte_start : m.byte_end].decode("utf-8") == m.value
    words = marks.words
    assert len(words) == len(spoken_words(text)), "one word mark per word"
    assert all(
        w.value in run
        for w, run in zip(sorted(words, key=lambda w: w.start), spoken_words(text), strict=True)
    )
    sentences = marks.sentences
    for w in words:
        [home] = [s for s in sentences if s.byte_start <= w.byte_start and w.byte_end <= s.byte_end]
        assert home.start_ms <= w.start_ms <= w.end_ms <= home.end_ms, "sentences cover their words"
    if words and any(m.end_ms for m in marks.marks):
        last = max(words, key=lambda w: w.start)
        if last.end == len(text.rstrip()):  # nothing is spoken after the last word
            assert abs(marks.duration_ms - last.end_ms) <= FRAME_MS
        else:
            assert last.end_ms <= marks.duration_ms


@pytest.fixture(scope="module")
def finnish(tiny_model_dir: Path) -> TextFrontEnd:
    return TextFrontEnd.load(tiny_model_dir)


@pytest.fixture(scope="module")
def russian(tmp_path_factory: pytest.TempPathFactory) -> TextFrontEnd:
    """tiny-random-rus's tokenizer (is_uroman, as MMS Russian's) without generating its weights."""
    from tts_worker.synthesizer.random_models import VOCABULARY, make_tokenizer

    tokenizer = make_tokenizer(tmp_path_factory.mktemp("rus"), language="rus", is_uroman=True)
    front_end = TextFrontEnd(tokenizer, vocab_size=len(VOCABULARY), sampling_rate=RATE)
    assert front_end.romanizes
    return front_end


PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(text=texts_of(LATIN), max_chars=st.integers(20, 80), seed=st.integers(0, 2**32))
def test_marks_hold_for_latin_texts_with_diacritics(
    finnish: TextFrontEnd, text: str, max_chars: int, seed: int
) -> None:
    marks, _ = synthetic_marks(finnish, text, max_chars=max_chars, draw=random.Random(seed))
    check_marks(marks, text)


@PROPERTY
@given(text=texts_of(CYRILLIC + "abc"), max_chars=st.integers(20, 80), seed=st.integers(0, 2**32))
def test_marks_hold_for_a_romanized_script(
    russian: TextFrontEnd, text: str, max_chars: int, seed: int
) -> None:
    marks, _ = synthetic_marks(russian, text, max_chars=max_chars, draw=random.Random(seed))
    check_marks(marks, text)


@PROPERTY
@given(text=texts_of(LATIN + CYRILLIC + PUNCTUATION + "".join(EMOJI)), seed=st.integers(0, 2**32))
def test_marks_hold_for_anything_the_tokenizer_drops(finnish: TextFrontEnd, text: str, seed: int) -> None:
    marks, _ = synthetic_marks(finnish, text, max_chars=40, draw=random.Random(seed))
    check_marks(marks, text)


def test_byte_offsets_count_utf8_bytes_as_polly_does(finnish: TextFrontEnd) -> None:
    text = "Hyvää yötä 🎉 naïve."
    marks, _ = synthetic_marks(finnish, text, max_chars=400, draw=random.Random(1))

    lines = [json.loads(line) for line in render(marks)[MarksFormat.JSON].decode().splitlines()]

    assert [(m["type"], m["value"], m["start"], m["end"]) for m in lines] == [
        ("sentence", "Hyvää yötä 🎉 naïve.", 0, 27),
        ("word", "Hyvää", 0, 7),
        ("word", "yötä", 8, 14),
        ("word", "naïve", 20, 26),
    ]
    assert set(lines[0]) == {"time", "type", "start", "end", "value"}


def test_a_word_the_tokenizer_drops_entirely_is_a_point_inside_its_sentence(finnish: TextFrontEnd) -> None:
    marks, _ = synthetic_marks(finnish, "Sano 日本 nyt. Ja 中文", max_chars=400, draw=random.Random(2))

    dropped = [w for w in marks.words if w.value in {"日本", "中文"}]

    assert len(dropped) == 2
    assert all(w.start_ms == w.end_ms for w in dropped)
    check_marks(marks, "Sano 日本 nyt. Ja 中文")


def test_a_long_sentence_is_cut_into_cues_between_words(finnish: TextFrontEnd) -> None:
    text = " ".join(["pitkä"] * 60) + "."
    marks, _ = synthetic_marks(finnish, text, max_chars=400, draw=random.Random(3))

    cues = sentence_cues(marks)

    assert len(cues) > 1
    assert all(len(c.text) <= 84 for c in cues)
    assert " ".join(c.text for c in cues) == text
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(cues))
    assert cues[0].start_ms == marks.sentences[0].start_ms
    assert cues[-1].end_ms == marks.sentences[0].end_ms


@pytest.mark.parametrize("seed", range(3))
def test_subtitles_parse_with_real_parsers(finnish: TextFrontEnd, seed: int) -> None:
    import html
    import io

    import srt
    import webvtt

    text = "Hyvää huomenta! Tämä on <testi> & koe --> ohi. " + " ".join(["sana"] * 40) + "."
    marks, _ = synthetic_marks(finnish, text, max_chars=60, draw=random.Random(seed))
    files = render(marks)

    captions = webvtt.from_buffer(io.StringIO(files[MarksFormat.VTT].decode())).captions
    subtitles = list(srt.parse(files[MarksFormat.SRT].decode()))
    words = webvtt.from_buffer(io.StringIO(files[MarksFormat.WORDS_VTT].decode())).captions

    assert len(captions) == len(subtitles) == len(sentence_cues(marks)) >= 3
    # WebVTT escapes <, > and & as HTML does (a player shows them unescaped); SRT carries them as they are.
    shown = [html.unescape(c.text).replace("\n", " ") for c in captions]
    assert shown == [s.content.replace("\n", " ") for s in subtitles]
    assert "<testi> & koe --> ohi." in shown[1]
    assert [c.text for c in words] == [w.value for w in marks.words if w.end_ms > w.start_ms]
    starts = [s.start.total_seconds() for s in subtitles]
    assert starts == sorted(starts)
    assert subtitles[-1].end.total_seconds() * 1000 <= marks.duration_ms


def test_ids_the_prediction_misses_take_their_neighbours_source() -> None:
    from tts_worker.synthesizer.text_frontend import _aligned_sources

    # A replaced id keeps its place's source; an extra id takes the source before it.
    assert _aligned_sources([5, 6, 7, 8], [0, 2, 3, 5], [5, 9, 7, 8, 4]) == [0, 2, 3, 5, 5]
    assert _aligned_sources([5, 6], [1, 2], [4, 5, 6]) == [1, 1, 2]
    assert _aligned_sources([], [], [4, 4]) == [0, 0]


def test_every_kept_character_of_a_romanized_text_maps_to_its_source(russian: TextFrontEnd) -> None:
    text = "Привет, мир! Как дела?"
    tokens = russian.tokens(text)

    assert tokens is not None
    sources = [s for s in tokens.sources if s >= 0]
    assert sources == sorted(sources)
    assert {text[s] for s in sources} == set(text)  # every character romanizes to something kept
