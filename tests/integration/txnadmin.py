"""The transaction admin APIs over raw requests (no Python client here sends them)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from txnwire import TxnWire, txn_batch

from kafkito.errors import ErrorCode
from kafkito.testing.wire import WireClient

DESCRIBE_PRODUCERS, DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS = 61, 65, 66


def admin_views(bootstrap: str) -> dict[str, Any]:
    """One open transaction (a record in partition 0) and one committed, seen by the admin
    APIs; producer ids are replaced by their role so two brokers can be compared."""
    suffix = uuid.uuid4().hex[:8]
    topic = f"adm-{suffix}"
    seen: dict[str, Any] = {}
    with WireClient(bootstrap, timeout_s=30) as c:
        w = TxnWire(c)
        w.create_topic(topic)
        roles: dict[int, str] = {-1: "none"}
        ids = {}
        for name in ("open", "done"):
            tid = f"{name}-{suffix}"
            code, pid, epoch = w.init(tid, timeout_ms=45000)
            assert code == ErrorCode.none, code
            roles[pid] = name
            ids[name] = (tid, pid, epoch)
            assert w.add_partitions(tid, pid, epoch, topic, [0]) == [ErrorCode.none]
            assert w.produce(topic, txn_batch(pid, epoch, 0), tid)[0] == ErrorCode.none
        tid, pid, epoch = ids["done"]
        assert w.end(tid, pid, epoch, commit=True) == ErrorCode.none
        listed = c.request(
            LIST_TRANSACTIONS,
            1,
            {
                "state_filters": ["Ongoing", "Bogus"],
                "producer_id_filters": [],
                "duration_filter": -1,
            },
        )
        seen["list_ongoing"] = (
            ErrorCode(listed.error_code).name,
            list(listed.unknown_state_filters),
            sorted(
                (t.transactional_id.split("-")[0], roles.get(t.producer_id), t.transaction_state)
                for t in listed.transaction_states
                if t.transactional_id.endswith(suffix)
            ),
        )
        # Kafka answers EndTxn before its markers are written (PrepareCommit for a moment);
        # kafkito after (CompleteCommit at once): wait for the final state
        deadline = time.monotonic() + 30
        while True:
            by_pid = c.request(
                LIST_TRANSACTIONS, 0, {"state_filters": [], "producer_id_filters": [ids["done"][1]]}
            )
            states = [t.transaction_state for t in by_pid.transaction_states]
            if not any(s.startswith("Prepare") for s in states) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        seen["list_by_pid"] = sorted(
            (t.transactional_id.split("-")[0], t.transaction_state)
            for t in by_pid.transaction_states
        )
        # only an open transaction: kio cannot decode the -1 start time of the others (both
        # brokers send it), "Cannot parse negative timestamp"
        described = c.request(DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": [ids["open"][0]]})
        seen["describe"] = [
            (
                ErrorCode(d.error_code).name,
                d.transaction_state,
                int(d.transaction_timeout.total_seconds() * 1000),
                roles.get(d.producer_id),
                d.producer_epoch,
                [(t.topic == topic, list(t.partitions)) for t in d.topics],
            )
            for d in described.transaction_states
        ]
        producers = c.request(
            DESCRIBE_PRODUCERS, 0, {"topics": [{"name": topic, "partition_indexes": [0, 9]}]}
        )
        seen["producers"] = [
            (
                p.partition_index,
                ErrorCode(p.error_code).name,
                sorted(
                    (
                        roles.get(a.producer_id),
                        a.producer_epoch,
                        a.last_sequence,
                        a.coordinator_epoch,
                        a.current_txn_start_offset,
                    )
                    for a in p.active_producers
                ),
            )
            for p in producers.topics[0].partitions
        ]
    return seen
