"""Exact window results computed the plain way, to compare kafkito.streams with.

Written from the rules in windows.py's table, not from its code: no heap, no store; each
function replays one partition's records in order, tracks stream time, decides lateness per
record, and at the end lists the windows closed by the final stream time.
"""

from __future__ import annotations

from collections import defaultdict

Event = tuple[str, int, int]  # key, event time ms, amount
Result = tuple[str, int, int, int]  # key, start, end, sum


def fixed(
    events: list[Event], size: int, advance: int, grace: int
) -> tuple[set[Result], list[Event]]:
    st = -1
    sums: dict[tuple[str, int], int] = defaultdict(int)
    late = []
    for key, ts, amount in events:
        st = max(st, ts)
        starts = [s for s in range(ts - ts % advance, ts - size, -advance) if s >= 0]
        open_ = [s for s in starts if s + size + grace > st]
        if not open_:
            late.append((key, ts, amount))
        for s in open_:
            sums[(key, s)] += amount
    closed = {(k, s, s + size, v) for (k, s), v in sums.items() if s + size + grace <= st}
    return closed, late


def session(events: list[Event], gap: int, grace: int) -> tuple[set[Result], list[Event]]:
    st = -1
    kept: dict[str, list[tuple[int, int]]] = defaultdict(list)
    late = []
    for key, ts, amount in events:
        st = max(st, ts)
        if ts + grace < st:
            late.append((key, ts, amount))
        else:
            kept[key].append((ts, amount))
    closed = set()
    for key, items in kept.items():
        items.sort()
        start, end, total = items[0][0], items[0][0], 0
        for ts, amount in items:
            if ts - end > gap:
                if end + gap + grace + 1 <= st:
                    closed.add((key, start, end, total))
                start, total = ts, 0
            end = ts
            total += amount
        if end + gap + grace + 1 <= st:
            closed.add((key, start, end, total))
    return closed, late


def sliding(events: list[Event], size: int, grace: int) -> tuple[set[Result], list[Event]]:
    st = -1
    kept: dict[str, list[tuple[int, int]]] = defaultdict(list)
    late = []
    for key, ts, amount in events:
        st = max(st, ts)
        if ts + grace < st:
            late.append((key, ts, amount))
        else:
            kept[key].append((ts, amount))
    closed = set()
    for key, items in kept.items():
        for end in {ts for ts, _ in items}:
            if end + grace + 1 <= st:
                total = sum(a for ts, a in items if end - size <= ts <= end)
                closed.add((key, end - size, end, total))
    return closed, late
