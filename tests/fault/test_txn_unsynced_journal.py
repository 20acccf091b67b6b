"""The transaction journal records left unsynced (CompleteCommit/Abort, AddPartitionsToTxn of a
partition recovery scans anyway) never let a power loss change a transaction's outcome
(broker/txn/coordinator.py, "Fsyncs").

The metadata log's fsyncs are made to fail (FaultyFileSystem) right after a commit, so what
follows reaches the log files but not the journal; then the power is cut. The next
transaction's data, acknowledged (durability=always: fsynced) but never committed, must be
aborted: the journal's last durable word is the previous transaction, which recovery tells
apart by the log end offsets recorded at its prepare.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import pytest

from kafkito import Broker
from kafkito.errors import ErrorCode
from kafkito.testing.faulty_fs import CrashMode, FaultyFileSystem
from kafkito.testing.wire import WireClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
from txnkit import read_all, watermarks
from txnwire import TxnWire, txn_batch


def _metalog(path: str) -> bool:
    return path.endswith("metadata.log")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["drop", "garbage"])
@pytest.mark.parametrize("last", ["commit", "abort"])
def test_a_later_transaction_is_not_taken_for_the_journaled_one(
    tmp_path: Path, topic_name: str, mode: CrashMode, last: str
) -> None:
    fs = FaultyFileSystem(seed=7)
    data_dir = str(tmp_path / "data")
    broker = Broker(port=0, data_dir=data_dir, fs=fs, durability="always")
    bootstrap = broker.start()
    tid = f"uj-{topic_name}"
    with WireClient(bootstrap, timeout_s=30) as client:
        w = TxnWire(client)
        w.create_topic(topic_name)
        code, pid, epoch = w.init(tid)
        assert code == ErrorCode.none
        assert w.add_partitions(tid, pid, epoch, topic_name, [0]) == [ErrorCode.none]
        assert w.produce(topic_name, txn_batch(pid, epoch, 0, b"first"), tid)[0] == ErrorCode.none
        assert w.end(tid, pid, epoch, commit=last == "commit") == ErrorCode.none
        assert broker.core is not None and broker.core.transactions is not None
        journal = broker.core.transactions.journal
        deadline = time.monotonic() + 10
        while journal.unsynced:  # the Complete record is flushed too (the case without it:
            assert time.monotonic() < deadline  # the power-loss test's random rounds)
            time.sleep(0.01)
        fs.fail_fsyncs(_metalog)
        # the next transaction: its AddPartitionsToTxn is answered without an fsync (the
        # partition is known), its data is acknowledged once the log is fsynced
        assert w.add_partitions(tid, pid, epoch, topic_name, [0]) == [ErrorCode.none]
        code, offset = w.produce(topic_name, txn_batch(pid, epoch, 1, b"second"), tid)
        assert (code, offset) == (ErrorCode.none, 2)  # after "first" and its marker
    after = fs.crash(mode)
    gc.collect()
    broker.stop()
    with Broker(port=0, data_dir=data_dir, fs=after, durability="always") as again:
        committed = ["first"] if last == "commit" else []
        assert read_all(again, topic_name, "read_committed") == committed
        assert read_all(again, topic_name, "read_uncommitted") == ["first", "second"]
        # both transactions ended: a marker after each, nothing holds readers back
        assert watermarks(again, topic_name, "read_committed") == (0, 4)
