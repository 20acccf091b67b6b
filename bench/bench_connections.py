"""Connection-level costs and a healthy client's latency under hostile load.

    python bench/bench_connections.py            # about 40 seconds
    python bench/bench_connections.py --sockets 2000

The broker runs as a child process (`python -m kafkito broker`) on a free loopback port, so
its RSS is its own. Figures printed:

* broker RSS per idle connection: RSS after N idle sockets minus RSS before, divided by N;
* broker RSS held by N sockets that each declared a 100 MB request and sent 1 KB of it;
* a bystander's produce-then-fetch round trip (confluent-kafka, acks=all, durability=always):
  p50 and p99 with no other load, then with the N idle + N lying sockets open and 20
  slowloris drips (one byte every 0.5 s) running;
* logins per second: SCRAM-SHA-512 (full exchange) and failed PLAIN logins, one connection
  each, on a SASL_PLAINTEXT broker (confluent-kafka clients, sequential).

Nothing here asserts a speed; figures go to docs/benchmarks.md with this command.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from kafkito.broker.auth import UserStore
from kafkito.testing.brokers import BrokerProcess, kafkito_process
from kafkito.testing.wire import request_frame


def rss_bytes(proc: BrokerProcess) -> int:
    assert proc.proc is not None
    for line in Path(f"/proc/{proc.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def broker(root: Path, *extra: str) -> Iterator[BrokerProcess]:
    proc = kafkito_process(
        root / f"data-{uuid.uuid4().hex[:6]}",
        extra_args=["--max-connections-per-ip", "100000", *extra],
    ).start()
    try:
        yield proc
    finally:
        proc.kill()


def round_trips(bootstrap: str, seconds: float) -> list[float]:
    topic = f"b-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    producer.produce(topic, b"warm-up")
    producer.flush(10)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "b", "fetch.wait.max.ms": 10})
    consumer.assign([TopicPartition(topic, 0, 1)])
    times: list[float] = []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        value = f"r{i}".encode()
        started = time.perf_counter()
        producer.produce(topic, value)
        producer.flush(10)
        while True:
            msg = consumer.poll(5)
            if msg is not None and msg.error() is None and msg.value() == value:
                break
        times.append(time.perf_counter() - started)
        i += 1
    consumer.close()
    return times


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def connect(bootstrap: str) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def drip(bootstrap: str, stop: threading.Event) -> None:
    frame = request_frame(18, 0, 1, {})
    while not stop.is_set():
        with connect(bootstrap) as sock:
            for byte in frame:
                if stop.wait(0.5):
                    return
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break


def logins(bootstrap: str, mechanism: str, password: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        done = threading.Event()
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": mechanism,
                "sasl.username": "bench",
                "sasl.password": password,
                "error_cb": lambda err, done=done: (
                    done.set() if err.code() == KafkaError._AUTHENTICATION else None
                ),
            }
        )
        if password == "good":
            producer.list_topics(timeout=10)
        else:
            while not done.is_set():
                producer.poll(0.01)
        del producer
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    n = args.sockets
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with broker(root) as proc:
            base = round_trips(proc.bootstrap, args.seconds)
            rss0 = rss_bytes(proc)
            idle = [connect(proc.bootstrap) for _ in range(n)]
            time.sleep(1)
            rss_idle = rss_bytes(proc)
            liars = [connect(proc.bootstrap) for _ in range(n)]
            for s in liars:
                s.sendall(struct.pack(">i", 100_000_000) + b"\0" * 1024)
            time.sleep(1)
            rss_liars = rss_bytes(proc)
            stop = threading.Event()
            drips = [threading.Thread(target=drip, args=(proc.bootstrap, stop)) for _ in range(20)]
            for t in drips:
                t.start()
            loaded = round_trips(proc.bootstrap, args.seconds)
            stop.set()
            for t in drips:
                t.join()
            for s in idle + liars:
                s.close()
        users = str(root / "users.json")
        store = UserStore.load(users, missing_ok=True)
        store.set_password("bench", "good")
        store.save()
        with broker(
            root, "--security-protocol", "SASL_PLAINTEXT", "--sasl-users-file", users
        ) as proc:
            scram_rate = logins(proc.bootstrap, "SCRAM-SHA-512", "good", 50)
            fail_rate = logins(proc.bootstrap, "PLAIN", "bad", 20)
    print(f"broker RSS per idle connection     {(rss_idle - rss0) / n / 1024:8.1f} KiB  (N={n})")
    print(
        f"RSS for N sockets declaring 100 MB {(rss_liars - rss_idle) / 2**20:8.1f} MiB  "
        f"(1 KiB sent each; declared total {n * 100 / 1000:.0f} GB)"
    )
    print(
        f"bystander round trip, quiet        p50 {pct(base, 50):6.1f} ms  "
        f"p99 {pct(base, 99):6.1f} ms  ({len(base)} rounds)"
    )
    print(
        f"bystander round trip, hostile load p50 {pct(loaded, 50):6.1f} ms  "
        f"p99 {pct(loaded, 99):6.1f} ms  ({len(loaded)} rounds)"
    )
    print(f"SCRAM-SHA-512 logins               {scram_rate:8.1f} /s (client + broker, sequential)")
    print(f"failed PLAIN logins                {fail_rate:8.1f} /s (100 ms failure delay each)")


if __name__ == "__main__":
    main()
