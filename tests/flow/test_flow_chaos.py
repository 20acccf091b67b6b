"""F11, end to end: unique ids, random failures, poison pills, kill -9 of consumers, a broker
restart. At the end processed ∪ dead-lettered covers every id, and every duplicate is explained
by a crash or rebalance: its first handling happened before such an event and its second after.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import subprocess
import sys
import time
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


def rows(out: Path) -> list[list[str]]:
    return [line.split() for line in out.read_text().splitlines()] if out.exists() else []


def handled(out: Path) -> list[tuple[int, float]]:
    """(id, time) of every handling, in file order."""
    return [(int(r[1]), float(r[2])) for r in rows(out) if len(r) == 3 and r[1].isdigit()]


def rebalances(out: Path) -> list[float]:
    """When any consumer saw partitions assigned, revoked or lost."""
    return [float(r[2]) for r in rows(out) if len(r) == 3 and not r[1].isdigit()]


def processed(out: Path) -> list[int]:
    return [ident for ident, _ in handled(out)]


def test_chaos_every_id_processed_or_dead_lettered(tmp_path: Path, topic_name: str) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"chaos seed {seed}")
    broker = kafkito_process(tmp_path / "data").start()
    out = tmp_path / "processed.txt"
    consumers: list[subprocess.Popen[str]] = []
    events: list[float] = []  # crashes, restarts and joins: moments a rebalance can happen
    try:
        create_topic(broker.bootstrap, topic_name, partitions=4)
        records = []
        for i in range(TOTAL):
            body = {"id": i, "poison": i % POISON_EVERY == 0}
            records.append((f"user-{rng.randrange(50)}".encode(), json.dumps(body).encode()))
        produce(broker.bootstrap, topic_name, records[: TOTAL // 2])
        for n in range(2):
            events.append(time.time())
            consumers.append(start_consumer(broker.bootstrap, topic_name, out, seed + n))
        wait_for(lambda: len(processed(out)) > 200, timeout_s=60, what="first progress")
        events.append(time.time())
        consumers[0].send_signal(signal.SIGKILL)  # a consumer dies mid-flight
        consumers[0].wait()
        produce(broker.bootstrap, topic_name, records[TOTAL // 2 :])
        wait_for(lambda: len(processed(out)) > 700, timeout_s=60, what="progress after kill")
        events.append(time.time())
        broker.kill()  # the broker dies too, and comes back on the same port and data
        time.sleep(0.5)
        broker.start()
        events.append(time.time())
        consumers.append(start_consumer(broker.bootstrap, topic_name, out, seed + 7))
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
    times: dict[int, list[float]] = {}
    for ident, at in handled(out):
        times.setdefault(ident, []).append(at)
    duplicates = sum(len(t) - 1 for t in times.values())
    print(
        f"chaos: {len(done)} handled, {duplicates} duplicates, {len(dead_ids)} dead-lettered, "
        f"{len(events)} events"
    )
    events += rebalances(out)
    for ident, moments in times.items():
        for earlier, later in itertools.pairwise(moments):
            explained = any(earlier - 0.05 <= event <= later + 0.05 for event in events)
            assert explained, (
                f"id {ident} handled at {earlier:.3f} and again at {later:.3f} "
                f"with no crash or rebalance between (seed {seed})"
            )
