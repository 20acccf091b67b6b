"""Raw transactional requests for hostile-input tests: what no client sends on purpose.

`hostile_codes(bootstrap)` runs every probe against one broker and returns the error codes and
offsets it observed, so a test can compare the embedded broker with Apache Kafka.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from kafkito.errors import ErrorCode
from kafkito.protocol.control import encode_marker
from kafkito.protocol.records import ATTR_TRANSACTIONAL
from kafkito.testing.wire import WireClient, record_batch

PRODUCE, FETCH, LIST_OFFSETS, METADATA, FIND_COORDINATOR = 0, 1, 2, 3, 10
INIT_PRODUCER_ID, ADD_PARTITIONS, ADD_OFFSETS, END_TXN, TXN_OFFSET_COMMIT = 22, 24, 25, 26, 28
OFFSET_FETCH = 9
DEADLINE_S = 30.0


class TxnWire:
    """A raw connection to a broker, with one helper per transactional request."""

    def __init__(self, client: WireClient) -> None:
        self.client = client

    def create_topic(self, topic: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            md = self.client.request(
                METADATA, 4, {"topics": [{"name": topic}], "allow_auto_topic_creation": True}
            )
            t = md.topics[0]
            if t.error_code == ErrorCode.none and t.partitions and t.partitions[0].leader_id >= 0:
                return
            assert time.monotonic() < deadline, f"topic {topic}: {t}"
            time.sleep(0.2)

    def find_txn_coordinator(self, key: str, key_type: int = 1) -> None:
        """Wait until the broker coordinates `key` (Apache Kafka creates its
        __transaction_state and __consumer_offsets topics on the first request)."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            answer = self.client.request(FIND_COORDINATOR, 2, {"key": key, "key_type": key_type})
            if answer.error_code == ErrorCode.none:
                return
            assert time.monotonic() < deadline, answer
            time.sleep(0.2)

    def init(
        self,
        txn_id: str | None,
        timeout_ms: int = 60000,
        version: int = 4,
        pid: int = -1,
        epoch: int = -1,
    ) -> tuple[ErrorCode, int, int]:
        if txn_id is not None:
            self.find_txn_coordinator(txn_id)
        deadline = time.monotonic() + DEADLINE_S
        while True:
            answer = self.client.request(
                INIT_PRODUCER_ID,
                version,
                {
                    "transactional_id": txn_id,
                    "transaction_timeout": timeout_ms,
                    "producer_id": pid,
                    "producer_epoch": epoch,
                },
            )
            code = ErrorCode(answer.error_code)
            retriable = (  # Apache Kafka, while its __transaction_state topic comes up
                ErrorCode.concurrent_transactions,
                ErrorCode.coordinator_load_in_progress,
                ErrorCode.not_coordinator,
                ErrorCode.coordinator_not_available,
            )
            if code not in retriable or time.monotonic() > deadline:
                return code, int(answer.producer_id), int(answer.producer_epoch)
            time.sleep(0.1)

    def add_partitions(
        self, txn_id: str, pid: int, epoch: int, topic: str, partitions: list[int], version: int = 0
    ) -> list[Any]:
        answer = self.client.request(
            ADD_PARTITIONS,
            version,
            {
                "v3_and_below_transactional_id": txn_id,
                "v3_and_below_producer_id": pid,
                "v3_and_below_producer_epoch": epoch,
                "v3_and_below_topics": [{"name": topic, "partitions": partitions}],
            },
        )
        results = [
            (int(p.partition_index), ErrorCode(p.partition_error_code))
            for t in answer.results_by_topic_v3_and_below
            for p in t.results_by_partition
        ]
        if len(results) == 1:
            return [results[0][1]]
        return sorted(results)  # several: with their partition (Kafka's order is a hash map's)

    def add_offsets(
        self, txn_id: str, pid: int, epoch: int, group: str, version: int = 0
    ) -> ErrorCode:
        answer = self.client.request(
            ADD_OFFSETS,
            version,
            {
                "transactional_id": txn_id,
                "producer_id": pid,
                "producer_epoch": epoch,
                "group_id": group,
            },
        )
        return ErrorCode(answer.error_code)

    def txn_offset_commit(
        self,
        txn_id: str,
        pid: int,
        epoch: int,
        group: str,
        topic: str,
        offset: int,
        version: int = 3,
    ) -> ErrorCode:
        answer = self.client.request(
            TXN_OFFSET_COMMIT,
            version,
            {
                "transactional_id": txn_id,
                "group_id": group,
                "producer_id": pid,
                "producer_epoch": epoch,
                "generation_id": -1,
                "member_id": "",
                "group_instance_id": None,
                "topics": [
                    {
                        "name": topic,
                        "partitions": [
                            {
                                "partition_index": 0,
                                "committed_offset": offset,
                                "committed_leader_epoch": -1,
                                "committed_metadata": "",
                            }
                        ],
                    }
                ],
            },
        )
        return ErrorCode(answer.topics[0].partitions[0].error_code)

    def end(self, txn_id: str, pid: int, epoch: int, commit: bool, version: int = 1) -> ErrorCode:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            answer = self.client.request(
                END_TXN,
                version,
                {
                    "transactional_id": txn_id,
                    "producer_id": pid,
                    "producer_epoch": epoch,
                    "committed": commit,
                },
            )
            code = ErrorCode(answer.error_code)
            if code is not ErrorCode.concurrent_transactions or time.monotonic() > deadline:
                return code
            time.sleep(0.1)

    def produce(
        self,
        topic: str,
        batch: bytes,
        txn_id: str | None = None,
        version: int = 9,
    ) -> tuple[ErrorCode, int]:
        answer = self.client.request(
            PRODUCE,
            version,
            {
                "transactional_id": txn_id,
                "acks": -1,
                "timeout": 5000,
                "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}],
            },
        )
        p = answer.responses[0].partition_responses[0]
        return ErrorCode(p.error_code), int(p.base_offset)

    def offsets(self, topic: str, isolation: int) -> int:
        answer = self.client.request(
            LIST_OFFSETS,
            2,
            {
                "replica_id": -1,
                "isolation_level": isolation,
                "topics": [
                    {"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}
                ],
            },
        )
        return int(answer.topics[0].partitions[0].offset)

    def offset_fetch(self, group: str, topic: str, require_stable: bool) -> tuple[ErrorCode, int]:
        answer = self.client.request(
            OFFSET_FETCH,
            7,
            {
                "group_id": group,
                "topics": [{"name": topic, "partition_indexes": [0]}],
                "require_stable": require_stable,
            },
        )
        top = ErrorCode(answer.error_code)
        if not answer.topics:  # a whole-request error
            return top, -1
        p = answer.topics[0].partitions[0]
        return (top if top != ErrorCode.none else ErrorCode(p.error_code)), int(p.committed_offset)


def txn_batch(
    pid: int, epoch: int, seq: int, value: bytes = b"v", transactional: bool = True
) -> bytes:
    return record_batch(
        [(None, value, [])],
        attributes=ATTR_TRANSACTIONAL if transactional else 0,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
    )


def hostile_codes(bootstrap: str) -> dict[str, Any]:
    """Every hostile probe against one broker: {probe: observed codes/offsets}."""
    seen: dict[str, Any] = {}
    suffix = uuid.uuid4().hex[:8]
    topic, other = f"hx-{suffix}", f"hy-{suffix}"
    with WireClient(bootstrap, timeout_s=DEADLINE_S) as c:
        w = TxnWire(c)
        w.create_topic(topic)
        w.create_topic(other)
        tid = f"h-{suffix}"
        code, pid, epoch = w.init(tid)
        seen["init"] = (code.name, epoch)
        seen["init_timeout_too_big"] = w.init(f"big-{suffix}", timeout_ms=900_001)[0].name
        seen["init_timeout_zero"] = w.init(f"zero-{suffix}", timeout_ms=0)[0].name
        seen["end_without_add"] = w.end(tid, pid, epoch, commit=True).name
        seen["end_abort_without_add"] = w.end(tid, pid, epoch, commit=False).name
        seen["end_unknown_id"] = w.end(f"nobody-{suffix}", pid, epoch, commit=True).name
        seen["add_wrong_pid"] = [x.name for x in w.add_partitions(tid, pid + 1, epoch, topic, [0])]
        seen["add_wrong_epoch_v0"] = [
            x.name for x in w.add_partitions(tid, pid, epoch + 1, topic, [0])
        ]
        seen["add_wrong_epoch_v3"] = [
            x.name for x in w.add_partitions(tid, pid, epoch + 1, topic, [0], version=3)
        ]
        seen["add_unknown_partition"] = [
            (p, x.name) for p, x in w.add_partitions(tid, pid, epoch, topic, [0, 7])
        ]
        seen["txn_batch_before_add"] = w.produce(topic, txn_batch(pid, epoch, 0), tid)[0].name
        seen["add"] = [x.name for x in w.add_partitions(tid, pid, epoch, topic, [0])]
        seen["txn_batch"] = w.produce(topic, txn_batch(pid, epoch, 0), tid)
        seen["txn_batch_not_added_partition"] = w.produce(other, txn_batch(pid, epoch, 0), tid)[
            0
        ].name
        seen["plain_batch_same_pid"] = w.produce(
            topic, txn_batch(pid, epoch, 1, transactional=False)
        )[0].name
        seen["txn_batch_wrong_epoch"] = w.produce(topic, txn_batch(pid, epoch + 1, 1), tid)[0].name
        seen["marker_from_client"] = w.produce(
            topic,
            encode_marker(
                producer_id=pid,
                producer_epoch=epoch,
                commit=True,
                coordinator_epoch=0,
                timestamp_ms=int(time.time() * 1000),
            ),
            tid,
        )[0].name
        _, stranger, stranger_epoch = w.init(None)
        seen["txn_batch_from_idempotent_pid"] = w.produce(
            topic, txn_batch(stranger, stranger_epoch, 0), tid
        )[0].name
        seen["offsets_while_open"] = (w.offsets(topic, 0), w.offsets(topic, 1))
        group = f"g-{suffix}"
        w.find_txn_coordinator(group, key_type=0)
        deadline = time.monotonic() + DEADLINE_S
        while w.offset_fetch(group, topic, False)[0] in (  # Kafka's offsets topic coming up
            ErrorCode.coordinator_load_in_progress,
            ErrorCode.not_coordinator,
            ErrorCode.coordinator_not_available,
        ):
            assert time.monotonic() < deadline, "the group coordinator never came up"
            time.sleep(0.1)
        seen["txn_offset_commit_before_add_offsets"] = w.txn_offset_commit(
            tid, pid, epoch, group, topic, 1
        ).name
        seen["add_offsets"] = w.add_offsets(tid, pid, epoch, group).name
        seen["txn_offset_commit"] = w.txn_offset_commit(tid, pid, epoch, group, topic, 1).name
        seen["offset_fetch_stable_while_open"] = w.offset_fetch(group, topic, True)[0].name
        seen["offset_fetch_while_open"] = w.offset_fetch(group, topic, False)
        seen["end_wrong_epoch"] = w.end(tid, pid, epoch + 1, commit=True).name
        seen["end_commit"] = w.end(tid, pid, epoch, commit=True).name
        seen["end_commit_retried"] = w.end(tid, pid, epoch, commit=True).name
        seen["end_abort_after_commit"] = w.end(tid, pid, epoch, commit=False).name
        seen["offset_fetch_after_commit"] = w.offset_fetch(group, topic, True)
        seen["offsets_after_commit"] = (w.offsets(topic, 0), w.offsets(topic, 1))
        seen["txn_batch_after_commit"] = w.produce(topic, txn_batch(pid, epoch, 1), tid)[0].name
        # a second producer with the same id fences the first
        code2, pid2, epoch2 = w.init(tid)
        seen["reinit"] = (code2.name, pid2 == pid, epoch2 - epoch)
        seen["old_epoch_add_v0"] = [x.name for x in w.add_partitions(tid, pid, epoch, topic, [0])]
        seen["old_epoch_end_v3"] = w.end(tid, pid, epoch, commit=True, version=3).name
        # KIP-360 (v3+): the current producer asks for its own epoch bump; its retry gets the
        # same answer; an epoch that was never current is a zombie
        kid = f"k-{suffix}"
        _, kpid, kepoch = w.init(kid)
        bumped = w.init(kid, pid=kpid, epoch=kepoch)
        seen["kip360_bump"] = (bumped[0].name, bumped[1] == kpid, bumped[2] - kepoch)
        again = w.init(kid, pid=kpid, epoch=kepoch)
        seen["kip360_retry"] = (again[0].name, again[1] == kpid, again[2] - kepoch)
        seen["kip360_zombie_v4"] = w.init(kid, pid=kpid, epoch=kepoch + 5)[0].name
        seen["kip360_zombie_v3"] = w.init(kid, version=3, pid=kpid, epoch=kepoch + 5)[0].name
    return seen


def many_transactions(bootstrap: str, topic: str, count: int) -> dict[str, Any]:
    """`count` transactional ids, each with one record in an open transaction of the same
    partition at once, then ended evens first (committed) and odds next (aborted), so that
    no prefix of the log closes in order. Returns the LSO seen along the way."""
    seen: dict[str, Any] = {}
    with WireClient(bootstrap, timeout_s=DEADLINE_S) as c:
        w = TxnWire(c)
        w.create_topic(topic)
        ids = []
        for i in range(count):
            tid = f"many-{topic}-{i}"
            code, pid, epoch = w.init(tid)
            assert code == ErrorCode.none, code
            assert w.add_partitions(tid, pid, epoch, topic, [0]) == [ErrorCode.none]
            code, offset = w.produce(topic, txn_batch(pid, epoch, 0, f"v{i}".encode()), tid)
            assert (code, offset) == (ErrorCode.none, i)
            ids.append((tid, pid, epoch))
        seen["open"] = (w.offsets(topic, 0), w.offsets(topic, 1))
        order = list(range(0, count, 2)) + list(range(1, count, 2))
        lsos = []
        for i in order:
            tid, pid, epoch = ids[i]
            assert w.end(tid, pid, epoch, commit=i % 2 == 0) == ErrorCode.none
            lsos.append(w.offsets(topic, 1))
        seen["lso_after_each_end"] = lsos
        seen["ended"] = (w.offsets(topic, 0), w.offsets(topic, 1))
    return seen
