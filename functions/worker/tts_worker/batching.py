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

    @property
    def model_id(self) -> str:
        return self.item.model_id


def plan_groups(
    pieces: Sequence[Piece], *, max_items: int, max_padded_chars: int, by_length: bool
) -> list[list[Piece]]:
    """Groups of one model's pieces, at most `max_items` of them, whose padded size (items x longest) stays
    within `max_padded_chars` (a lone piece longer than that still gets a group of its own).

    Pieces are grouped by model first, models in the order they first appear: a synthesize() call speaks
    with one model, and a worker with room for few models loads each once per batch. `by_length` then
    sorts each model's pieces by length, so that a padded batch wastes little on padding; it keeps text order
    among equal lengths. Without it, a model's pieces keep the order given (jobs in turn, each in text
    order), which lets the first jobs finish first.
    """
    if max_items < 1 or max_padded_chars < 1:
        raise ValueError("max_items and max_padded_chars must be positive")
    first_seen: dict[str, int] = {}
    for piece in pieces:
        first_seen.setdefault(piece.model_id, len(first_seen))
    if by_length:
        ordered = sorted(pieces, key=lambda p: (first_seen[p.model_id], p.chars))
    else:
        ordered = sorted(pieces, key=lambda p: first_seen[p.model_id])
    groups: list[list[Piece]] = []
    current: list[Piece] = []
    longest = 0
    for piece in ordered:
        widest = max(longest, piece.chars)
        other_model = bool(current) and current[0].model_id != piece.model_id
        too_many = len(current) >= max_items or (len(current) + 1) * widest > max_padded_chars
        if current and (other_model or too_many):
            groups.append(current)
            current, widest = [], piece.chars
        current.append(piece)
        longest = widest
    if current:
        groups.append(current)
    return groups
