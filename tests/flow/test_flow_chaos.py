"""F11, end to end: unique ids, random failures, poison pills, kill -9 of consumers, a broker
restart. At the end processed ∪ dead-lettered covers every id, and duplicates stay within what
the crashes and rebalances can explain (records in flight or not yet committed)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from harness import create_topic, produce, read_all, wait_for

from kafkito.flow import letters
from kafkito.testing.brokers import kafkito_process

APP = str(Path(__file__).with_name("flow_app.py"))
TOTAL = 1500
POISON_EVERY = 97


def start_consumer(bootstrap: str, topic: str, out: Path, seed: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            APP,
            bootstrap,
            topic,
            "chaos",
            str(out),
            "--fail-rate",
            "0.05",
            "--seed",
            str(seed),
            "--grace-s",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def processed(out: Path) -> list[int]:
    if not out.exists():
        return []
    return [int(line.split()[1]) for line in out.read_text().splitlines() if line.strip()]


def test_chaos_every_id_processed_or_dead_lettered(tmp_path: Path, topic_name: str) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"chaos seed {seed}")
    broker = kafkito_process(tmp_path / "data").start()
    out = tmp_path / "processed.txt"
    consumers: list[subprocess.Popen[str]] = []
    events = 0
    try:
        create_topic(broker.bootstrap, topic_name, partitions=4)
        records = []
        for i in range(TOTAL):
            body = {"id": i, "poison": i % POISON_EVERY == 0}
            records.append((f"user-{rng.randrange(50)}".encode(), json.dumps(body).encode()))
        produce(broker.bootstrap, topic_name, records[: TOTAL // 2])
        consumers = [start_consumer(broker.bootstrap, topic_name, out, seed + n) for n in range(2)]
        wait_for(lambda: len(processed(out)) > 200, timeout_s=60, what="first progress")
        consumers[0].send_signal(signal.SIGKILL)  # a consumer dies mid-flight
        consumers[0].wait()
        events += 1
        produce(broker.bootstrap, topic_name, records[TOTAL // 2 :])
        wait_for(lambda: len(processed(out)) > 700, timeout_s=60, what="progress after kill")
        broker.kill()  # the broker dies too, and comes back on the same port and data
        events += 1
        time.sleep(0.5)
        broker.start()
        consumers.append(start_consumer(broker.bootstrap, topic_name, out, seed + 7))
        events += 1
        poison = {i for i in range(TOTAL) if i % POISON_EVERY == 0}
        wanted = set(range(TOTAL)) - poison
        wait_for(
            lambda: wanted <= set(processed(out)),
            timeout_s=120,
            what=f"every id processed (seed {seed})",
        )
        dead = read_all(
            broker.bootstrap,
            letters.dead_letter_topic(topic_name),
            expect=len(poison),
            timeout_s=60,
        )
    finally:
        for proc in consumers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in consumers:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.stop()
    dead_ids = {json.loads(m.value())["id"] for m in dead}
    assert poison <= dead_ids, f"poison pills missing from the dead-letter topic (seed {seed})"
    done = processed(out)
    assert set(done) | dead_ids == set(range(TOTAL)), f"lost ids (seed {seed})"
    duplicates = sum(n - 1 for n in Counter(done).values() if n > 1)
    print(f"chaos: {len(done)} handled, {duplicates} duplicates, {len(dead_ids)} dead-lettered")
    # Each crash or rebalance may replay what was in flight or done but not yet committed
    # (commit interval 0.2 s): a generous bound, but a finite one: no replay storms.
    assert duplicates <= events * 400, (
        f"{duplicates} duplicates after {events} events (seed {seed})"
    )
