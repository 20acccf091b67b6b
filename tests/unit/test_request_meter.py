"""The request quota's CPU meter (broker/request_quota.Meter): what a request is charged.

A request must pay for the event-loop time its own steps take, and nothing for the time it
spends suspended (an fsync off the loop, a long poll, a timer), nor for other tasks' steps.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from kafkito.broker.request_quota import Meter, with_throttle
from kafkito.protocol import codec
from kafkito.protocol.framing import RequestHead


def burn(seconds: float) -> None:
    """Spend `seconds` of this thread's CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def waits(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


async def works_then_waits() -> int:
    burn(0.03)
    await asyncio.sleep(0.1)
    burn(0.03)
    await asyncio.sleep(0)
    return 7


def test_a_request_that_only_waits_costs_about_nothing() -> None:
    async def main() -> tuple[str, float]:
        meter = Meter()
        result = await meter.run(waits(0.2))
        return result, meter.cpu_s

    result, cpu = asyncio.run(main())
    assert result == "done"
    assert cpu < 0.01, cpu


def test_each_step_is_charged_and_the_waits_are_not() -> None:
    async def main() -> tuple[int, float, float]:
        meter = Meter()
        started = time.monotonic()
        result = await meter.run(works_then_waits())
        return result, meter.cpu_s, time.monotonic() - started

    result, cpu, wall = asyncio.run(main())
    assert result == 7
    assert 0.055 <= cpu < 0.09, cpu  # the two 30 ms burns, not the 100 ms sleep
    assert wall >= 0.16


def test_other_tasks_steps_are_not_charged() -> None:
    async def busy_neighbour() -> None:
        for _ in range(5):
            burn(0.02)
            await asyncio.sleep(0)

    async def main() -> float:
        meter = Meter()
        neighbour = asyncio.create_task(busy_neighbour())
        await meter.run(waits(0.05))
        await neighbour
        return meter.cpu_s

    assert asyncio.run(main()) < 0.01


def test_errors_and_cancels_pass_through_and_are_charged() -> None:
    async def fails() -> None:
        burn(0.02)
        await asyncio.sleep(0)
        raise ValueError("bad request")

    async def main() -> tuple[float, bool]:
        meter = Meter()
        with pytest.raises(ValueError, match="bad request"):
            await meter.run(fails())
        cancelled = Meter()
        task = asyncio.create_task(cancelled.run(waits(10)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return meter.cpu_s, task.cancelled()

    cpu, was_cancelled = asyncio.run(main())
    assert cpu >= 0.015
    assert was_cancelled


def test_the_throttle_goes_where_the_version_has_it() -> None:
    metadata_v12 = RequestHead(3, 12, 1)
    answer, told = with_throttle({"throttle_time": 5, "brokers": []}, metadata_v12, 300)
    assert told and answer["throttle_time"] == 300
    answer, told = with_throttle({"throttle_time": 900}, metadata_v12, 300)
    assert told and answer["throttle_time"] == 900  # the larger throttle wins
    metadata_v0 = RequestHead(3, 0, 1)  # no throttle_time_ms before v3: cannot be told
    answer, told = with_throttle({"brokers": []}, metadata_v0, 300)
    assert not told and "throttle_time" not in answer
    built = codec.build(codec.response_schema(3, 12), {"throttle_time": 0, "brokers": []})
    answer, told = with_throttle(built, metadata_v12, 250)
    assert told and codec.ms(answer.throttle_time) == 250
