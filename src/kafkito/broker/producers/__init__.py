"""Idempotent producers: producer ids, and per partition the sequence state that dedupes retries.

Theory of operation (KAFKA-NOTES §4 step 4, §6 P14; RELIABILITY B11-B13; Kafka's
ProducerStateManager, ProducerAppendInfo and ProducerStateEntry).

**Producer ids.** InitProducerId hands out ids from an allocator that never reuses one, even
across restarts: ids are reserved in blocks of `PID_BLOCK` and the end of the reserved range is
written to the metadata log (fsynced) *before* any id of the block is handed out. After a
restart allocation resumes at the persisted end, so the unused rest of the last block is skipped,
never reissued. A KIP-360 request (v3+) naming its current (pid, epoch) gets the same pid with
the epoch bumped; at the last epoch a fresh pid is issued instead.

**Per partition** (`PartitionProducers`) each producer id maps to a `ProducerEntry`: its current
epoch and the metadata of its last five batches (first/last sequence, base/last offset), which is
why clients cap in-flight requests at five. A produced batch is checked in Kafka's order:

    no entry for the pid (never seen, or all its batches fell out of retention) -> append, any seq
    same epoch and the batch equals one of the last 5  -> duplicate: answer the original offset
    epoch below the entry's                            -> INVALID_PRODUCER_EPOCH (47)
    epoch above the entry's, base sequence != 0        -> OUT_OF_ORDER_SEQUENCE_NUMBER (45)
    same epoch, base sequence != last sequence + 1     -> OUT_OF_ORDER_SEQUENCE_NUMBER (45)
      (sequences wrap from INT32_MAX to 0)
    otherwise                                          -> append

`record()` runs right after the append (same event-loop step: no other append can come
between the check and the record). A new epoch clears the five-batch window.

**Restarts.** The state of a partition is saved in a snapshot file, `producer-state.snapshot`
in the partition directory, every `SNAPSHOT_INTERVAL_S` for partitions that changed (or whose
log grew `SNAPSHOT_MAX_LAG_OFFSETS` past the snapshot), and at clean shutdown for every
partition whose snapshot is not exact. Format:
`b"KPS1" | u32 crc32c(payload) | payload`, the payload being the JSON
`{"offset": N, "producers": [[pid, epoch, [[first_seq, last_seq, base, last], ...], ts], ...]}`
where N is the log end offset when it was taken (always a batch boundary) and ts the max
timestamp of the producer's last batch. It is written to a
temporary file, fsynced and renamed (atomic). At load the snapshot is read, then the batch
headers from `max(N, log start)` to the log end are replayed, so a batch appended after the
snapshot (a crash between the append and the answer, B11) is known and its retry is answered
with the original offset. A missing, garbled or too-new snapshot (N beyond the log end: the log
lost an unsynced tail) is discarded and the state rebuilt by scanning the whole log (B13).

**Expiry.** Batches below the log start offset (removed by retention or DeleteRecords) leave
the window, and a producer with none left is dropped, as Kafka does; its next batch is then
accepted with any sequence. The state is thus a function of the batches in the log, which is
what a rebuild by scanning can restore. A producer whose last batch is older (by its max
timestamp) than `PRODUCER_ID_EXPIRATION_MS` (Kafka's `producer.id.expiration.ms`, 24 h) is
forgotten too, checked with each periodic snapshot and at load.

**Fault point (tests only).** With `KAFKITO_TEST_CRASH_AFTER_APPENDS=N` in the environment the
broker process exits with `os._exit(CRASH_EXIT_CODE)` right after the N-th recorded idempotent
append, before the Produce answer is sent and before any fsync: the crash of B11. Unset, it
costs one integer comparison.

The package: `window.py` (per partition: the five-batch window and the checks above),
`snapshot.py` (the snapshot format, the log scan and the rebuild at load), `manager.py` (the
broker-wide `ProducerStateManager`: pid allocation, the produce-path hooks, periodic snapshots).
"""

from __future__ import annotations

from kafkito.broker.producers.manager import (
    CRASH_ENV,
    CRASH_EXIT_CODE,
    MAX_EPOCH,
    MAX_TRACKED_EPOCHS,
    PID_BLOCK,
    SNAPSHOT_INTERVAL_S,
    SNAPSHOT_MAX_LAG_OFFSETS,
    ProducerStateManager,
    install,
)
from kafkito.broker.producers.snapshot import (
    MAX_SNAPSHOT_BYTES,
    SCAN_CHUNK_BYTES,
    SNAPSHOT_MAGIC,
    SNAPSHOT_NAME,
    decode_snapshot,
    encode_snapshot,
    rebuild,
    scan_headers,
)
from kafkito.broker.producers.window import (
    INT32_MAX,
    NUM_BATCHES_TO_RETAIN,
    PRODUCER_ID_EXPIRATION_MS,
    BatchMetadata,
    PartitionProducers,
    ProducerEntry,
    batch_last_seq,
    in_sequence,
)

__all__ = [
    "CRASH_ENV",
    "CRASH_EXIT_CODE",
    "INT32_MAX",
    "MAX_EPOCH",
    "MAX_SNAPSHOT_BYTES",
    "MAX_TRACKED_EPOCHS",
    "NUM_BATCHES_TO_RETAIN",
    "PID_BLOCK",
    "PRODUCER_ID_EXPIRATION_MS",
    "SCAN_CHUNK_BYTES",
    "SNAPSHOT_INTERVAL_S",
    "SNAPSHOT_MAGIC",
    "SNAPSHOT_MAX_LAG_OFFSETS",
    "SNAPSHOT_NAME",
    "BatchMetadata",
    "PartitionProducers",
    "ProducerEntry",
    "ProducerStateManager",
    "batch_last_seq",
    "decode_snapshot",
    "encode_snapshot",
    "in_sequence",
    "install",
    "rebuild",
    "scan_headers",
]
