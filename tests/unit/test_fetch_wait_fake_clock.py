"""A Fetch's max_wait (the delayed fetch), driven by a FakeClock instead of sleeping.

The real broker core (loaded, not listening) answers raw Fetch frames; only time is fake. A
fetch of an empty partition with max_wait 30 s and min_bytes 1 is still waiting a second before
its deadline and answered (with no records) at it; a second one is answered as soon as a record
arrives. Thirty seconds of broker time take no wall time here.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from kafkito.broker.assembly import build_core
from kafkito.broker.settings import BrokerSettings
from kafkito.clock import FakeClock
from kafkito.testing.wire import record_batch, request_frame

MAX_WAIT_MS = 30_000


def _fetch_frame(topic_id: Any) -> bytes:
    body = {
        "replica_id": -1,
        "max_wait": MAX_WAIT_MS,
        "min_bytes": 1,
        "max_bytes": 1 << 20,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [
            {
                "topic_id": topic_id,
                "partitions": [
                    {
                        "partition": 0,
                        "current_leader_epoch": -1,
                        "fetch_offset": 0,
                        "last_fetched_epoch": -1,
                        "log_start_offset": -1,
                        "partition_max_bytes": 1 << 20,
                    }
                ],
            }
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }
    return request_frame(1, 13, 1, body)[4:]


def _produce_frame() -> bytes:
    body = {
        "transactional_id": None,
        "acks": 1,
        "timeout": 5000,
        "topic_data": [
            {
                "name": "t",
                "partition_data": [{"index": 0, "records": record_batch([(b"k", b"v" * 100, [])])}],
            }
        ],
    }
    return request_frame(0, 9, 2, body)[4:]


async def _scenario(data_dir: Path) -> dict[str, object]:
    clock = FakeClock()
    core = build_core(BrokerSettings(data_dir=str(data_dir)), clock=clock)
    await asyncio.to_thread(core.load)
    seen: dict[str, object] = {}
    topic = await core.topics.create("t", 1, {})
    frame = _fetch_frame(topic.topic_id)
    waiting = asyncio.create_task(core.handle(frame, None))
    await clock.advance(MAX_WAIT_MS / 1000 - 1)
    seen["answered_before_max_wait"] = waiting.done()
    await clock.advance(1)
    answer = await asyncio.wait_for(waiting, 5)
    seen["answered_at_max_wait"] = answer is not None
    seen["empty_answer_bytes"] = sum(len(c) for c in answer or [])
    # a record arriving answers a waiting fetch at once, long before max_wait
    second = asyncio.create_task(core.handle(frame, None))
    await clock.advance(1)
    seen["second_waiting"] = not second.done()
    produced = await core.handle(_produce_frame(), None)
    seen["produced"] = produced is not None
    answer = await asyncio.wait_for(second, 5)
    seen["second_bytes"] = sum(len(c) for c in answer or [])
    core.topics.close()
    return seen


def test_a_fetch_waits_max_wait_of_clock_time(tmp_path: Path) -> None:
    started = time.monotonic()
    seen = asyncio.run(_scenario(tmp_path / "data"))
    assert seen["answered_before_max_wait"] is False
    assert seen["answered_at_max_wait"] is True
    assert seen["second_waiting"] is True
    assert seen["produced"] is True
    assert int(seen["second_bytes"]) > int(seen["empty_answer_bytes"]) + 100  # type: ignore[call-overload]
    assert time.monotonic() - started < 15  # 31 s of broker time, not waited for
