"""B10: a slow disk (every fsync 300 ms) slows durable acknowledgements, not the broker.

The broker fsyncs small rounds on its event loop's thread while the disk is fast
(storage/durability.py); the first slow fsync stops the loop once, and from then on, while the
disk stays slow, every round runs in the worker thread. Measured after that first slow round,
while an acks=all producer keeps writing: requests on another connection (ApiVersions and
Metadata) are answered without stalls (p99 under 50 ms on a quiet machine), and the
producer's records are acknowledged.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafkito import Broker
from kafkito.storage.fs import OsFileSystem
from kafkito.testing.wire import WireClient

API_VERSIONS, METADATA = 18, 3
SLOW_FSYNC_S = 0.3


class SlowDisk(OsFileSystem):
    """The real disk, whose fsyncs each take `SLOW_FSYNC_S` more once `slow` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.slow = threading.Event()

    def fsync(self, fd: int) -> None:
        if self.slow.is_set():
            time.sleep(SLOW_FSYNC_S)
        super().fsync(fd)


def test_a_slow_disk_slows_acknowledgements_and_not_other_requests(
    tmp_path: Path, topic_name: str
) -> None:
    fs = SlowDisk()
    broker = Broker(port=0, data_dir=str(tmp_path / "data"), fs=fs)
    with broker as bootstrap:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic_name, 1)])[topic_name].result(15)
        producer = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, "batch.num.messages": 1}
        )
        acked: list[float] = []

        def delivered(err: object, _msg: object) -> None:
            if err is None:
                acked.append(time.monotonic())

        for _ in range(20):  # a fast disk: the rounds run on the loop's thread
            producer.produce(topic_name, b"warm", on_delivery=delivered)
            producer.flush(15)
        assert broker.core is not None
        committer = broker.core.committer
        assert committer.inline_rounds > 0
        before = committer.slow_inline_rounds  # a loaded machine may have had a slow fsync
        fs.slow.set()
        slow_from = time.monotonic()
        stop = threading.Event()

        def produce() -> None:
            while not stop.is_set():
                producer.produce(topic_name, b"v" * 100, on_delivery=delivered)
                producer.poll(0.01)

        writer = threading.Thread(target=produce, daemon=True)
        writer.start()
        try:
            deadline = time.monotonic() + 10
            while not acked or acked[-1] < slow_from + SLOW_FSYNC_S:  # a round met the disk
                assert time.monotonic() < deadline, "nothing acknowledged on the slow disk"
                time.sleep(0.05)
            since = time.monotonic()
            waits: list[float] = []
            with WireClient(bootstrap) as other:
                while time.monotonic() - since < 3:
                    started = time.perf_counter()
                    other.request(API_VERSIONS, 0, {})
                    other.request(METADATA, 1, {"topics": None})
                    waits.append(time.perf_counter() - started)
                    time.sleep(0.005)
        finally:
            stop.set()
            writer.join(10)
        producer.flush(30)
        late_acks = [t for t in acked if t > since]
        assert late_acks, "nothing acknowledged while the disk was slow"
        # the loop stopped for at most one fsync (none, if the rounds were in the thread)
        assert committer.slow_inline_rounds - before <= 1, (before, committer.slow_inline_rounds)
        # B10 asks p99 < 50 ms; a loaded CI machine gets a margin, while a loop that stops
        # for an fsync every second or so would leave a fifth of the probes over 100 ms
        p99 = statistics.quantiles(waits, n=100)[98]
        stalled = [w for w in waits if w > 0.1]
        assert len(stalled) <= len(waits) * 0.02, (
            f"{len(stalled)} of {len(waits)} pairs over 100 ms; p99 {p99 * 1000:.1f} ms"
        )
