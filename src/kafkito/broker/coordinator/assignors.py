"""Server-side assignors of KIP-848 consumer groups: `uniform` (the default) and `range`.

Both are pure functions from (members' subscriptions, topics' partition counts, the current
target) to a new target assignment; the coordinator (consumer_group.py) decides when to run
them and how members move towards their target.

* uniform: every partition to exactly one subscribed member, as balanced as the subscriptions
  allow (two members subscribed to the same topics differ by at most one partition), and
  sticky: a partition stays with its member unless balance needs it elsewhere, so a join or a
  leave moves as few partitions as possible (Kafka's UniformAssignor, same goals; Kafka's exact
  choice among equally good moves is not reproduced, and member ids are random anyway).
* range: per topic, the subscribed members sorted by member id get contiguous ranges, the
  first `partitions % members` one more; members subscribed to co-partitioned topics get the
  same partition numbers of each (the property range exists for; not sticky).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

TopicPartition = tuple[uuid.UUID, int]
Assignment = frozenset[TopicPartition]

ASSIGNORS = ("uniform", "range")
"""group.consumer.assignors, the first is the default, as in Kafka."""


def assign(
    name: str,
    subscriptions: Mapping[str, frozenset[uuid.UUID]],
    partitions: Mapping[uuid.UUID, int],
    current: Mapping[str, Assignment],
) -> dict[str, Assignment]:
    """The target assignment of `name` ('uniform' or 'range') for members -> subscribed topic
    ids, given each topic's partition count and the current target (for stickiness)."""
    if name == "range":
        return _range(subscriptions, partitions)
    assert name == "uniform", f"unknown assignor {name}"
    return _uniform(subscriptions, partitions, current)


def _range(
    subscriptions: Mapping[str, frozenset[uuid.UUID]], partitions: Mapping[uuid.UUID, int]
) -> dict[str, Assignment]:
    result: dict[str, set[TopicPartition]] = {m: set() for m in subscriptions}
    for topic_id in sorted(partitions, key=str):
        members = sorted(m for m, topics in subscriptions.items() if topic_id in topics)
        if not members:
            continue
        count = partitions[topic_id]
        quota, extra = divmod(count, len(members))
        start = 0
        for index, member in enumerate(members):
            size = quota + (1 if index < extra else 0)
            result[member].update((topic_id, p) for p in range(start, start + size))
            start += size
    return {m: frozenset(tps) for m, tps in result.items()}


def _uniform(
    subscriptions: Mapping[str, frozenset[uuid.UUID]],
    partitions: Mapping[uuid.UUID, int],
    current: Mapping[str, Assignment],
) -> dict[str, Assignment]:
    members = sorted(subscriptions)
    owned: dict[str, set[TopicPartition]] = {m: set() for m in members}
    owner: dict[TopicPartition, str] = {}
    every = [(t, p) for t in sorted(partitions, key=str) for p in range(partitions[t])]

    def eligible(member: str, tp: TopicPartition) -> bool:
        return tp[0] in subscriptions[member]

    # 1. stickiness: keep what each member had, if it is still subscribed to it
    for member in members:
        for tp in sorted(current.get(member, ()), key=_order):
            valid = tp[0] in partitions and tp[1] < partitions[tp[0]] and eligible(member, tp)
            if valid and tp not in owner:
                owner[tp] = member
                owned[member].add(tp)
    # 2. partitions nobody holds go to the least loaded subscribed member
    for tp in every:
        if tp in owner:
            continue
        candidates = [m for m in members if eligible(m, tp)]
        if candidates:
            chosen = min(candidates, key=lambda m: (len(owned[m]), m))
            owner[tp] = chosen
            owned[chosen].add(tp)
    # 3. balance: move one partition at a time from a member to a less loaded one that may
    # own it, while the two differ by more than one; each move lowers the sum of squares, so
    # the loop ends (bounded anyway by the number of partitions squared).
    for _ in range(len(every) ** 2 + 1):
        moved = False
        for heavy in sorted(members, key=lambda m: (-len(owned[m]), m)):
            for tp in sorted(owned[heavy], key=_order, reverse=True):
                takers = [
                    m
                    for m in members
                    if m != heavy and eligible(m, tp) and len(owned[heavy]) - len(owned[m]) > 1
                ]
                if takers:
                    light = min(takers, key=lambda m: (len(owned[m]), m))
                    owned[heavy].remove(tp)
                    owned[light].add(tp)
                    moved = True
                    break
            if moved:
                break
        if not moved:
            break
    return {m: frozenset(tps) for m, tps in owned.items()}


def _order(tp: TopicPartition) -> tuple[str, int]:
    return (str(tp[0]), tp[1])
