"""The cleaner's child process (storage/cleaner_process.py; its entry is
kafkito.storage.cleaner_child) dies with its broker.

A `kafkito broker` process cleans a compacted backlog with its cleaner throttled, so that the
pass (in its child process) lasts seconds. The test finds the child among the broker's
children, SIGKILLs the broker, and the child must be gone at once (PR_SET_PDEATHSIG): an
orphan would go on renaming segment files while the next broker's recovery works on them.
Then the broker restarts on the same data and every key still reads its latest value.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from kafkito.client import Admin
from kafkito.testing.brokers import kafkito_process

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's"
)


def _cleaner_children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmd:
                argv = cmd.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"kafkito.storage.cleaner_child" in argv:
            found.append(int(entry))
    return found


def _reading(pid: int, directory: str) -> bool:
    """Whether `pid` has a file of `directory` open (a segment: it is cleaning)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(directory):
                return True
    return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_cleaners_child_dies_with_its_broker(tmp_path: Path) -> None:
    from checker import read_partition

    proc = kafkito_process(
        tmp_path / "data",
        extra_args=[
            "--log-cleaner-backoff-ms",
            "50",
            "--log-cleaner-io-max-bytes-per-second",
            "20000",  # 1.3 MB read twice, then written: a pass of a minute or more
        ],
    )
    proc.start()
    children: list[int] = []
    try:
        with Admin(brokers=proc.bootstrap) as admin:
            admin.create_topic("kv", configs={"cleanup.policy": "delete", "segment.bytes": "65536"})
            producer = Producer({"bootstrap.servers": proc.bootstrap, "linger.ms": 5})
            latest: dict[bytes, bytes] = {}
            for i in range(6000):
                key = f"key-{i % 50}".encode()
                value = key + f"|{i}|".encode() + b"x" * 200
                producer.produce("kv", key=key, value=value)
                latest[key] = value
            assert producer.flush(30) == 0
            admin.alter_configs("kv", {"cleanup.policy": "compact"})
        assert proc.proc is not None
        broker_pid = proc.proc.pid
        deadline = time.monotonic() + 30
        while not children and time.monotonic() < deadline:
            children = _cleaner_children(broker_pid)
            time.sleep(0.01)
        assert children, "no cleaner child process appeared within 30 s"
        data = str(tmp_path / "data")
        while not _reading(children[0], data) and time.monotonic() < deadline:
            time.sleep(0.01)  # started up, past its parent check: into the pass
        assert _reading(children[0], data), "the cleaner's child never opened a segment"
        proc.kill()
        gone_by = time.monotonic() + 2
        while any(_alive(pid) for pid in children) and time.monotonic() < gone_by:
            time.sleep(0.01)
        assert not any(_alive(pid) for pid in children), "the cleaner's child outlived its broker"
        proc.start()
        values = {value for _, value in read_partition(proc.bootstrap, "kv")}
        missing = [key for key, value in latest.items() if value not in values]
        assert not missing, f"latest values lost for {missing[:5]}"
    finally:
        proc.kill()
        for pid in children:  # an orphan, if the test failed
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
