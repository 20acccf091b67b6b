"""Exactly once through kill -9: the application process dies mid-stream, again and again.

Each cycle starts the app (tests/flow/eos_app.py, a child process), waits until it has
committed more than before, and kills it with SIGKILL a random moment later (mid-transaction
or between two). The next start fences the killed instance (same transactional.id) and aborts
its open transaction. At the end a last run finishes the stream and stops cleanly, and the
checker (eoskit) reads every output with read_committed: each input exactly once, none lost,
outputs and committed offsets in agreement.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from eoskit import check_agreement, committed_offsets, id_values
from harness import create_topic, produce, wait_for

APP = str(Path(__file__).with_name("eos_app.py"))
PARTITIONS = 3
TOTAL = 10_000
CYCLES = 4


def start_app(bootstrap: str, in_topic: str, out_topic: str, group: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, APP, bootstrap, in_topic, out_topic, group, "--sleep-ms", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def test_kill_9_mid_stream_keeps_exactly_once(broker: str) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"kill -9 seed {seed}")
    suffix = uuid.uuid4().hex[:8]
    in_topic, out_topic, group = f"k9-in-{suffix}", f"k9-out-{suffix}", f"k9-g-{suffix}"
    create_topic(broker, in_topic, PARTITIONS)
    create_topic(broker, out_topic, PARTITIONS)
    produce(broker, in_topic, id_values(TOTAL, keys=100))

    def done() -> int:
        return sum(committed_offsets(broker, group, in_topic, PARTITIONS))

    before = 0
    procs: list[subprocess.Popen[str]] = []
    try:
        for cycle in range(CYCLES):
            proc = start_app(broker, in_topic, out_topic, group)
            procs.append(proc)
            wait_for(
                lambda floor=before: done() > floor,  # type: ignore[misc]
                timeout_s=60,
                what=f"progress in cycle {cycle}",
            )
            time.sleep(rng.uniform(0, 0.4))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            now = done()
            assert before < now < TOTAL, f"cycle {cycle} (seed {seed}): {before} -> {now}"
            before = now
        last = start_app(broker, in_topic, out_topic, group)
        procs.append(last)
        wait_for(lambda: done() == TOTAL, timeout_s=120, what="the last run to finish")
        last.send_signal(signal.SIGTERM)
        assert last.wait(30) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    figures = check_agreement(broker, group, in_topic, out_topic, PARTITIONS)
    assert figures["outputs"] == TOTAL, f"seed {seed}"
