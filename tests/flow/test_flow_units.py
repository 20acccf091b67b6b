"""Pure parts of the consume flow: offset tracking, per-key scheduling, policies, letters."""

from __future__ import annotations

import asyncio
import random

import msgspec
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkito.flow import letters
from kafkito.flow.codecs import DecodeError, ValidationFailed, decoder_for
from kafkito.flow.outcomes import Reject, RetryLater
from kafkito.flow.policy import PolicyError, RetryPolicy
from kafkito.flow.scheduler import KeyedScheduler
from kafkito.flow.tracker import PartitionTracker


@given(st.lists(st.integers(0, 200), unique=True, min_size=1), st.randoms())
def test_committable_never_passes_an_unresolved_offset(
    offsets: list[int], rnd: random.Random
) -> None:
    offsets.sort()
    tracker = PartitionTracker()
    for o in offsets:
        tracker.received(o)
    unresolved = set(offsets)
    order = offsets[:]
    rnd.shuffle(order)
    for o in order:
        tracker.resolved(o)
        unresolved.discard(o)
        committable = tracker.committable()
        assert committable is not None
        if unresolved:
            assert committable == min(unresolved)
        else:
            assert committable == offsets[-1] + 1


def test_needs_commit_only_when_moved() -> None:
    tracker = PartitionTracker()
    assert tracker.needs_commit() is None
    tracker.received(5)
    tracker.received(6)
    assert tracker.needs_commit() == 5
    tracker.committed = 5
    assert tracker.needs_commit() is None
    tracker.resolved(6)
    assert tracker.needs_commit() is None  # 5 still pending
    tracker.resolved(5)
    assert tracker.needs_commit() == 7


async def test_scheduler_orders_per_key_and_runs_keys_in_parallel() -> None:
    log: list[tuple[str, int, str]] = []
    running = 0
    peak = 0

    async def work(items: list[tuple[str, int]]) -> None:
        nonlocal running, peak
        for item in items:
            running += 1
            peak = max(peak, running)
            log.append((item[0], item[1], "start"))
            await asyncio.sleep(0.01 if item[0] == "slow" else 0.001)
            log.append((item[0], item[1], "end"))
            running -= 1

    scheduler: KeyedScheduler[tuple[str, int]] = KeyedScheduler(3, work, max_chunk=2)
    for i in range(5):
        for key in ("a", "b", "slow", "c"):
            scheduler.submit(key, (key, i))
    await asyncio.wait_for(scheduler.wait_idle(), 5)
    assert peak == 3
    for key in ("a", "b", "slow", "c"):
        events = [(n, what) for k, n, what in log if k == key]
        assert events == [(n, w) for n in range(5) for w in ("start", "end")], key
    # the slow key did not hold the others back: they all finished before it did
    last_slow_end = max(i for i, (k, _, w) in enumerate(log) if k == "slow" and w == "end")
    last_a_end = max(i for i, (k, _, w) in enumerate(log) if k == "a" and w == "end")
    assert last_a_end < last_slow_end
    assert scheduler.size == 0


async def test_scheduler_discard_drops_queued_items_only() -> None:
    gate = asyncio.Event()
    done: list[int] = []

    async def work(items: list[int]) -> None:
        await gate.wait()
        done.extend(items)

    scheduler: KeyedScheduler[int] = KeyedScheduler(1, work, max_chunk=1)
    for i in range(4):
        scheduler.submit("k", i)
    await asyncio.sleep(0)
    dropped = scheduler.discard(lambda item: item % 2 == 0)
    assert sorted(dropped) == [1, 3]
    gate.set()
    await asyncio.wait_for(scheduler.wait_idle(), 5)
    assert done == [0, 2]


