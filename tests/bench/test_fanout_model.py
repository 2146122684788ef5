"""bench/fanout.py's Lambda model and its section of docs/BENCHMARKS.md (from given figures)."""

from __future__ import annotations

import pytest

from bench import fanout
from bench.fanout import FanoutResults, JoinCost, MmsRate, StackRun


def run(workers: int, size: int, parts: int, e2e: float, join: float, split: list[int]) -> StackRun:
    by_worker = {str(w): [1.0] * n for w, n in enumerate(split)}
    return StackRun(workers, "1", size, size, parts, e2e, join, [1.0] * parts, by_worker)


def test_the_overhead_fit_recovers_a_fixed_and_a_per_part_cost() -> None:
    # overhead = e2e - join - busiest worker's synthesis = 2 + 0.5 x its parts
    runs = [run(1, 20_000, 3, 3 + 1 + 3.5, 1, [3]), run(2, 100_000, 13, 7 + 2 + 5.5, 2, [7, 6])]
    fixed, per_part = fanout.fit_overhead(runs)
    assert fixed == pytest.approx(2.0)
    assert per_part == pytest.approx(0.5)
    # A negative slope (noise) is not a saving per part: the mean, flat.
    assert fanout.fit_overhead([run(1, 1, 3, 10, 0, [3]), run(1, 1, 13, 16, 0, [13])])[1] >= 0


def test_the_model_follows_the_longest_chain_of_parts() -> None:
    common = {"part_chars": 8000, "rate": 40.0, "fixed_s": 1.0, "per_part_s": 0.5, "join_s": 2.0}
    one = fanout.lambda_seconds(parts=13, k=1, **common)
    assert one == pytest.approx(1 + fanout.COLD_START_S + 13 * (200 + 0.5) + 2)
    assert fanout.lambda_seconds(parts=13, k=10, **common) == pytest.approx(
        1 + fanout.COLD_START_S + 2 * 200.5 + 2
    )
    assert fanout.lambda_seconds(parts=13, k=50, **common) == fanout.lambda_seconds(parts=13, k=13, **common)


def test_the_section_is_spliced_in_place() -> None:
    found = FanoutResults(
        command="python -m bench.run --fanout-only",
        quick=False,
        cpu="cpu",
        cores=2,
        part_chars=8000,
        min_chars=12_000,
        measured_at="2026-12-01",
        mms=[MmsRate(1, 1000, 4, 20.0, 66.0), MmsRate(2, 1000, 4, 40.0, 66.0)],
        audio_s_per_char=0.066,
        joins=[JoinCost("wav", 100_000, 13, 2**27, 2**27, 1.5, 12.0, 10.0)],
        runs=[run(1, 100_000, 13, 30, 2, [13]), run(2, 100_000, 13, 18, 2, [7, 6])],
        load={"before": (1.0, 1.0, 1.0)},
    )
    section = fanout.block(found)
    text = "\n".join(section)
    assert "T(K) = F + C + ceil(P / K)" in text
    for k in fanout.LAMBDA_K:
        assert f"\n| {k} |" in text or f"\n| {k} (default deployment) |" in text
    document = "# Benchmarks\n\nbefore\n\n## Cost per million characters\n\nafter\n"
    once = fanout.splice(document, section)
    assert once.index(fanout.FANOUT_BEGIN) < once.index("## Cost per million characters")
    again = fanout.splice(once, section)
    assert again == once
