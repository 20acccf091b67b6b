"""The KIP-848 server-side assignors as properties: every subscribed partition owned exactly
once, by a member subscribed to its topic; uniform balances and is sticky; range keeps
co-partitioned topics together. (The member state table is exercised through the broker by
tests/integration/test_kip848.py and tests/compat/test_differential_kip848.py.)"""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from kafkito.broker.coordinator.assignors import assign

TOPICS = [uuid.UUID(int=i + 1) for i in range(3)]


@st.composite
def groups(draw: st.DrawFn) -> tuple[dict[str, frozenset[uuid.UUID]], dict[uuid.UUID, int]]:
    partitions = {t: draw(st.integers(0, 8)) for t in TOPICS}
    names = draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=6, unique=True))
    subscriptions = {
        f"member-{n}": frozenset(draw(st.sets(st.sampled_from(TOPICS), min_size=1))) for n in names
    }
    return subscriptions, partitions


def check_exact_cover(
    result: dict[str, frozenset[tuple[uuid.UUID, int]]],
    subscriptions: dict[str, frozenset[uuid.UUID]],
    partitions: dict[uuid.UUID, int],
) -> None:
    owned = [tp for tps in result.values() for tp in tps]
    assert len(owned) == len(set(owned)), "a partition owned twice"
    wanted = {
        (t, p)
        for t in partitions
        if any(t in s for s in subscriptions.values())
        for p in range(partitions[t])
    }
    assert set(owned) == wanted
    for member, tps in result.items():
        assert all(t in subscriptions[member] for t, _ in tps)


@settings(max_examples=60, deadline=None)
@given(groups(), st.sampled_from(["uniform", "range"]))
def test_every_partition_is_owned_exactly_once(
    group: tuple[dict[str, frozenset[uuid.UUID]], dict[uuid.UUID, int]], name: str
) -> None:
    subscriptions, partitions = group
    result = assign(name, subscriptions, partitions, {})
    check_exact_cover(result, subscriptions, partitions)
    again = assign(name, subscriptions, partitions, result)
    assert again == result, "the same input must give the same target"


@settings(max_examples=60, deadline=None)
@given(groups(), st.integers(1, 3))
def test_uniform_balances_equal_subscriptions_and_moves_little_on_join(
    group: tuple[dict[str, frozenset[uuid.UUID]], dict[uuid.UUID, int]], joining: int
) -> None:
    subscriptions, partitions = group
    same = {m: frozenset(TOPICS) for m in subscriptions}
    before = assign("uniform", same, partitions, {})
    sizes = [len(tps) for tps in before.values()]
    assert max(sizes) - min(sizes) <= 1
    grown = {**same, **{f"new-{i}": frozenset(TOPICS) for i in range(joining)}}
    after = assign("uniform", grown, partitions, before)
    check_exact_cover(after, grown, partitions)
    sizes = [len(tps) for tps in after.values()]
    assert max(sizes) - min(sizes) <= 1
    for member, tps in before.items():
        assert after[member] <= tps, "a join only takes partitions away from old members"


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6), st.integers(0, 12))
def test_range_gives_co_partitioned_topics_together(members: int, count: int) -> None:
    subscriptions = {f"m{i}": frozenset(TOPICS[:2]) for i in range(members)}
    result = assign("range", subscriptions, {TOPICS[0]: count, TOPICS[1]: count}, {})
    for tps in result.values():
        first = sorted(p for t, p in tps if t == TOPICS[0])
        assert first == sorted(p for t, p in tps if t == TOPICS[1])
        if first:  # one contiguous range
            assert first == list(range(first[0], first[0] + len(first)))
