"""Cutting a batch's pieces into synthesize() calls: every piece once, within the limits, similar lengths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tts_worker.batching import Piece, plan_groups
from tts_worker.synthesizer.base import SynthesisItem


def pieces_of(lengths: list[int]) -> list[Piece]:
    return [
        Piece(job=i % 3, position=i, item=SynthesisItem(text="a" * n, seed=i)) for i, n in enumerate(lengths)
    ]


@given(
    lengths=st.lists(st.integers(1, 500), max_size=80),
    max_items=st.integers(1, 20),
    max_padded_chars=st.integers(1, 5000),
    by_length=st.booleans(),
)
def test_every_piece_lands_in_exactly_one_group_within_the_limits(
    lengths: list[int], max_items: int, max_padded_chars: int, by_length: bool
) -> None:
    # Given
    pieces = pieces_of(lengths)

    # When
    groups = plan_groups(pieces, max_items=max_items, max_padded_chars=max_padded_chars, by_length=by_length)

    # Then
    flat = [p for g in groups for p in g]
    assert sorted(flat, key=lambda p: p.position) == pieces
    for group in groups:
        assert 1 <= len(group) <= max_items
        assert len(group) == 1 or len(group) * max(p.chars for p in group) <= max_padded_chars
    if by_length:
        assert [p.chars for p in flat] == sorted(p.chars for p in pieces)
    else:
        assert flat == pieces


def test_by_length_puts_similar_lengths_together_and_keeps_text_order_among_equals() -> None:
    pieces = pieces_of([300, 10, 12, 290, 10, 11])

    groups = plan_groups(pieces, max_items=3, max_padded_chars=10_000, by_length=True)

    assert [[p.chars for p in g] for g in groups] == [[10, 10, 11], [12, 290, 300]]
    assert [p.position for p in groups[0][:2]] == [1, 4]


def test_the_padded_size_bound_splits_groups_of_long_pieces() -> None:
    groups = plan_groups(pieces_of([100] * 10), max_items=64, max_padded_chars=400, by_length=True)
    assert [len(g) for g in groups] == [4, 4, 2]


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_groups([], max_items=0, max_padded_chars=1, by_length=False)


@given(
    models=st.lists(st.sampled_from(["m-fin", "m-eng", "m-swh"]), max_size=60),
    max_items=st.integers(1, 20),
    by_length=st.booleans(),
)
def test_a_group_never_mixes_models_and_each_model_comes_in_one_run(
    models: list[str], max_items: int, by_length: bool
) -> None:
    # Given: pieces of jobs in three languages, interleaved
    pieces = [
        Piece(job=i, position=0, item=SynthesisItem(text="a" * (1 + i % 7), seed=i, model_id=m))
        for i, m in enumerate(models)
    ]

    # When
    groups = plan_groups(pieces, max_items=max_items, max_padded_chars=10_000, by_length=by_length)

    # Then: one model per group, models in the order they first appear, each model's groups adjacent
    assert all(len({p.model_id for p in group}) == 1 for group in groups)
    runs = [group[0].model_id for group in groups]
    collapsed = [m for i, m in enumerate(runs) if i == 0 or runs[i - 1] != m]
    assert collapsed == list(dict.fromkeys(models))
    if not by_length:
        for model in set(models):
            mine = [p.job for g in groups for p in g if p.model_id == model]
            assert mine == sorted(mine)  # text order within a model
