"""kafkito.pubsub.aio against the emulator: the same behaviour as the sync flavour, awaited."""

from __future__ import annotations

import asyncio

import pytest
from pskit import make_topic

from kafkito.pubsub import UnknownTopicError
from kafkito.pubsub.aio import (
    HealthChecker,
    Message,
    Reader,
    Record,
    TopicWriter,
    Writer,
    current_message,
    message_key,
)


async def test_async_round_trip_with_keys_attributes_and_coroutine_handlers(project: str) -> None:
    make_topic(project, "aio", subscription="aio-sub", enable_message_ordering=True)
    async with Writer("aio", project_id=project) as writer:
        first = await writer.write(b"a", {"h": "1"}, key="k")
        many = await writer.write_many([Record(f"b{i}", key="k") for i in range(20)])
    assert first.message_id and len(many) == 20
    async with TopicWriter(project_id=project) as topic_writer:
        assert (await topic_writer.write_value("aio", "c")).topic == "aio"

    seen: list[tuple[bytes, bytes | None, str]] = []

    async def handle(message: Message) -> None:
        await asyncio.sleep(0)
        assert current_message.get() is message
        seen.append((message.value, message_key.get(), message.headers.get("h", "")))

    async with Reader("aio-sub", project_id=project) as reader:
        count = await asyncio.wait_for(reader.read_message(handle, limit=22), 30)
    assert count == 22
    keyed = [value for value, key, _ in seen if key == b"k"]
    assert keyed == [b"a", *(f"b{i}".encode() for i in range(20))]  # order per key
    assert (b"a", b"k", "1") in seen and (b"c", None, "") in seen


async def test_async_failure_nacks_and_cancel_leaves_nothing_behind(project: str) -> None:
    make_topic(project, "aiofail", subscription="aiofail-sub", ack_deadline_seconds=60)
    async with Writer("aiofail", project_id=project) as writer:
        await writer.write_many([b"one", b"two"])
    handled: list[bytes] = []

    async def fail_once(value: bytes, headers: dict[str, str]) -> None:
        if value == b"one" and b"failed" not in handled:
            handled.append(b"failed")
            raise RuntimeError("first try fails")
        handled.append(value)

    async with Reader("aiofail-sub", project_id=project) as reader:
        with pytest.raises(RuntimeError, match="first try fails"):
            await asyncio.wait_for(reader.read(fail_once, handle_signals=False), 30)
        # nacked at once (deadline 60 s): the next read gets it again, with "two"
        assert await asyncio.wait_for(reader.read(fail_once, limit=2), 30) == 2

        blocked = asyncio.Event()

        async def never_returns(value: bytes, headers: dict[str, str]) -> None:
            blocked.set()
            await asyncio.sleep(3600)

        async with Writer("aiofail", project_id=project) as writer:
            await writer.write(b"three")
        task = asyncio.create_task(reader.read(never_returns))
        await asyncio.wait_for(blocked.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the cancelled message was nacked: it comes back to the next read at once
        assert await asyncio.wait_for(reader.read(fail_once, limit=1), 30) == 1
    assert sorted(handled) == [b"failed", b"one", b"three", b"two"]


async def test_async_errors_and_health(project: str) -> None:
    writer = Writer("ghost", project_id=project)
    with pytest.raises(UnknownTopicError, match="'ghost' does not exist"):
        await writer.connect()
    make_topic(project, "aiohealth", subscription="aiohealth-sub")
    checker = HealthChecker(subscription="aiohealth-sub", project_id=project)
    try:
        assert (await checker.check())["topic"].endswith("/topics/aiohealth")
        assert (await checker.health())["status"] == "UP"
    finally:
        checker.close()
