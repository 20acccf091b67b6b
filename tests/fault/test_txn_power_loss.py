"""Transactions under power loss (FaultyFileSystem): a committed transaction survives whole,
nothing else is ever visible, and no transaction is partly visible (issue #13, Durability).

A transactional producer writes transactions over two partitions, committing and aborting in
turn, with the broker on `durability=interval` (acks do not wait for fsync, so only the
transaction machinery's own fsyncs protect it), then the power is cut while a transaction is
open. On the disk as it comes back, read_committed readers must see exactly the values of the
transactions whose commit was acknowledged, in both partitions.
"""

from __future__ import annotations

import gc
import os
import random
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafkito import Broker
from kafkito.testing.faulty_fs import CrashMode, FaultyFileSystem

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
from txnkit import read_all  # the transaction readers of the integration tests

SEED = int(os.environ.get("KAFKITO_FAULT_SEED", random.randrange(2**32)))
DEADLINE_S = 30.0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["drop", "garbage"])
def test_power_loss_never_shows_part_of_a_transaction(
    tmp_path: Path, topic_name: str, mode: CrashMode
) -> None:
    rng = random.Random(SEED)
    fs = FaultyFileSystem(seed=SEED)
    data_dir = str(tmp_path / "data")
    settings = {"durability": "interval", "flush_interval_ms": 200}
    broker = Broker(port=0, data_dir=data_dir, fs=fs, **settings)
    bootstrap = broker.start()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic_name, 2, 1)])[topic_name].result(10)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": f"pl-{topic_name}", "linger.ms": 0}
    )
    producer.init_transactions(DEADLINE_S)
    committed: list[str] = []
    rounds = rng.randrange(4, 12)
    for n in range(rounds + 1):
        values = [f"t{n}-{i}" for i in range(3)]
        producer.begin_transaction()
        for value in values:
            for partition in (0, 1):
                producer.produce(topic_name, value.encode(), partition=partition)
        producer.flush(DEADLINE_S)
        if n == rounds:
            break  # left open: the power goes now
        if n % 3 == 2:
            producer.abort_transaction(DEADLINE_S)
        else:
            producer.commit_transaction(DEADLINE_S)
            committed += values
    after = fs.crash(mode)
    del producer
    gc.collect()
    broker.stop()
    with Broker(port=0, data_dir=data_dir, fs=after, **settings) as again:
        for partition in (0, 1):
            seen = read_all(again, topic_name, "read_committed", partition)
            assert seen == committed, f"seed {SEED}, partition {partition}"
