"""Group and offset faults (RELIABILITY B15, B16): the broker killed during commits, power cut
under it, its fsync failing, restarted under a consuming group; a consumer stalled past its
session timeout.

SIGKILL runs the broker as a child process (`broker_process`): whatever an OffsetCommit
acknowledged must be what OffsetFetch returns after the restart (or the one commit that was in
flight), never an older value and never a spurious -1. Power loss runs it in-process on
FaultyFileSystem, which forgets (or garbles) every byte not fsynced: this is what proves that
the acknowledgement really waits for the group-commit fsync.
"""

from __future__ import annotations

import importlib.util
import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from kafkito import Broker
from kafkito.testing.brokers import BrokerProcess
from kafkito.testing.faulty_fs import CrashMode, FaultyFileSystem
from kafkito.testing.wire import WireClient

_spec = importlib.util.spec_from_file_location(
    "groups_worker", Path(__file__).resolve().parents[1] / "compat" / "test_groups_worker.py"
)
assert _spec is not None and _spec.loader is not None
worker: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

SEED = int(os.environ.get("KAFKITO_SEED", random.randrange(1 << 30)))


def _commit_body(group: str, topic: str, offset: int) -> dict[str, Any]:
    return {
        "group_id": group,
        "generation_id_or_member_epoch": -1,
        "member_id": "",
        "group_instance_id": None,
        "topics": [
            {
                "name": topic,
                "partitions": [
                    {
                        "partition_index": 0,
                        "committed_offset": offset,
                        "committed_leader_epoch": 0,
                        "committed_metadata": f"m{offset}",
                    }
                ],
            }
        ],
    }


def _fetch(bootstrap: str, group: str, topic: str) -> tuple[int, str | None]:
    with WireClient(bootstrap) as client:
        body = {
            "groups": [{"group_id": group, "topics": [{"name": topic, "partition_indexes": [0]}]}],
            "require_stable": True,
        }
        row = client.request(9, 8, body).groups[0].topics[0].partitions[0]
    assert row.error_code == ErrorCode.none
    return row.committed_offset, row.metadata


def test_kill_9_during_commits_keeps_the_last_acknowledged_commit(
    broker_process: BrokerProcess,
) -> None:
    rng = random.Random(SEED)
    print(f"seed {SEED} (KAFKITO_SEED to replay)")
    bootstrap = broker_process.bootstrap
    topic = f"t-{uuid.uuid4().hex[:8]}"
    worker.create_topic(bootstrap, topic, 1)
    groups = [f"g{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    acked = dict.fromkeys(groups, -1)
    sent = dict.fromkeys(groups, -1)
    for round_ in range(3):
        stop = threading.Event()

        def committer(group: str, stop: threading.Event = stop) -> None:
            try:
                with WireClient(bootstrap, timeout_s=5) as client:
                    while not stop.is_set():
                        offset = sent[group] = acked[group] + 1
                        answer = client.request(8, 8, _commit_body(group, topic, offset))
                        code = answer.topics[0].partitions[0].error_code
                        assert code == ErrorCode.none, code
                        acked[group] = offset
            except (OSError, AssertionError, TimeoutError):
                return  # the broker died under us: this commit was not acknowledged

        threads = [threading.Thread(target=committer, args=(g,)) for g in groups]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.3, 1.2))
        broker_process.kill()
        stop.set()
        for t in threads:
            t.join(10)
        broker_process.start()
        for group in groups:
            offset, metadata = _fetch(bootstrap, group, topic)
            assert acked[group] >= 0, "no commit was acknowledged before the kill"
            assert offset in (acked[group], sent[group]), (round_, group, offset, acked[group])
            assert metadata == f"m{offset}"
            acked[group] = offset  # the next round continues from what survived


@pytest.mark.parametrize(
    ("lib", "how"), [("ck", "kill"), ("aio", "kill"), ("kp", "kill"), ("ck", "stop")]
)
def test_group_recovers_from_a_broker_restart(
    broker_process: BrokerProcess, lib: str, how: str
) -> None:
    bootstrap = broker_process.bootstrap
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    worker.create_topic(bootstrap, topic, 3)
    before = [f"before-{i}" for i in range(30)]
    after = [f"after-{i}" for i in range(30)]
    reader = worker.python_member(lib, bootstrap, group, topic)
    try:
        worker.produce(bootstrap, topic, before, 3)
        worker.wait_for(lambda: set(before) <= set(reader.values()), 60, "first batch")
        if how == "kill":
            broker_process.kill()
            broker_process.start()
        else:
            broker_process.restart()
        worker.produce(bootstrap, topic, after, 3)
        try:
            worker.wait_for(lambda: set(after) <= set(reader.values()), 90, "reads after restart")
        except AssertionError as exc:
            # Seen once in a full run (kp, kill), never since: keep what the client said.
            missing = sorted(set(after) - set(reader.values()))
            raise AssertionError(
                f"{exc}; missing {missing}; last events {reader.events[-10:]}; "
                f"client log:\n{reader.log_tail()}"
            ) from None
        worker.wait_for(
            lambda: worker.stable_with(bootstrap, group, 1, 3), 30, "the member is back"
        )
    finally:
        reader.terminate()
    seen = reader.values()
    # a commit in flight at the crash may be re-read once; nothing committed, nothing skipped
    assert set(seen) == set(before) | set(after)
    assert len(seen) - len(set(seen)) <= 3


