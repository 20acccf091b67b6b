"""The metadata-log fsyncs of the transaction coordinator's producer ids and of retention
run off the event loop (issue #18's rest).

A transactional InitProducerId on a fresh broker needs a block of producer ids reserved in the
metadata log, and retention that deletes a segment records the new log start there. Both used
to fsync on the broker's event-loop thread (`kafkito-broker`); the recording file system of
test_admin_fsync_off_loop.py tells which thread ran each metadata-log fsync.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_admin_fsync_off_loop import LOOP_THREAD, RecordingFs
from txnwire import TxnWire

from kafkito import Broker
from kafkito.client import Admin, Writer
from kafkito.errors import ErrorCode
from kafkito.storage.metalog import decode_records
from kafkito.testing.wire import WireClient


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Broker, RecordingFs]]:
    fs = RecordingFs()
    broker = Broker(port=0, data_dir=str(tmp_path / "data"), fs=fs, retention_check_interval_ms=100)
    broker.start()
    try:
        yield broker, fs
    finally:
        broker.stop()


def test_transactional_pids_and_retention_fsync_the_metadata_log_off_the_loop(
    recorded: tuple[Broker, RecordingFs], topic_name: str
) -> None:
    broker, fs = recorded
    bootstrap = broker.bootstrap
    before = len(fs.metalog_syncs)
    with WireClient(bootstrap, timeout_s=30) as client:
        code, pid, _epoch = TxnWire(client).init(f"tx-{topic_name}")
    assert code == ErrorCode.none and pid >= 0
    pid_syncs = fs.metalog_syncs[before:]
    assert pid_syncs, "InitProducerId wrote no metadata record: the test tests nothing"

    with Admin(brokers=bootstrap, timeout_s=15) as admin:
        assert admin.create_topic(
            topic_name, configs={"segment.bytes": "1024", "retention.bytes": "1024"}
        )
        with Writer(topic_name, brokers=bootstrap) as writer:
            for i in range(40):
                writer.write(f"{i:0>200}".encode())
        core = broker.core
        assert core is not None
        plog = core.topics.partition(topic_name, 0)
        assert plog is not None
        deadline = time.monotonic() + 20
        while plog.log_start_offset == 0:  # retention runs every 100 ms here
            assert time.monotonic() < deadline, "retention did not move the log start"
            time.sleep(0.05)
        start = plog.log_start_offset
        deadline = time.monotonic() + 20
        while not any(
            r.get("type") == "log_start" and r.get("offset") == start
            for r in decode_records(Path(core.metalog.path).read_bytes())[0]
        ):
            assert time.monotonic() < deadline, "the log start was never persisted"
            time.sleep(0.05)
        time.sleep(0.3)  # its fsync, wherever it runs, is over
    on_loop = [name for name in fs.metalog_syncs[before:] if name == LOOP_THREAD]
    assert not on_loop, f"{len(on_loop)} metadata-log fsyncs on the event loop"
