"""Handler outputs and the exactly-once commit: one transaction per commit interval.

Outputs are held, not written at once
-------------------------------------
A handler's `Out` records (and, with `exactly_once=True`, its retry-topic and dead-letter
records) are kept with the offset of the record that produced them, per input partition
(`HeldOutputs`). At each commit the flow takes the committable offset of every partition (the
lowest unresolved record, flow/tracker.py) and writes exactly the outputs of the records
below it; the outputs of records resolved out of order beyond it wait for a later commit. So
the outputs written and the offsets committed always describe the same set of input records.

With `exactly_once=True` that pair goes in one transaction (`run_transaction`): begin, produce
the outputs, `send_offsets_to_transaction` with the consumer's group metadata (KIP-447: the
coordinator refuses offsets from a member of an older generation, so a zombie that lost its
partitions in a rebalance cannot commit them), commit. A crash anywhere before the commit
leaves neither the outputs (read_committed readers never see them) nor the offsets: the
records are handled again and their outputs written again, once. A failed transaction is
aborted and the flow rewinds every partition to its last committed offset (runner.py).

Why write at the commit rather than as the handler returns (Kafka Streams' way)? A
read_committed reader sees the outputs at the commit either way, so holding them costs no
visibility latency; and no transaction is open between commits, so a crashed flow never holds
read_committed readers back until `transaction.timeout.ms`, and an abort throws away nothing
that was sent. The price: the commit writes the interval's outputs in one burst (librdkafka
batches them) and their memory is held until then.

In at-least-once mode (the default) `Out` records are held the same way and written, and
acknowledged, just before the offsets are committed: a crash in between writes them again.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from typing import Any

from kafkito.flow.outcomes import Out

__all__ = ["HeldOutputs", "OutRecord", "outputs_of", "run_transaction", "transactional_id_for"]

Headers = list[tuple[str, bytes | None]]
OutRecord = tuple[str, bytes | None, bytes | None, Headers | None]
"""(topic, key, value, headers), encoded."""


def _encode(value: object, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"Out.{what} must be bytes, str or None, not {type(value).__name__}")


def encode_out(out: Out) -> OutRecord:
    """An Out as the producer takes it; TypeError names a field of the wrong type."""
    if not isinstance(out.topic, str) or not out.topic:
        raise TypeError(f"Out.topic must be a topic name, not {out.topic!r}")
    headers: Headers | None = None
    if out.headers:
        pairs = out.headers.items() if isinstance(out.headers, Mapping) else out.headers
        headers = [(str(name), _encode(value, "headers")) for name, value in pairs]
    return out.topic, _encode(out.key, "key"), _encode(out.value, "value"), headers


def outputs_of(result: object) -> list[OutRecord] | None:
    """The records a handler returned: an `Out` or a list/tuple of them (None for anything
    else, which the flow ignores as it always did). A list mixing Out with other values is a
    TypeError: it is a handler bug, and guessing would drop records."""
    if result is None:
        return None
    if isinstance(result, Out):
        return [encode_out(result)]
    if isinstance(result, list | tuple) and result:
        outs = [item for item in result if isinstance(item, Out)]
        if not outs:
            return None
        if len(outs) != len(result):
            raise TypeError("a handler returns Out records, or a list of only Out records")
        return [encode_out(out) for out in outs]
    return None


class HeldOutputs:
    """One input partition's outputs waiting for their records' offsets to be committed."""

    __slots__ = ("_entries", "count")

    def __init__(self) -> None:
        self._entries: list[tuple[int, list[OutRecord]]] = []
        self.count = 0
        """Output records held."""

    def add(self, offset: int, records: list[OutRecord]) -> None:
        self._entries.append((offset, records))
        self.count += len(records)

    def take_below(self, offset: int) -> list[OutRecord]:
        """The outputs of records below `offset`, in input offset order; they stop being held."""
        ready = [entry for entry in self._entries if entry[0] < offset]
        if not ready:
            return []
        self._entries = [entry for entry in self._entries if entry[0] >= offset]
        ready.sort(key=lambda entry: entry[0])  # stable: one record's outputs keep their order
        records = [record for _, batch in ready for record in batch]
        self.count -= len(records)
        return records

    def put_back(self, offset: int, records: list[OutRecord]) -> None:
        """Records taken for a write that failed (at-least-once): held again, before others."""
        if records:
            self._entries.insert(0, (offset - 1, records))
            self.count += len(records)


def transactional_id_for(group_id: str, name: str, settings: Mapping[str, Any]) -> str:
    """The flow's default transactional.id: stable across restarts of the same instance, so a
    restarted flow fences its crashed predecessor at once and aborts what it left open.

    The instance is `group.instance.id` (static membership) when set, else host and flow
    name; two instances of one flow on one host need distinct names or transactional_ids
    (otherwise the second fences the first, which stops with ProducerFencedError).
    """
    instance = settings.get("group.instance.id") or f"{socket.gethostname()}.{name}"
    return f"kafkito-flow.{group_id}.{instance}"


def run_transaction(
    producer: Any,
    group_metadata: Any,
    outputs: Sequence[OutRecord],
    offsets: list[Any],
    timeout_s: float,
) -> None:
    """On a worker thread: one transaction with `outputs` and the group's `offsets`, sent
    with `group_metadata` (read on the consumer's thread: see runner._commit_transaction).

    Raises the library's TransactionError (abortable, fatal, ProducerFencedError) or a
    DeliveryError for a record librdkafka refused at once; the caller aborts and rewinds."""
    producer.begin_transaction()
    for topic, key, value, headers in outputs:
        producer.produce(topic, value, key, headers=headers)
    if offsets:
        producer.send_offsets_to_transaction(offsets, group_metadata, timeout_s)
    producer.commit_transaction(timeout_s)
