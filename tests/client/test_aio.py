"""The asyncio flavour: same names, same semantics as the sync one, over TCP on both brokers."""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest
from clientkit import Cluster
from test_reader import committed, write_keyed
from test_writer import read_back

import kafkito.aio as aio
import kafkito.client as sync
from kafkito.client import MessageTooLargeError, Record, message_key


@pytest.mark.parametrize(
    "name", ["Writer", "TopicWriter", "Reader", "HealthChecker", "Producer", "Consumer"]
)
def test_same_names_and_signatures(name: str) -> None:
    sync_cls, async_cls = getattr(sync, name), getattr(aio, name)
    assert inspect.signature(sync_cls.__init__) == inspect.signature(async_cls.__init__)
    public = [m for m in dir(sync_cls) if not m.startswith("_")]
    for method in public:
        assert hasattr(async_cls, method), f"kafkito.aio.{name} lacks {method}"
        sync_attr = getattr(sync_cls, method)
        if callable(sync_attr) and method not in ("build",):
            s, a = inspect.signature(sync_attr), inspect.signature(getattr(async_cls, method))
            assert list(s.parameters) == list(a.parameters), method
            # transaction() returns an async context manager (`async with`), not a coroutine
            assert inspect.iscoroutinefunction(getattr(async_cls, method)) or method in (
                "stop",
                "transaction",
            )


async def test_async_writes_are_confirmed(cluster: Cluster, topic: str) -> None:
    async with aio.Writer(topic, brokers=cluster.bootstrap) as writer:
        one = await writer.write(b"a0", headers={"h": "1"}, key=b"k")
        two = await writer.write_value(b"a1")
        three = await writer.write_with_key(b"a2", b"k2")
        many = await writer.write_many([b"a3", Record(b"a4", key=b"k4")])
        together = await asyncio.gather(*(writer.write_value(f"c{i}") for i in range(20)))
        with pytest.raises(MessageTooLargeError):
            await writer.write(b"x" * 2_000_000)
    deliveries = [one, two, three, *many, *together]
    assert len({(d.partition, d.offset) for d in deliveries}) == 25
    got = read_back(cluster.bootstrap, topic, 25)
    assert sorted(m.value() for m in got) == sorted(
        [b"a0", b"a1", b"a2", b"a3", b"a4", *(f"c{i}".encode() for i in range(20))]
    )


async def test_async_topic_writer(cluster: Cluster, topic: str) -> None:
    async with aio.TopicWriter(brokers=cluster.bootstrap) as writer:
        delivery = await writer.write(topic, b"x")
        assert delivery.topic == topic


async def test_async_handler_sees_key_and_failure_rereads(
    group_cluster: Cluster, topic: str, group: str
) -> None:
    write_keyed(group_cluster, topic, 5)
    seen: list[tuple[bytes | None, dict[str, str], bytes | None]] = []

    async def handle(value: bytes | None, headers: dict[str, str]) -> None:
        await asyncio.sleep(0)
        if value == b"m3":
            raise ValueError("async handler failed")
        seen.append((value, headers, message_key.get()))

    settings = group_cluster.settings
    async with aio.Reader(
        topic, brokers=group_cluster.bootstrap, group_id=group, settings=settings
    ) as r:
        with pytest.raises(ValueError, match="async handler"):
            await r.read(handle)
    assert seen == [(f"m{i}".encode(), {"n": str(i)}, b"same") for i in range(3)]
    assert list(committed(group_cluster, topic, group).values()) == [3]

    again: list[bytes | None] = []
    async with aio.Reader(
        topic, brokers=group_cluster.bootstrap, group_id=group, settings=settings
    ) as r:
        await r.read_value(again.append, limit=2)  # a plain function works too
    assert again == [b"m3", b"m4"]


async def test_async_ack_on_consume(group_cluster: Cluster, topic: str, group: str) -> None:
    write_keyed(group_cluster, topic, 3)

    async def fail(value: bytes | None) -> None:
        raise RuntimeError("lost")

    async with aio.Reader(
        topic,
        brokers=group_cluster.bootstrap,
        group_id=group,
        settings=group_cluster.settings,
        ack_on_consume=True,
    ) as r:
        with pytest.raises(RuntimeError):
            await r.read_value(fail)
    assert list(committed(group_cluster, topic, group).values()) == [1]


async def test_cancel_stops_promptly_and_commits(
    group_cluster: Cluster, topic: str, group: str
) -> None:
    write_keyed(group_cluster, topic, 2)
    handled: list[bytes | None] = []
    first_two = asyncio.Event()

    async def handle(message: aio.Message) -> None:
        handled.append(message.value)
        if len(handled) == 2:
            first_two.set()

    r = aio.Reader(
        topic, brokers=group_cluster.bootstrap, group_id=group, settings=group_cluster.settings
    )

    async def run() -> None:
        try:
            await r.read_message(handle)
        finally:
            await r.close()

    task = asyncio.create_task(run())
    await asyncio.wait_for(first_two.wait(), 30)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 5
    assert handled == [b"m0", b"m1"]
    assert list(committed(group_cluster, topic, group).values()) == [2]


async def test_async_health(cluster: Cluster) -> None:
    checker = aio.HealthChecker("kafka", brokers=cluster.bootstrap)
    data = await checker.check()
    assert data["brokers"] >= 1
    assert (await checker.health())["status"] == "UP"
