"""Hostile and edge-case transactional requests over raw TCP, on the embedded broker and on
Apache Kafka: the right error code, the same one on both, and nothing else disturbed.

Probes (txnwire.hostile_codes): EndTxn without AddPartitionsToTxn, an unknown transactional
id, a wrong producer id or epoch (at versions before and after KIP-588's PRODUCER_FENCED),
transactional batches before the partition was added, to a partition not added, at a wrong
epoch, or from a producer id that belongs to no transaction; a non-transactional batch from a
producer with a transaction open in the partition; a marker (control batch) sent by a client;
TxnOffsetCommit before AddOffsetsToTxn; OffsetFetch with require_stable while offsets are
pending; retried and mismatched EndTxn; re-initialisation fencing the previous epoch. The log
end offsets and LSOs at each step prove that refused batches were not appended.
"""

from __future__ import annotations

import uuid

import pytest
from txnadmin import admin_views
from txnkit import kcat_read, read_all
from txnwire import TxnWire, hostile_codes, many_transactions, txn_batch

from kafkito.errors import ErrorCode
from kafkito.testing.apache_kafka import ApacheKafka
from kafkito.testing.wire import WireClient

OK = (ErrorCode.none, 0)


def test_hostile_transactional_requests_match_apache_kafka(
    broker: str, kafka_reference: ApacheKafka
) -> None:
    ours = hostile_codes(broker)
    expected = {
        "init": ("none", 0),
        "init_timeout_too_big": "invalid_transaction_timeout",
        "init_timeout_zero": "invalid_transaction_timeout",
        "end_without_add": "invalid_txn_state",
        "end_abort_without_add": "invalid_txn_state",
        "end_unknown_id": "invalid_producer_id_mapping",
        "add_wrong_pid": ["invalid_producer_id_mapping"],
        "add_wrong_epoch_v0": ["invalid_producer_epoch"],
        "add_wrong_epoch_v3": ["producer_fenced"],
        # one failed partition fails the request: the others are not attempted
        "add_unknown_partition": [
            (0, "operation_not_attempted"),
            (7, "unknown_topic_or_partition"),
        ],
        "txn_batch_before_add": "invalid_txn_state",
        "add": ["none"],
        "txn_batch": OK,
        "txn_batch_not_added_partition": "invalid_txn_state",
        "plain_batch_same_pid": "invalid_txn_state",
        "txn_batch_wrong_epoch": "invalid_producer_epoch",
        "marker_from_client": "invalid_record",
        "txn_batch_from_idempotent_pid": "invalid_producer_id_mapping",
        "offsets_while_open": (1, 0),  # high watermark 1, LSO 0: one open record, nothing else
        "txn_offset_commit_before_add_offsets": "invalid_txn_state",
        "add_offsets": "none",
        "txn_offset_commit": "none",
        "offset_fetch_stable_while_open": "unstable_offset_commit",
        "offset_fetch_while_open": (ErrorCode.none, -1),
        "end_wrong_epoch": "invalid_producer_epoch",
        "end_commit": "none",
        "end_commit_retried": "none",
        "end_abort_after_commit": "invalid_txn_state",
        "offset_fetch_after_commit": (ErrorCode.none, 1),
        "offsets_after_commit": (2, 2),  # the record and its commit marker
        "txn_batch_after_commit": "invalid_txn_state",
        "reinit": ("none", True, 1),
        "old_epoch_add_v0": ["invalid_producer_epoch"],
        "old_epoch_end_v3": "producer_fenced",
        "kip360_bump": ("none", True, 1),
        "kip360_retry": ("none", True, 1),  # the same answer again, not a second bump
        "kip360_zombie_v4": "producer_fenced",
        "kip360_zombie_v3": "invalid_producer_epoch",
    }
    assert ours == expected, {k: v for k, v in ours.items() if expected.get(k) != v}
    assert hostile_codes(kafka_reference.bootstrap) == expected


def test_many_open_transactions_end_each_on_its_own(broker: str) -> None:
    """300 transactions open at once in one partition, ended out of order, half committed and
    half aborted: the LSO stays at the first still-open record, and read_committed readers
    (librdkafka and kcat) see exactly the committed records."""
    count = 300
    topic = f"many-{uuid.uuid4().hex[:8]}"
    seen = many_transactions(broker, topic, count)
    assert seen["open"] == (count, 0)
    # evens end first: the LSO stays at record 1 (the first odd one) until the odds end
    lsos = seen["lso_after_each_end"]
    assert lsos[: count // 2 - 1] == [1] * (count // 2 - 1)
    assert lsos[count // 2 : -1] == [2 * i + 3 for i in range(count // 2 - 1)]
    assert lsos[-1] == seen["ended"][0] == 2 * count  # each record and its marker
    assert seen["ended"] == (2 * count, 2 * count)
    committed = [f"v{i}" for i in range(0, count, 2)]
    assert read_all(broker, topic, "read_committed") == committed
    assert len(read_all(broker, topic, "read_uncommitted")) == count
    kcat = kcat_read(broker, topic, "read_committed")
    assert kcat is None or kcat == committed


def test_admin_views_of_transactions_match_apache_kafka(
    broker: str, kafka_reference: ApacheKafka
) -> None:
    ours = admin_views(broker)
    assert ours["list_ongoing"] == ("none", ["Bogus"], [("open", "open", "Ongoing")])
    assert ours["list_by_pid"] == [("done", "CompleteCommit")]
    assert ours["describe"] == [("none", "Ongoing", 45000, "open", 0, [(True, [0])])]
    assert ours["producers"] == [
        (0, "none", [("done", 0, 0, 0, -1), ("open", 0, 0, -1, 0)]),
        (9, "unknown_topic_or_partition", []),
    ]
    assert admin_views(kafka_reference.bootstrap) == ours


@pytest.mark.parametrize("version", range(4))
def test_a_transaction_at_every_version(broker: str, version: int) -> None:
    """AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn at each version served
    (librdkafka sends 0/0/3/1, aiokafka 0, kafka-python 3): a committed transaction with an
    offset, then an aborted one, each seen by read_committed and OffsetFetch."""
    suffix = uuid.uuid4().hex[:8]
    topic, group, tid = f"v{version}-{suffix}", f"g-{suffix}", f"t-{suffix}"
    with WireClient(broker, timeout_s=30) as c:
        w = TxnWire(c)
        w.create_topic(topic)
        code, pid, epoch = w.init(tid, version=min(version + 1, 4))
        assert code == ErrorCode.none
        for n, commit in ((0, True), (1, False)):
            assert w.add_partitions(tid, pid, epoch, topic, [0], version=version) == [
                ErrorCode.none
            ]
            assert w.add_offsets(tid, pid, epoch, group, version=version) == ErrorCode.none
            batch = txn_batch(pid, epoch, n, f"v{n}".encode())
            assert w.produce(topic, batch, tid)[0] == ErrorCode.none
            code = w.txn_offset_commit(tid, pid, epoch, group, topic, 10 + n, version=version)
            assert code == ErrorCode.none
            assert w.end(tid, pid, epoch, commit=commit, version=version) == ErrorCode.none
        assert w.offset_fetch(group, topic, require_stable=True) == (ErrorCode.none, 10)
        assert w.offsets(topic, 1) == 4  # two records, two markers, nothing open
    assert read_all(broker, topic, "read_committed") == ["v0"]
