"""Cutting the pieces of a batch of jobs into synthesize() calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tts_worker.synthesizer.base import SynthesisItem


@dataclass(frozen=True, slots=True)
class Piece:
    """One piece of one job: `job` indexes the batch, `position` the job's speakable pieces."""

    job: int
    position: int
    item: SynthesisItem

    @property
    def chars(self) -> int:
        return len(self.item.text)


def plan_groups(
    pieces: Sequence[Piece], *, max_items: int, max_padded_chars: int, by_length: bool
) -> list[list[Piece]]:
    """Groups of at most `max_items` pieces whose padded size (items x longest) stays within
    `max_padded_chars` (a lone piece longer than that still gets a group of its own).

    `by_length` sorts the pieces by length first, so that a padded batch wastes little on padding; it keeps
    text order among equal lengths. Without it, the pieces keep the order given (jobs in turn, each in text
    order), which lets the first jobs finish first.
    """
    if max_items < 1 or max_padded_chars < 1:
        raise ValueError("max_items and max_padded_chars must be positive")
    ordered = sorted(pieces, key=lambda p: p.chars) if by_length else list(pieces)
    groups: list[list[Piece]] = []
    current: list[Piece] = []
    longest = 0
    for piece in ordered:
        widest = max(longest, piece.chars)
        if current and (len(current) >= max_items or (len(current) + 1) * widest > max_padded_chars):
            groups.append(current)
            current, widest = [], piece.chars
        current.append(piece)
        longest = widest
    if current:
        groups.append(current)
    return groups
