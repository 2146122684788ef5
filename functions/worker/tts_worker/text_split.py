"""Split long texts into pieces the model speaks well: sentences first, then clauses, then words.

Nothing is lost but the whitespace at split points, and the order is kept: joining the pieces with the
whitespace that was between them gives the text back.
"""

from __future__ import annotations

import re

# A sentence ends at . ! ? or … (repeated, maybe closed by quotes or brackets) before whitespace.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019\u00bb)\]]*(\s+)")
# A clause break: punctuation followed by whitespace; the piece keeps the punctuation.
_CLAUSE_END = re.compile(r"[,;:\u2013\u2014](?=\s)")
_WHITESPACE = re.compile(r"\s")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Where each sentence lies in `text` (start, end), without surrounding whitespace; no empty ones."""
    spans: list[tuple[int, int]] = []
    start = 0
    bounds = [(m.start(1), m.end(1)) for m in _SENTENCE_END.finditer(text)] + [(len(text), len(text))]
    for end, next_start in bounds:
        sentence = text[start:end]
        stripped = sentence.strip()
        if stripped:
            first = start + len(sentence) - len(sentence.lstrip())
            spans.append((first, first + len(stripped)))
        start = next_start
    return spans


def split_sentences(text: str) -> list[str]:
    """Sentences in order, without surrounding whitespace; no empty ones."""
    return [text[start:end] for start, end in sentence_spans(text)]


def piece_offsets(text: str, pieces: list[str]) -> list[int]:
    """Where each of `split_text(text, ...)`'s pieces starts in `text` (they are its substrings, in order)."""
    offsets: list[int] = []
    cursor = 0
    for piece in pieces:
        found = text.find(piece, cursor)
        if found < 0:
            raise ValueError("the pieces are not the text's substrings in order")
        offsets.append(found)
        cursor = found + len(piece)
    return offsets


def _cut_point(text: str, max_chars: int) -> int:
    """Where to end the next piece of a text longer than max_chars: a clause break, a space, or a hard cut."""
    window = text[: max_chars + 1]  # a space right after max_chars still allows a full-length piece
    clause_ends = [m.end() for m in _CLAUSE_END.finditer(window) if m.end() <= max_chars]
    # A clause break only if it does not leave a stub; otherwise fill the piece up to the last word.
    if clause_ends and clause_ends[-1] >= max_chars // 3:
        return clause_ends[-1]
    spaces = [m.start() for m in _WHITESPACE.finditer(window) if m.start() > 0]
    if spaces:
        return spaces[-1]
    return max_chars


def _split_long(sentence: str, max_chars: int) -> list[str]:
    pieces: list[str] = []
    rest = sentence
    while len(rest) > max_chars:
        cut = _cut_point(rest, max_chars)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def split_text(text: str, max_chars: int) -> list[str]:
    """Pieces of at most max_chars characters: one per sentence, long sentences cut at commas or spaces."""
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    pieces: list[str] = []
    for sentence in split_sentences(text):
        pieces.extend(_split_long(sentence, max_chars))
    return pieces
