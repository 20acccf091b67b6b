"""The exactly-once checker: what a read_committed reader sees of the outputs, against the
group's committed offsets.

Each input record's value is `{"id": i}`; the flow under test writes one output per input,
whose value is "<input partition>:<input offset>:<id>" (see `transform`). Exactly once means:
the outputs visible to read_committed are exactly the inputs below the committed offsets, each
once. The check reads with plain confluent-kafka (not the library under test).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from kafkito.flow import Out, Record


def transform(out_topic: str) -> Any:
    """The handler: one output per input, naming where the input was."""

    def handle(record: Record[dict[str, Any]]) -> Out:
        return Out(
            out_topic,
            f"{record.partition}:{record.offset}:{record.value['id']}",
            key=record.key,
        )

    return handle


def read_committed(bootstrap: str, topic: str, partitions: int, timeout_s: float = 60) -> list[str]:
    """Every value of `topic` a read_committed consumer reads up to each partition's end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"eos-check-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    values: list[str] = []
    ended: set[int] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while len(ended) < partitions:
            assert time.monotonic() < deadline, f"no end of {topic} after {len(values)} values"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    ended.add(msg.partition())
                    continue
                raise AssertionError(str(msg.error()))
            ended.discard(msg.partition())
            values.append(msg.value().decode())
    finally:
        consumer.close()
    return values


def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: int, timeout_s: float = 60
) -> list[int]:
    """The group's committed offsets (a stable answer: waits out pending transactional
    commits, which OffsetFetch reports as UNSTABLE_OFFSET_COMMIT)."""
    deadline = time.monotonic() + timeout_s
    while True:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            found = consumer.committed(
                [TopicPartition(topic, p) for p in range(partitions)], timeout=10
            )
            return [max(tp.offset, 0) for tp in found]
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
        finally:
            consumer.close()


def check_agreement(
    bootstrap: str,
    group: str,
    in_topic: str,
    out_topic: str,
    partitions: int,
    *,
    skipped: set[tuple[int, int]] = frozenset(),  # type: ignore[assignment]
) -> dict[str, Any]:
    """Outputs (read_committed) are exactly the inputs below the committed offsets, once each
    (`skipped`: inputs that go to the dead-letter topic instead). Returns the figures."""
    offsets = committed_offsets(bootstrap, group, in_topic, partitions)
    values = read_committed(bootstrap, out_topic, partitions)
    seen = Counter((int(p), int(o)) for p, o, _ in (v.split(":") for v in values))
    duplicates = {k: n for k, n in seen.items() if n > 1}
    assert not duplicates, f"outputs written twice: {sorted(duplicates)[:10]}"
    expected = {
        (p, o) for p in range(partitions) for o in range(offsets[p]) if (p, o) not in skipped
    }
    missing = expected - set(seen)
    extra = set(seen) - expected
    assert not missing, f"inputs below the commit with no output: {sorted(missing)[:10]}"
    assert not extra, f"outputs of inputs not committed: {sorted(extra)[:10]} ({offsets})"
    return {"committed": offsets, "outputs": len(values)}


def id_values(count: int, keys: int) -> list[tuple[bytes, bytes]]:
    return [(f"k{i % keys}".encode(), json.dumps({"id": i}).encode()) for i in range(count)]
