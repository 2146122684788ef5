"""Splitting long texts: every piece fits, nothing but whitespace at split points is lost, order is kept."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tts_worker.text_split import split_sentences, split_text

ALPHABET = "aeiouyäöåklmnprstvAEKLMÄÖ" + "      " + ".,!?;:…—\"'”)" + "\n\t"
texts = st.text(alphabet=ALPHABET, max_size=600)
limits = st.integers(min_value=1, max_value=120)


def assert_reassembles(text: str, pieces: list[str]) -> None:
    """Walking the text, each piece appears next, with only whitespace before it and after the last."""
    position = 0
    for piece in pieces:
        gap_end = position
        while gap_end < len(text) and text[gap_end].isspace():
            gap_end += 1
        assert text.startswith(piece, gap_end), (text, pieces, piece)
        position = gap_end + len(piece)
    assert text[position:].strip() == ""


@settings(max_examples=300, deadline=None)
@given(text=texts, max_chars=limits)
def test_every_piece_fits_and_nothing_but_split_whitespace_is_lost(text: str, max_chars: int) -> None:
    # When
    pieces = split_text(text, max_chars)

    # Then
    assert all(0 < len(p) <= max_chars for p in pieces)
    assert all(p == p.strip() for p in pieces)
    assert_reassembles(text, pieces)
    assert "".join("".join(pieces).split()) == "".join(text.split())


@settings(max_examples=200, deadline=None)
@given(text=texts)
def test_a_text_within_the_limit_splits_only_at_sentence_ends(text: str) -> None:
    assert split_text(text, 10_000) == split_sentences(text)


def test_sentences_become_pieces() -> None:
    text = "Hyvää huomenta! Mitä kuuluu? Kaikki hyvin. Kiitos…  Nähdään."
    assert split_text(text, 400) == [
        "Hyvää huomenta!",
        "Mitä kuuluu?",
        "Kaikki hyvin.",
        "Kiitos…",
        "Nähdään.",
    ]


def test_closing_quotes_stay_with_their_sentence() -> None:
    assert split_text('Hän sanoi "hei." Sitten lähti.', 400) == ['Hän sanoi "hei."', "Sitten lähti."]


def test_a_long_sentence_breaks_at_a_comma_before_a_space() -> None:
    text = "Tämä on pitkä lause, jossa on pilkku ja vielä monta sanaa perässä"
    assert split_text(text, 40) == ["Tämä on pitkä lause,", "jossa on pilkku ja vielä monta sanaa", "perässä"]


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    assert split_text("a" * 25, 10) == ["a" * 10, "a" * 10, "a" * 5]


def test_blank_text_gives_no_pieces() -> None:
    assert split_text("  \n\t ", 50) == []
