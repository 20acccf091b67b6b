"""storage.fs.parallel_map: independent file work several at a time, results in order."""

from __future__ import annotations

import threading
import time

from kafkito.storage.fs import PARALLEL_IO_THREADS, parallel_map


def test_results_come_back_in_the_order_of_the_items() -> None:
    items = list(range(50))

    def slow_square(n: int) -> int:
        time.sleep(0.001 * (n % 5))  # finish out of order
        return n * n

    assert parallel_map(slow_square, items) == [n * n for n in items]


def test_items_overlap_in_several_threads() -> None:
    barrier = threading.Barrier(PARALLEL_IO_THREADS, timeout=10)
    threads: set[str] = set()

    def meet(_n: int) -> None:
        threads.add(threading.current_thread().name)
        barrier.wait()  # only returns once PARALLEL_IO_THREADS items run at the same time

    parallel_map(meet, list(range(PARALLEL_IO_THREADS)))
    assert len(threads) == PARALLEL_IO_THREADS


def test_one_item_runs_on_the_calling_thread() -> None:
    assert parallel_map(lambda _n: threading.current_thread().name, [1]) == [
        threading.current_thread().name
    ]
    assert parallel_map(lambda n: n, []) == []
