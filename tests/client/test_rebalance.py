"""A second Reader joins mid-processing: no loss, commits follow ownership (C5, C6)."""

from __future__ import annotations

import threading
import time
from collections import Counter

from clientkit import Cluster
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from test_reader import committed

from kafkito.client import Message, Reader

PER_PARTITION = 20


def test_second_reader_joins_mid_processing(group_cluster: Cluster, topic: str, group: str) -> None:
    bootstrap = group_cluster.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition in (0, 1):
        for i in range(PER_PARTITION):
            producer.produce(topic, f"p{partition}-{i}".encode(), partition=partition)
    assert producer.flush(30) == 0

    handled: Counter[tuple[int, int]] = Counter()
    lock = threading.Lock()
    done = threading.Event()

    def handler(message: Message) -> None:
        time.sleep(0.02)  # slow enough that the second reader joins mid-way
        with lock:
            handled[(message.partition, message.offset)] += 1
            if len(handled) == 2 * PER_PARTITION:
                done.set()

    readers = [
        Reader(topic, brokers=bootstrap, group_id=group, settings=group_cluster.settings)
        for _ in range(2)
    ]
    threads = [
        threading.Thread(target=r.read_message, args=(handler,), kwargs={"handle_signals": False})
        for r in readers
    ]
    threads[0].start()
    deadline = time.monotonic() + 30
    while len(handled) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    threads[1].start()  # joins while the first one is handling
    assert done.wait(60), f"only {len(handled)} of {2 * PER_PARTITION} handled"
    for r in readers:
        r.stop()
    for t in threads:
        t.join(10)
    for r in readers:
        r.close()

    assert set(handled) == {(p, o) for p in (0, 1) for o in range(PER_PARTITION)}  # no loss
    duplicates = sum(n - 1 for n in handled.values())
    assert duplicates <= 2, handled  # a revoked partition's work is committed in on_revoke
    assert committed(group_cluster, topic, group) == {0: PER_PARTITION, 1: PER_PARTITION}
