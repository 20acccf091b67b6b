"""A long restore runs between the loop's rounds (restore.Restorer), not inside the
rebalance callback: the partitions already restored are processed while another one's
store is still restoring, whose input partition waits (paused) until its store is open."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from streams_kit import Running, create_topic, produce, read_all, wait_for

from kafkito.client import Admin
from kafkito.client.raw_producer import RawProducer
from kafkito.streams import Record, RestoreProgress, StreamsApp
from kafkito.streams import restore as restore_module
from kafkito.streams.records import pack

OLD_KEYS = 40_000


def test_other_partitions_are_processed_while_one_restores(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"app-{kafkito_topic}"
    changelog = f"{name}-counts-changelog"
    create_topic(kafkito_bootstrap, kafkito_topic, 2)
    admin = Admin(brokers=kafkito_bootstrap)
    admin.create_topic(changelog, 2, configs={"cleanup.policy": "compact"})
    admin.close()
    # Partition 0's store has a long changelog (as if another instance had counted them).
    producer = RawProducer(brokers=kafkito_bootstrap, settings={"linger.ms": 20})
    for i in range(OLD_KEYS):
        producer.produce(changelog, pack(1), pack(f"old{i}"), partition=0)
        if i % 10_000 == 0:
            producer.flush(30)
    assert producer.flush(30) == 0
    producer.close()
    produce(kafkito_bootstrap, kafkito_topic, [("a", {}, 0, None)] * 5 + [("b", {}, 1, None)] * 5)

    # A slow restore: small batches, and each report of partition 0 takes 0.1 s.
    monkeypatch.setattr(restore_module, "RESTORE_BATCH", 500)

    def slow(progress: RestoreProgress) -> None:
        if progress.partition == 0 and not progress.done:
            time.sleep(0.1)

    app = StreamsApp(name, brokers=kafkito_bootstrap, state_dir=tmp_path, on_restore=slow)
    seen: list[tuple[str, int, bool, bool]] = []
    lock = threading.Lock()

    def note(rec: Record) -> Record:
        progress = app.restore_progress[("counts", 0)]
        with lock:
            seen.append((rec.key, rec.value, progress.done, app.health()["ready"]))
        return rec

    app.stream(kafkito_topic).group_by().count(name="counts").map_record(note).to(
        f"{kafkito_topic}-out"
    )
    start_app(app)
    out = read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=10, timeout_s=120)
    assert sorted(out) == sorted([("a", n) for n in range(1, 6)] + [("b", n) for n in range(1, 6)])
    b_first = next(s for s in seen if s[0] == "b")
    assert b_first[2] is False, "partition 1 waited for partition 0's restore"
    assert b_first[3] is False  # not ready while a store restores
    assert all(done for key, _, done, _ in seen if key == "a")  # a waited for its store
    final = app.restore_progress[("counts", 0)]
    assert final.done and final.restored == OLD_KEYS
    wait_for(lambda: app.health()["ready"], what="ready once restored")
