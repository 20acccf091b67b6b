"""Redelivery against the emulator: a reader killed with SIGKILL loses nothing, and a
subscription's dead-letter policy moves a message its handler keeps failing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from pskit import make_topic, read_until

from kafkito.pubsub import Message, Reader, Writer
from kafkito.testing.pubsub_emulator import PubSubEmulator

CHILD = textwrap.dedent(
    """
    import sys, time
    from kafkito.pubsub import Reader

    def handle(value, headers):
        time.sleep(0.05)
        print(value.decode(), flush=True)  # printed after the handler's work, before the ack

    config = {"subscription": {"ack_deadline": "10s"}}  # leases of 10 s: back 10 s after a crash
    Reader("crash-sub", config, project_id=sys.argv[1]).read(handle)
    """
)


def test_reader_killed_with_sigkill_loses_nothing(
    project: str, pubsub_emulator: PubSubEmulator
) -> None:
    make_topic(project, "crash", subscription="crash-sub", ack_deadline_seconds=10)
    values = {f"v{i}" for i in range(40)}
    with Writer("crash", project_id=project) as writer:
        writer.write_many(sorted(values))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, project],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    handled_by_child: list[str] = []
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 60
        while len(handled_by_child) < 5 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            handled_by_child.append(line.strip())
        assert len(handled_by_child) == 5, child.stderr.read() if child.stderr else ""
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert child.stdout is not None
        handled_by_child += [line.strip() for line in child.stdout.read().splitlines()]
    # what the dead reader held comes back when its ack deadline (10 s) passes; a message it
    # handled may come back too (killed before its ack went out): at-least-once
    missing = values - set(handled_by_child)
    seen: set[str] = set()
    with Reader("crash-sub", project_id=project) as reader:

        def handle(value: bytes, headers: dict[str, str]) -> None:
            seen.add(value.decode())
            if missing <= seen:
                reader.stop()

        timer = threading.Timer(60, reader.stop)  # a hang guard
        timer.start()
        reader.read(handle, handle_signals=False)
        timer.cancel()
    assert missing <= seen, f"lost after kill -9: {sorted(missing - seen)}"


def test_dead_letter_policy_moves_a_message_that_keeps_failing(project: str) -> None:
    """The emulator serves dead-letter policies: delivery_attempt counts the deliveries and
    after max_delivery_attempts the message moves, with Pub/Sub's source attributes."""
    make_topic(project, "dead", subscription="dead-watch")
    make_topic(
        project,
        "work",
        subscription="work-sub",
        dead_letter_policy={
            "dead_letter_topic": f"projects/{project}/topics/dead",
            "max_delivery_attempts": 5,
        },
    )
    with Writer("work", project_id=project) as writer:
        writer.write(b"poison", {"id": "7"})
    attempts: list[int | None] = []

    def fail(message: Message) -> None:
        attempts.append(message.delivery_attempt)
        raise ValueError("cannot handle")

    with Reader("work-sub", project_id=project) as reader:
        for _ in range(5):
            timer = threading.Timer(30, reader.stop)
            timer.start()
            with pytest.raises(ValueError, match="cannot handle"):
                reader.read_message(fail, handle_signals=False)
            timer.cancel()
        assert attempts == [1, 2, 3, 4, 5]
        # The emulator moves the message when it would deliver it a 6th time, so work-sub's
        # stream stays open (reader) while the dead-letter topic is watched.
        with Reader("dead-watch", project_id=project) as watcher:
            [(value, headers)] = read_until(watcher, 1)
    assert value == b"poison" and headers["id"] == "7"
    assert headers["CloudPubSubDeadLetterSourceSubscription"] == "work-sub"
    assert headers["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