def test_consumer_stalled_past_its_session_loses_partitions_then_rejoins(
    tmp_path: Path,
) -> None:
    with Broker(
        port=0, data_dir=str(tmp_path / "d"), group_initial_rebalance_delay_ms=100
    ) as bootstrap:
        topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
        worker.create_topic(bootstrap, topic, 4)
        a = worker.python_member("ck", bootstrap, group, topic)
        b = worker.python_member("ck", bootstrap, group, topic)
        values = [f"v{i}" for i in range(80)]
        try:
            worker.wait_for(lambda: worker.stable_with(bootstrap, group, 2, 4), 60, "2 members")
            b.pause()  # SIGSTOP: no heartbeats, no commits
            worker.wait_for(
                lambda: worker.stable_with(bootstrap, group, 1, 4),
                worker.SESSION_MS / 1000 + 15,
                "the stalled member expired",
            )
            worker.produce(bootstrap, topic, values, 4)
            worker.wait_for(lambda: set(values) <= set(a.values()), 60, "a reads everything")
            b.resume()
            worker.wait_for(lambda: worker.stable_with(bootstrap, group, 2, 4), 60, "b rejoins")
        finally:
            b.resume()
            a.terminate()
            b.terminate()
        assert not b.values()  # it held nothing while stalled, and got nothing old back
        ends = {p: 20 for p in range(4)}
        committed = {p: o for m in (a, b) for p, o in m.last_commits().items()}
        assert committed == ends


def _committer(
    bootstrap: str, group: str, topic: str, acked: dict[str, int], sent: dict[str, int]
) -> threading.Event:
    """Commit 0, 1, 2, ... one at a time until stopped or the broker goes away."""
    stop = threading.Event()

    def run() -> None:
        try:
            with WireClient(bootstrap, timeout_s=5) as client:
                while not stop.is_set():
                    offset = sent[group] = acked[group] + 1
                    answer = client.request(8, 8, _commit_body(group, topic, offset))
                    if answer.topics[0].partitions[0].error_code != ErrorCode.none:
                        return
                    acked[group] = offset
        except (OSError, AssertionError, TimeoutError):
            return

    threading.Thread(target=run, daemon=True).start()
    return stop


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["drop", "zeros", "garbage", "partial"])
def test_power_loss_keeps_every_acknowledged_commit(tmp_path: Path, mode: CrashMode) -> None:
    """The ack waits for fsync: a power cut (unsynced bytes lost or garbled) loses no acked
    commit. SIGKILL cannot show this, since the page cache survives it."""
    rng = random.Random(SEED)
    print(f"seed {SEED} (KAFKITO_SEED to replay)")
    fs = FaultyFileSystem(seed=SEED)
    data_dir = str(tmp_path / "data")
    broker = Broker(port=0, data_dir=data_dir, fs=fs)
    bootstrap = broker.start()
    topic = f"t-{uuid.uuid4().hex[:8]}"
    worker.create_topic(bootstrap, topic, 1)
    groups = [f"g{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    acked, sent = dict.fromkeys(groups, -1), dict.fromkeys(groups, -1)
    stops = [_committer(bootstrap, g, topic, acked, sent) for g in groups]
    time.sleep(rng.uniform(0.3, 1.0))
    after = fs.crash(mode)
    for stop in stops:
        stop.set()
    time.sleep(0.2)
    broker.stop()
    with Broker(port=0, data_dir=data_dir, fs=after) as restarted:
        for group in groups:
            assert acked[group] >= 0, "no commit was acknowledged before the power cut"
            offset, metadata = _fetch(restarted, group, topic)
            assert offset in (acked[group], sent[group]), (SEED, group, offset, acked[group])
            assert metadata == f"m{offset}"


def test_fsync_failure_refuses_the_commit_and_keeps_the_old_offset(tmp_path: Path) -> None:
    fs = FaultyFileSystem(seed=SEED)
    with Broker(port=0, data_dir=str(tmp_path / "data"), fs=fs) as bootstrap:
        topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
        worker.create_topic(bootstrap, topic, 1)
        with WireClient(bootstrap) as client:
            first = client.request(8, 8, _commit_body(group, topic, 5))
            assert first.topics[0].partitions[0].error_code == ErrorCode.none
            fs.fail_fsyncs(lambda path: path.endswith("metadata.log"))
            refused = client.request(8, 8, _commit_body(group, topic, 6))
            assert refused.topics[0].partitions[0].error_code == ErrorCode.coordinator_not_available
            assert _fetch(bootstrap, group, topic) == (5, "m5")
            fs.clear_faults()
            again = client.request(8, 8, _commit_body(group, topic, 7))
            assert again.topics[0].partitions[0].error_code == ErrorCode.none
        assert _fetch(bootstrap, group, topic) == (7, "m7")
