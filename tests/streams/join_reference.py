"""Exact windowed stream-stream join results computed the plain way, to compare
kafkito.streams' joins with.

Written from the rules in joins.JoinSide's docstring, not from its code: no heap, no store;
`window_join` replays one partition's records in arrival order, tracks stream time, drops
late records, pairs, expires, and lists what an inner, left or outer join emits.
"""

from __future__ import annotations

from dataclasses import dataclass

Arrival = tuple[bool, str, str, int]  # is_left, key, id, event time ms
Result = tuple[str, list[str | None]]  # key, [left id, right id]


@dataclass
class _Kept:
    is_left: bool
    key: str
    id: str
    ts: int
    matched: bool = False


def window_join(
    arrivals: list[Arrival],
    *,
    within: int,
    grace: int,
    how: str,
    final_stream_time: float | None = None,
) -> list[Result]:
    """What the join emits for one partition's arrivals; `final_stream_time` is where
    stream time ends (the wall clock may take it past the last record's)."""
    st = -1
    kept: list[_Kept] = []
    out: list[Result] = []

    def expire(now: float) -> None:
        for r in list(kept):
            if r.ts + within + grace < now:
                kept.remove(r)
                emits = how == "outer" or (how == "left" and r.is_left)
                if emits and not r.matched:
                    out.append((r.key, [r.id, None] if r.is_left else [None, r.id]))

    for is_left, key, id_, ts in arrivals:
        st = max(st, ts)
        expire(st)
        if ts + grace < st:
            continue  # late: dropped
        new = _Kept(is_left, key, id_, ts)
        for r in kept:
            if r.is_left != is_left and r.key == key and abs(r.ts - ts) <= within:
                out.append((key, [r.id, id_] if r.is_left else [id_, r.id]))
                r.matched = new.matched = True
        kept.append(new)
    if final_stream_time is not None:
        expire(final_stream_time)
    return out


Event = tuple[str, str, int]  # key, id, event time ms


def asof_join(
    lefts: list[Event],
    rights: list[Event],
    *,
    tolerance: int | None,
    grace: int,
    left_join: bool,
    final_right_time: float | None = None,
) -> list[Result]:
    """What an as-of join emits for one partition, from each side's own order (asof.py's
    rules): late records of either side are dropped; a left record comes out once the right
    side's stream time (its last, or `final_right_time`) passes its ts + grace, matched with
    the right record of its key with the greatest ts in [ts - tolerance, ts] (the last of
    equal ones)."""
    st = -1
    kept: list[Event] = []
    for key, id_, ts in rights:
        st = max(st, ts)
        if ts + grace >= st:
            kept.append((key, id_, ts))
    right_time = st if final_right_time is None else final_right_time
    out: list[Result] = []
    lst = -1
    for key, id_, ts in lefts:
        lst = max(lst, ts)
        if ts + grace < lst or not ts + grace < right_time:
            continue  # late, or still waiting for the right side
        best: Event | None = None
        for r in kept:
            in_range = r[2] <= ts and (tolerance is None or r[2] >= ts - tolerance)
            if r[0] == key and in_range and (best is None or r[2] >= best[2]):
                best = r
        if best is not None:
            out.append((key, [id_, best[1]]))
        elif left_join:
            out.append((key, [id_, None]))
    return out
