"""The produce/read checker shared by the crash tests (RELIABILITY 1.8, non-transactional subset).

A `History` records, per produced value: that it was sent, the highest acknowledged offset known
when it was sent, and its acknowledgement (offset) or its error. After the faults, the test reads
the whole partition back and `History.check` lists every broken rule:

1. offsets read strictly increase;
2. each acknowledged value is read at its acknowledged offset;
3. no two acknowledged values share an offset; with idempotence no value is read twice (without
   it a value may be read twice only when one copy is an unacknowledged retry);
4. an acknowledged offset is above every offset acknowledged before the value was sent;
5. a value read but never acknowledged must at least have been sent (no value from nowhere);
6. every value read was sent (never-written values never appear).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition


@dataclass
class History:
    """What a producer sent and what the broker acknowledged; thread-safe."""

    sent: dict[bytes, int] = field(default_factory=dict)
    """value -> highest acknowledged offset when it was sent (-1 if none)."""
    acked: dict[bytes, int] = field(default_factory=dict)
    errors: dict[bytes, str] = field(default_factory=dict)
    _max_acked: int = -1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_send(self, value: bytes) -> None:
        with self._lock:
            assert value not in self.sent, "values must be unique"
            self.sent[value] = self._max_acked

    def on_delivery(self, value: bytes, offset: int | None, error: str | None) -> None:
        with self._lock:
            if error is None and offset is not None:
                self.acked[value] = offset
                self._max_acked = max(self._max_acked, offset)
            else:
                self.errors[value] = error or "no offset"

    def check(self, read: list[tuple[int, bytes]], *, idempotent: bool) -> list[str]:
        """Every broken rule, as readable lines (empty when the history is sound)."""
        problems: list[str] = []
        for (o1, _), (o2, _) in itertools.pairwise(read):
            if o2 <= o1:
                problems.append(f"offsets not increasing: {o1} then {o2}")
        at_offset = dict(read)
        for value, offset in self.acked.items():
            got = at_offset.get(offset)
            if got != value:
                problems.append(f"acked {value!r} at offset {offset} but read {got!r} there")
        by_offset = Counter(self.acked.values())
        problems += [f"{n} acked values share offset {o}" for o, n in by_offset.items() if n > 1]
        counts = Counter(value for _, value in read)
        for value, n in counts.items():
            if n > 1 and idempotent:
                problems.append(f"{value!r} read {n} times")
            if value not in self.sent:
                problems.append(f"{value!r} read but never written")
        for value, offset in self.acked.items():
            before = self.sent.get(value, -1)
            if offset <= before:
                problems.append(f"{value!r} acked at {offset}, not above {before} acked earlier")
        return problems

    def summary(self) -> str:
        return f"sent {len(self.sent)}, acked {len(self.acked)}, errors {len(self.errors)}"


def read_partition(
    bootstrap: str, topic: str, partition: int = 0, *, timeout_s: float = 30.0
) -> list[tuple[int, bytes]]:
    """Every (offset, value) of a partition from the start to its high watermark."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "checker",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_uncommitted",
        }
    )
    try:
        tp = TopicPartition(topic, partition)
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.assign([TopicPartition(topic, partition, low)])
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while (not out or out[-1][0] < high - 1) and high > low:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(out)} records of [{low}, {high}) in {timeout_s}s")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise RuntimeError(f"consume error: {msg.error()}")
            out.append((msg.offset(), msg.value()))
        return out
    finally:
        consumer.close()
