"""The asyncio client library (kafkito.aio) on a 3-node Apache Kafka, configured from a dict."""

from __future__ import annotations

import asyncio

import pytest
from gradkit import FAST_GROUP, committed, create_topic, end_offsets

from kafkito import aio
from kafkito.client import Record
from kafkito.testing.apache_kafka import ApacheKafka


class Boom(Exception):
    pass


def test_async_write_read_commit_and_a_failed_handler_reads_again(
    kafka: ApacheKafka, topic: str, group: str
) -> None:
    create_topic(kafka.bootstrap, topic, partitions=3)
    config = {
        "brokers": kafka.bootstrap,  # the comma-separated form of the list
        "topic": topic,
        "group_id": group,
        "commit_interval": "200ms",
        "settings": FAST_GROUP,
    }

    async def scenario() -> None:
        async with aio.Writer(config={"brokers": kafka.bootstrap, "topic": topic}) as writer:
            one = await writer.write(b"a0", headers={"h": "x"}, key=b"same")
            two = await writer.write_with_key(b"a1", b"same")
            assert (two.partition, two.offset) == (one.partition, one.offset + 1)
            await writer.write_many([Record(f"a{i}".encode(), key=f"k{i}") for i in range(2, 30)])
        seen: list[tuple[bytes | None, str | None, bytes | None]] = []
        failed: list[bytes] = []

        async def handle(value: bytes | None, headers: dict[str, str]) -> None:
            await asyncio.sleep(0)
            if value == b"a5" and not failed:
                failed.append(value)
                raise Boom("first try")
            seen.append((value, headers.get("h"), aio.message_key.get()))

        async with aio.Reader(config=config) as reader:
            with pytest.raises(Boom):
                await reader.read(handle, limit=30)
            done_before = len(seen)
        async with aio.Reader(config=config) as reader:
            await reader.read(handle, limit=30 - done_before)
            await reader.commit()
            checker = aio.HealthChecker("aio", reader=reader)
            data = await checker.check()
            assert data["brokers"] == 3 and data["brokers_down"] == [], data
            assert (await checker.health())["status"] == "UP"
        assert sorted(int(v[1:]) for v, _, _ in seen if v) == list(range(30))
        assert b"a5" in [v for v, _, _ in seen[done_before:]], "a5 was not read again"
        assert (b"a0", "x", b"same") in seen

    asyncio.run(scenario())
    assert committed(kafka.bootstrap, group, topic, 3) == end_offsets(kafka.bootstrap, topic, 3)
