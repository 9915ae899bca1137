"""Helpers the examples and benchmarks share."""
from __future__ import annotations

import time


def best_time(fn, repeat: int, sync=lambda: None) -> float:
    """The fastest of `repeat` runs of `fn`, in seconds, after one warm-up run (which also compiles). `sync` waits
    for the device (torch.cuda.synchronize on a GPU) so that asynchronous launches are timed whole."""
    fn()
    sync()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return max(best, 1e-9)
