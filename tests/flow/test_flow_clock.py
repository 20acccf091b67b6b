"""The flow's backoff and scheduling read time through its clock (`Flow(clock=...)`).

A `FakeClock` stands in for time: the flow's backoff waits on it, so a test advances it past a
60 s retry delay without waiting 60 s, and sees that the retry comes exactly then (not
before). The records still go over TCP to the embedded broker.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from harness import Running, committed, create_topic, produce, wait_for

from kafkito.clock import FakeClock
from kafkito.flow import Flow, Record, RetryLater, RetryPolicy

StartFlow = Callable[[Flow], Running]


def advance(running: Running, clock: FakeClock, seconds: float) -> None:
    """Move the fake time on the flow's own loop (where its sleepers and timers live)."""
    loop = running.flow._loop
    assert loop is not None
    asyncio.run_coroutine_threadsafe(clock.advance(seconds), loop).result(10)


def test_a_retry_backoff_waits_on_the_flow_clock(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    create_topic(broker, topic_name)
    produce(broker, topic_name, [(b"k", b"payload")])
    clock = FakeClock()
    attempts: list[tuple[int, float]] = []
    lock = threading.Lock()

    def handle(record: Record[bytes]) -> None:
        with lock:
            attempts.append((record.attempt, clock.monotonic()))
        if record.attempt == 1:
            raise RetryLater("not yet")

    began = clock.monotonic()
    running = start_flow(
        Flow(
            topic_name,
            handle,
            group_id="g",
            brokers=broker,
            retry=RetryPolicy.delays([60]),
            commit_interval_s=0.5,
            clock=clock,
        )
    )
    wait_for(lambda: len(attempts) == 1, what="the first attempt")
    advance(running, clock, 59.9)
    time.sleep(0.3)  # real time in which a retry, were it due, would be made
    assert [a for a, _ in attempts] == [1], "retried before its 60 s backoff passed"
    started = time.monotonic()
    advance(running, clock, 0.1)
    wait_for(lambda: len(attempts) == 2, timeout_s=10, what="the retry")
    assert time.monotonic() - started < 10  # not 60 s of real time
    assert attempts[1][0] == 2
    assert abs(attempts[1][1] - began - 60) < 0.01  # when its backoff ended, on the clock

    def committed_after_a_second() -> bool:
        """The commit interval runs on the same clock: move it on until the commit is made."""
        advance(running, clock, 1)
        return committed(broker, "g", topic_name) == [1]

    wait_for(committed_after_a_second, what="the commit")
    running.stop()
