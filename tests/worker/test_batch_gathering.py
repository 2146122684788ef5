"""The ECS loop's gatherer: receives of up to 10, accumulated until the batch is full or the wait is over."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from tts_common.adapters.sqs import ReceivedMessage
from tts_worker.ecs_loop import LoopStats, gather_batch


@dataclass
class ScriptedQueue:
    """Hands out `available` messages, at most what each receive asks for; records each call."""

    available: int
    calls: list[tuple[int, int]] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def receive(self, *, max_messages: int = 10, wait_s: int = 20) -> list[ReceivedMessage]:
        self.calls.append((max_messages, wait_s))
        taken = min(max_messages, self.available)
        self.available -= taken
        return [ReceivedMessage(f"m{n}", f"r{n}", "{}", 1) for n in itertools.islice(self.ids, taken)]

    def delete_many(self, receipt_handles: list[str]) -> None:
        pass

    def change_visibility(self, receipt_handles: list[str], *, timeout_s: int) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.001  # every reading costs a millisecond
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def gather(queue: ScriptedQueue, *, max_batch: int, max_wait_s: float) -> tuple[int, LoopStats]:
    clock, stats = FakeClock(), LoopStats()
    batch = gather_batch(
        queue,
        wait_s=20,
        max_batch=max_batch,
        max_wait_s=max_wait_s,
        stats=stats,
        monotonic=clock,
        sleep=clock.sleep,
    )
    return len(batch), stats


def test_receives_accumulate_until_the_batch_is_full() -> None:
    queue = ScriptedQueue(available=100)

    size, stats = gather(queue, max_batch=64, max_wait_s=5.0)

    assert size == 64
    assert [n for n, _ in queue.calls] == [10, 10, 10, 10, 10, 10, 4]
    assert queue.calls[0][1] == 20  # the first receive long-polls
    assert stats.receives == 7


def test_gathering_stops_when_the_wait_is_over() -> None:
    # Given: 25 messages, and a wait shorter than a long poll
    queue = ScriptedQueue(available=25)

    size, _ = gather(queue, max_batch=64, max_wait_s=0.2)

    # Then: all 25 gathered; the empty short polls after them were spaced, not a busy loop
    assert size == 25
    assert all(wait == 0 for _, wait in queue.calls[1:])
    assert len(queue.calls) < 3 + 0.2 / 0.05 + 2


def test_no_wait_means_one_receive() -> None:
    queue = ScriptedQueue(available=25)

    size, _ = gather(queue, max_batch=64, max_wait_s=0.0)

    assert size == 10
    assert len(queue.calls) == 1


def test_an_empty_queue_returns_after_the_long_poll() -> None:
    queue = ScriptedQueue(available=0)

    size, _ = gather(queue, max_batch=16, max_wait_s=1.0)

    assert size == 0
    assert queue.calls == [(10, 20)]


def test_a_batch_smaller_than_a_receive_asks_for_no_more() -> None:
    queue = ScriptedQueue(available=25)

    size, _ = gather(queue, max_batch=3, max_wait_s=1.0)

    assert size == 3
    assert queue.calls == [(3, 20)]
