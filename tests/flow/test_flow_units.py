"""Pure parts of the consume flow: offset tracking, per-key scheduling, policies, letters."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import msgspec
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from kafkito.flow import letters
from kafkito.flow.codecs import DecodeError, ValidationFailed, decoder_for
from kafkito.flow.metrics import BUCKETS_S, Timings
from kafkito.flow.outcomes import Reject, RetryLater
from kafkito.flow.policy import PolicyError, RetryPolicy
from kafkito.flow.scheduler import KeyedQueues, KeyedScheduler, ThreadedKeyedScheduler
from kafkito.flow.tracker import Chunk, PartitionTracker


class _Msg:
    """A record as the tracker sees it."""

    def __init__(self, offset: int) -> None:
        self._offset = offset

    def offset(self) -> int:
        return self._offset


def _chunk(offsets: list[int], key: object = "k") -> Chunk:
    return Chunk(("t", 0), 1, key, "t", [_Msg(o) for o in offsets])


@given(
    st.lists(st.integers(0, 300), unique=True, min_size=1),
    st.integers(1, 40),
    st.integers(1, 5),
    st.randoms(),
)
def test_committable_never_passes_an_unresolved_offset(
    offsets: list[int], poll_size: int, keys: int, rnd: random.Random
) -> None:
    """Polls split into per-key chunks, resolved in order within a chunk and in any order
    across chunks: the committable offset is always the lowest unresolved one."""
    offsets.sort()
    tracker = PartitionTracker()
    chunks: list[Chunk] = []
    for start in range(0, len(offsets), poll_size):
        by_key: dict[int, Chunk] = {}
        for offset in offsets[start : start + poll_size]:
            key = rnd.randrange(keys)
            if key not in by_key:
                by_key[key] = _chunk([], key)
                chunks.append(by_key[key])
            by_key[key].messages.append(_Msg(offset))
        for chunk in by_key.values():
            tracker.received(chunk)
    assert tracker.pending == len(offsets)
    unresolved = set(offsets)
    while unresolved:
        chunk = rnd.choice([c for c in chunks if not c.finished])
        count = rnd.randint(1, len(chunk.messages) - chunk.done)
        for message in chunk.messages[chunk.done : chunk.done + count]:
            unresolved.discard(message.offset())
        tracker.resolved(chunk, count)
        assert tracker.pending == len(unresolved)
        committable = tracker.committable()
        assert committable == (min(unresolved) if unresolved else offsets[-1] + 1)


def test_needs_commit_only_when_moved() -> None:
    tracker = PartitionTracker()
    assert tracker.needs_commit() is None
    first, second = _chunk([5], "a"), _chunk([6], "b")
    tracker.received(first)
    tracker.received(second)
    assert tracker.needs_commit() == 5
    tracker.committed = 5
    assert tracker.needs_commit() is None
    tracker.resolved(second)
    assert tracker.needs_commit() is None  # 5 still pending
    tracker.resolved(first)
    assert tracker.needs_commit() == 7
    assert tracker.next == 7


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


def test_a_key_is_never_handed_out_twice_at_once() -> None:
    """A key discarded while waiting in line, then submitted again, is in line twice: the
    second entry must not hand it to a second worker while the first still runs it."""
    queues: KeyedQueues[int] = KeyedQueues(10)
    queues.add("k", 1)
    assert queues.discard(lambda item: False) == [1]  # a revoke: "k" stays in line, stale
    queues.add("k", 2)
    assert queues.pop_ready() == "k"
    assert queues.take("k") == [2]
    queues.add("k", 3)  # arrives while "k" runs
    assert queues.pop_ready() is None
    queues.completed(1)
    queues.free("k")
    assert queues.pop_ready() == "k"
    assert queues.take("k") == [3]


async def test_threaded_scheduler_orders_per_key_and_runs_keys_in_parallel() -> None:
    log: list[tuple[str, int]] = []
    lock = threading.Lock()
    running = peak = 0

    def work(item: tuple[str, int]) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            log.append(item)
        time.sleep(0.01 if item[0] == "slow" else 0.002)
        with lock:
            running -= 1

    scheduler: ThreadedKeyedScheduler[tuple[str, int], object] = ThreadedKeyedScheduler(
        3, work, lambda item, why: None, max_chunk=2
    )
    try:
        for i in range(6):
            scheduler.submit_many([(key, (key, i)) for key in ("a", "b", "slow", "c")])
        await asyncio.wait_for(scheduler.wait_idle(), 5)
    finally:
        scheduler.close()
    assert peak == 3
    for key in ("a", "b", "slow", "c"):
        assert [n for k, n in log if k == key] == list(range(6)), key
    # the slow key did not hold the others back: "a" was done before "slow" was
    assert log.index(("a", 5)) < log.index(("slow", 5))
    assert scheduler.size == 0


async def test_threaded_scheduler_holds_a_key_until_released() -> None:
    """A failed item holds its key (later items of the key wait, other keys go on) until
    release; release with drop gives the held item up."""
    ran: list[str] = []
    held: list[tuple[str, str]] = []
    fail_once = {"a1", "b1"}

    def work(item: str) -> str | None:
        if item in fail_once:
            fail_once.discard(item)
            return "failed"
        ran.append(item)
        return None

    scheduler: ThreadedKeyedScheduler[str, str] = ThreadedKeyedScheduler(
        2, work, lambda item, why: held.append((item, why))
    )
    try:
        scheduler.submit_many([("a", "a1"), ("a", "a2"), ("b", "b1"), ("b", "b2"), ("c", "c1")])
        for _ in range(500):
            if len(held) == 2 and "c1" in ran:
                break
            await asyncio.sleep(0.01)
        assert sorted(held) == [("a1", "failed"), ("b1", "failed")]
        assert ran == ["c1"] and scheduler.size == 4
        scheduler.release("a")  # a1 runs again, then a2
        scheduler.release("b", drop="b1")  # b1 given up, b2 runs
        await asyncio.wait_for(scheduler.wait_idle(), 5)
    finally:
        scheduler.close()
    assert ran.index("a1") < ran.index("a2")
    assert "b1" not in ran and "b2" in ran


async def test_threaded_scheduler_discard_drops_queued_and_held_items() -> None:
    gate = threading.Event()
    done: list[int] = []

    def work(item: int) -> str | None:
        if item == 0:
            gate.wait(5)
            return "hold"
        done.append(item)
        return None

    scheduler: ThreadedKeyedScheduler[int, str] = ThreadedKeyedScheduler(
        1, work, lambda item, why: None, max_chunk=1
    )
    try:
        scheduler.submit_many([("k", i) for i in range(4)])
        await asyncio.sleep(0.05)
        assert sorted(scheduler.discard(lambda item: item == 0)) == [1, 2, 3]  # queued ones
        gate.set()
        for _ in range(100):
            if scheduler.running == 0:
                break
            await asyncio.sleep(0.01)
        assert scheduler.discard(lambda item: False) == [0]  # the held one
        scheduler.release("k")
        await asyncio.wait_for(scheduler.wait_idle(), 5)
    finally:
        scheduler.close()
    assert done == []


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


@given(
    st.lists(st.one_of(st.sampled_from(BUCKETS_S), st.floats(0, 20, allow_nan=False)), max_size=60),
    st.integers(1, 7),
)
def test_handler_timings_count_like_a_prometheus_histogram(
    durations: list[float], batches: int
) -> None:
    """Bulk counting (sorted, one bisection per bound) gives prometheus_client's buckets,
    bounds included ("le")."""
    timings = Timings()
    reference = Histogram("h", "h", buckets=BUCKETS_S, registry=CollectorRegistry())
    for i in range(batches):
        timings.observe_many(durations[i::batches])
    for seconds in durations:
        reference.observe(seconds)
    buckets, total = timings.snapshot()
    expected = {
        s.labels["le"]: s.value
        for s in next(iter(reference.collect())).samples
        if s.name == "h_bucket"
    }
    assert {float(le): n for le, n in buckets} == {float(le): n for le, n in expected.items()}
    assert total == pytest.approx(sum(durations))


def test_handler_timings_from_many_threads_add_up() -> None:
    """Each thread counts in its own shard; a snapshot sums them, also after the threads end."""
    timings = Timings()
    durations = [0.0001, 0.002, 0.02, 3.0, 30.0] * 40  # over 8: the sorted path too

    def observe() -> None:
        for _ in range(50):
            timings.observe_many(durations)
            timings.observe(0.0001)

    threads = [threading.Thread(target=observe) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    timings.observe(0.0001)  # this thread's shard stays live; the four others are folded
    count_here = 1
    buckets, total = timings.snapshot()
    assert timings.snapshot() == (buckets, total)  # folding loses and doubles nothing
    per_thread_calls = 50
    count = 4 * per_thread_calls * (len(durations) + 1) + count_here
    assert dict(buckets)["+Inf"] == count
    assert dict(buckets)["0.0005"] == 4 * per_thread_calls * (40 + 1) + count_here
    assert dict(buckets)["10.0"] == count - 4 * per_thread_calls * 40
    assert total == pytest.approx(4 * per_thread_calls * (sum(durations) + 0.0001) + 0.0001)
    assert len(timings._shards) == 1


def test_the_flow_consumer_long_polls_briefly_unless_told_otherwise() -> None:
    """fetch.wait.max.ms 100 (a resumed partition waits for the fetch in flight), and the
    user's settings win over every default."""
    from kafkito.flow import Flow
    from kafkito.flow.lifecycle import FETCH_WAIT_MAX_MS, consumer_settings

    flow = Flow("t", lambda value: None, group_id="g", brokers="127.0.0.1:1")
    conf = flow._librdkafka()
    assert consumer_settings(flow, conf)["fetch.wait.max.ms"] == FETCH_WAIT_MAX_MS == 100
    mine = Flow(
        "t", lambda value: None, group_id="g", brokers="127.0.0.1:1",
        settings={"fetch.wait.max.ms": 500, "auto.offset.reset": "latest"},
    )  # fmt: skip
    settings = consumer_settings(mine, mine._librdkafka())
    assert settings["fetch.wait.max.ms"] == 500 and settings["auto.offset.reset"] == "latest"