def test_policy_from_core_go_style_config() -> None:
    policy = RetryPolicy.from_config({1: 5, 2: "10s", 3: "1m"})
    assert policy.delays_s == (5.0, 10.0, 60.0)
    assert policy.attempts == 4
    assert [policy.delay_s(n) for n in (1, 2, 3)] == [5.0, 10.0, 60.0]
    assert RetryPolicy.from_config(["250ms", 1]).delays_s == (0.25, 1.0)
    named = RetryPolicy.from_config(
        {"initial": "1s", "max": "30s", "max_attempts": 5, "jitter": False, "mode": "topics"}
    )
    assert (named.attempts, named.mode, named.delay_s(1), named.delay_s(10)) == (
        5,
        "topics",
        1.0,
        30.0,
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({1: 5, 3: 10}, "without gaps"),
        ({"delay": 5}, "retry.delay: unknown key"),
        ({1: -1}, "negative"),
        ({1: "soon"}, "not a duration"),
        ({"mode": "later"}, "mode"),
    ],
)
def test_policy_errors_name_the_key(config: dict[object, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        RetryPolicy.from_config(config)  # type: ignore[arg-type]


def test_exponential_backoff_with_seeded_jitter_stays_under_the_cap() -> None:
    policy = RetryPolicy.exponential(
        initial_s=1, multiplier=2, max_s=8, max_attempts=10, rng=random.Random(42)
    )
    delays = [policy.delay_s(n) for n in range(1, 10)]
    assert all(0 <= d <= min(8, 2 ** (n - 1)) for n, d in zip(range(1, 10), delays, strict=True))
    again = RetryPolicy.exponential(
        initial_s=1, multiplier=2, max_s=8, max_attempts=10, rng=random.Random(42)
    )
    assert delays == [again.delay_s(n) for n in range(1, 10)]


def test_transient_classification() -> None:
    policy = RetryPolicy(retry_on=(ConnectionError,))
    assert policy.is_transient(RetryLater())
    assert policy.is_transient(ConnectionResetError())
    assert not policy.is_transient(ValueError())
    assert not policy.is_transient(Reject("no"))


def test_dead_letter_headers_keep_originals_and_fit_the_limit() -> None:
    origin = letters.Origin("clicks", 3, 42, 1700000000000)
    exc = ValueError("x" * 10_000)
    headers = letters.dead_letter_headers(
        [("trace", b"abc"), ("null", None)],
        origin,
        group="g",
        attempts=4,
        exc=exc,
        key=b"k",
        value=b"v" * 1000,
        max_record_bytes=4096,
    )
    as_dict = dict(headers)
    assert as_dict["trace"] == b"abc" and as_dict["null"] is None
    assert as_dict[letters.ORIGINAL_TOPIC] == b"clicks"
    assert as_dict[letters.ORIGINAL_PARTITION] == b"3"
    assert as_dict[letters.ORIGINAL_OFFSET] == b"42"
    assert as_dict[letters.ATTEMPTS] == b"4"
    assert as_dict[letters.EXCEPTION_TYPE] == b"builtins.ValueError"
    message = as_dict[letters.EXCEPTION_MESSAGE]
    assert message is not None and message.endswith(b"[truncated]")
    total = 1000 + 1 + sum(len(k) + len(v or b"") for k, v in headers)
    assert total <= 4096


def test_origin_survives_a_trip_through_a_retry_topic() -> None:
    first = letters.Origin.of("orders", 1, 7, 123, [("h", b"1")])
    hops = letters.retry_headers([("h", b"1")], first, attempt=2, due_ms=999)
    again = letters.Origin.of("orders.retry.1", 0, 55, 456, hops)
    assert again == first
    assert letters.header_int(hops, letters.ATTEMPT) == 2
    assert letters.user_headers(hops) == [("h", b"1")]


class Click(pydantic.BaseModel):
    user: str
    page: str


class View(msgspec.Struct):
    user: str
    ms: int


def test_decoders() -> None:
    assert decoder_for("json")(b'{"a": 1}') == {"a": 1}
    assert decoder_for("raw")(b"\xff") == b"\xff"
    assert decoder_for(Click)(b'{"user": "u", "page": "/"}') == Click(user="u", page="/")
    assert decoder_for(View)(b'{"user": "u", "ms": 3}') == View("u", 3)
    with pytest.raises(DecodeError):
        decoder_for("json")(b"{nope")
    with pytest.raises(ValidationFailed):
        decoder_for(Click)(b'{"user": "u"}')
    with pytest.raises(ValidationFailed):
        decoder_for(View)(b'{"user": "u", "ms": "three"}')
    with pytest.raises(DecodeError):
        decoder_for(View)(b"\x00garbage")
