"""Per-thread intra-op thread counts for CPU inference.

torch (OpenMP build) reads the process-wide thread count into each thread once, at that thread's first
parallel op, and keeps it: `pin_this_thread` sets the count and makes the calling thread read it at once.
"""

from __future__ import annotations

import os
import threading

import torch

_lock = threading.Lock()


def usable_cores() -> int:
    """CPUs this process may run on (a container's or Lambda's share, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def pin_this_thread(num_threads: int) -> None:
    """Give the calling thread `num_threads` intra-op threads, whatever other threads use."""
    with _lock:
        torch.set_num_threads(num_threads)
        # A parallel op makes torch read the count into this thread now, while it is still ours.
        torch.ones(1 << 16).add_(1).sum()
