"""Restarts of the embedded broker with transactions: the partition state comes back from the
`transactions.snapshot` (a replay of the log after it), or from a scan of the whole log when
the snapshot is damaged, and either way readers see the same thing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from confluent_kafka import Producer
from txnkit import DEADLINE_S, create_topic, read_all, watermarks

from kafkito import Broker


def _write(bootstrap: str, topic: str) -> None:
    """ "a" aborted, "b" committed, "c" left open."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"r-{topic}"})
    producer.init_transactions(DEADLINE_S)
    for value, end in (("a", "abort"), ("b", "commit"), ("c", None)):
        producer.begin_transaction()
        producer.produce(topic, value.encode(), partition=0)
        producer.flush(DEADLINE_S)
        if end == "commit":
            producer.commit_transaction(DEADLINE_S)
        elif end == "abort":
            producer.abort_transaction(DEADLINE_S)


def test_restarts_load_the_snapshot_or_scan_the_log(
    tmp_path: Path, topic_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = str(tmp_path / "data")
    with Broker(port=0, data_dir=data_dir) as bs:
        create_topic(bs, topic_name)
        _write(bs, topic_name)
        assert watermarks(bs, topic_name, "read_committed")[1] == 4  # "c" holds the LSO
    (snapshot,) = (tmp_path / "data").rglob("transactions.snapshot")
    caplog.set_level(logging.INFO, logger="kafkito.broker.txn.coordinator")
    with Broker(port=0, data_dir=data_dir) as bs:
        # the open "c" was aborted at the restart: one more marker, nothing open
        assert watermarks(bs, topic_name, "read_uncommitted")[1] == 6
        assert watermarks(bs, topic_name, "read_committed")[1] == 6
        assert read_all(bs, topic_name, "read_committed") == ["b"]
    assert "snapshot at 5" in caplog.text
    caplog.clear()
    snapshot.write_bytes(b"KTS1 garbage")
    with Broker(port=0, data_dir=data_dir) as bs:
        assert read_all(bs, topic_name, "read_committed") == ["b"]
        assert read_all(bs, topic_name, "read_uncommitted") == ["a", "b", "c"]
        assert watermarks(bs, topic_name, "read_committed")[1] == 6
    assert "snapshot unusable" in caplog.text
    assert "scanned the whole log" in caplog.text
