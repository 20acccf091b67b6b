"""The Apache Kafka launcher itself: `python -m kafkito.testing.apache_kafka`, a node killed and
started again, and the one-line error when java is missing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gradkit import create_topic, wait_for

from kafkito.testing.apache_kafka import ApacheKafka, ApacheKafkaError
from kafkito.testing.brokers import free_port


def java_processes_under(path: Path) -> list[int]:
    """Pids of live processes whose command line mentions `path` (the nodes' JVMs)."""
    found = []
    needle = str(path).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and b"java" in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def free_port_pair() -> int:
    """A port P with P+1 free too (the second node takes P+1)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_command_prints_one_bootstrap_line_and_stops_every_jvm(
    tmp_path: Path, signum: signal.Signals
) -> None:
    port = free_port_pair()
    data = tmp_path / "kafka"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kafkito.testing.apache_kafka",
            "--port",
            str(port),
            "--brokers",
            "2",
            "--data-dir",
            str(data),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the command prints it once every node serves
        if not first:  # it ended without the line: its stderr says why (wait for all of it)
            _, err = proc.communicate(timeout=60)
            raise AssertionError(f"no bootstrap line; exit {proc.returncode}; stderr:\n{err}")
        assert first == f"bootstrap: 127.0.0.1:{port},127.0.0.1:{port + 1}\n", first
        assert len(java_processes_under(data)) == 2
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in java_processes_under(data):  # a failed test leaves no JVM behind either
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert out == "", f"more output after the bootstrap line: {out!r}"
    assert java_processes_under(data) == []


def test_a_killed_node_is_started_again_and_rejoins(apache_kafka: ApacheKafka) -> None:
    """On the session cluster: node 3 killed, started on its data, back in every ISR."""
    topic = f"rejoin-{time.monotonic_ns()}"
    create_topic(apache_kafka.bootstrap, topic, partitions=2)
    node = 3
    try:
        apache_kafka.kill(node)
        assert not apache_kafka.node(node).running
        wait_for(lambda: node not in apache_kafka.listed_brokers(), what="node 3 fenced")
    finally:
        apache_kafka.start_broker(node)
    assert apache_kafka.listed_brokers() == {1, 2, 3}

    def back_in_sync() -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": apache_kafka.bootstrap})
        meta = admin.list_topics(topic, timeout=10).topics[topic]
        return all(node in p.isrs for p in meta.partitions.values())

    wait_for(back_in_sync, what="node 3 back in the ISR of every partition")


def test_a_clear_one_line_error_when_java_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # nothing on PATH: no java
    done = subprocess.run(
        [sys.executable, "-m", "kafkito.testing.apache_kafka", "--brokers", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: java not found"), (
        done.stderr
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ApacheKafkaError) as failed:
        ApacheKafka(brokers=1, data_dir=tmp_path / "d").start()
    assert "\n" not in str(failed.value) and "java" in str(failed.value)
