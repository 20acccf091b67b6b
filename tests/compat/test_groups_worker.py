"""A group consumer in a child process, for any of the four clients, and the helpers around it.

Run as a script, it joins GROUP with LIB (ck = confluent-kafka, aio = aiokafka, kp =
kafka-python), and for every message prints a JSON line {"ev": "msg", "p", "o", "v"}, then
commits offset+1 synchronously and prints {"ev": "commit", "p", "o"} once the broker acked it
(or "commit_failed"). SIGTERM closes the consumer cleanly (LeaveGroup); SIGKILL is a crash. So the
parent knows, per partition, what was read and what was acknowledged as committed, which is what
the in-flight-window check needs. `kcat -G` members are driven the same way (KcatMember).

Imported by the group tests (this module holds no tests itself).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

SESSION_MS = 3000
HEARTBEAT_MS = 300


STUCK_JOIN_S = 2.0


def unstick_kafka_python(consumer: Any, since: float | None) -> float | None:
    """Work around a kafka-python 3.0.x bug that left a member out of the group for good
    (in CI against Apache Kafka, and 3 in 12 runs on a loaded machine; the client's code path
    is the same against any broker): the
    leader rejoins because its metadata moved, its join task runs the assignment (which makes
    `need_rejoin()` false) but `poll`'s timer expires before the task's result is taken; the
    next `poll` sees no rejoin needed and never applies the assignment, so the member stays
    REBALANCING, sends no heartbeat, is dropped by the broker, and every commit fails "not part
    of an active group". Seen in kafka-python's debug log: the SyncGroup answer arrives, then
    no "Setting newly assigned partitions" and no JoinGroup for 30 s. When a member has been
    in that state for STUCK_JOIN_S, ask for a rejoin, which is what the client would have done.
    Returns when the member was first seen stuck (None: it is not)."""
    from kafka.structs import MemberState

    coordinator = consumer._coordinator
    if coordinator.state is not MemberState.REBALANCING or coordinator.need_rejoin():
        return None
    now = time.monotonic()
    if since is None:
        return now
    if now - since >= STUCK_JOIN_S:
        coordinator.request_rejoin()
        return None
    return since


# -- the worker (child process) ------------------------------------------------------------


def _emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _run_ck(bootstrap: str, group: str, topic: str, reset: str, instance: str | None) -> None:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    assignor = os.environ.get("GROUPS_WORKER_ASSIGNOR", "range,roundrobin")

    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": reset,
        "enable.auto.commit": False,
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": HEARTBEAT_MS,
        "topic.metadata.refresh.interval.ms": 1000,
        "partition.assignment.strategy": assignor,
    }
    if instance:
        conf["group.instance.id"] = instance
    consumer = Consumer(conf)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    consumer.subscribe([topic])
    _emit(ev="ready")
    while not stop.is_set():
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        _emit(ev="msg", p=msg.partition(), o=msg.offset(), v=msg.value().decode())
        try:
            consumer.commit(
                offsets=[TopicPartition(topic, msg.partition(), msg.offset() + 1)],
                asynchronous=False,
            )
            _emit(ev="commit", p=msg.partition(), o=msg.offset() + 1)
        except KafkaException as exc:
            _emit(ev="commit_failed", p=msg.partition(), err=str(exc))
    consumer.close()
    _emit(ev="closed")


def _run_kp(bootstrap: str, group: str, topic: str, reset: str, instance: str | None) -> None:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset=reset,
        enable_auto_commit=False,
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        metadata_max_age_ms=1000,
        group_instance_id=instance,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    consumer.subscribe([topic])
    _emit(ev="ready")
    stuck_since: float | None = None
    while not stop.is_set():
        batches = consumer.poll(timeout_ms=200, max_records=1)
        stuck_since = unstick_kafka_python(consumer, stuck_since)
        for tp, records in batches.items():
            for r in records:
                _emit(ev="msg", p=tp.partition, o=r.offset, v=r.value.decode())
                try:
                    consumer.commit(
                        {
                            TopicPartition(topic, tp.partition): OffsetAndMetadata(
                                r.offset + 1, "", -1
                            )
                        }
                    )
                    _emit(ev="commit", p=tp.partition, o=r.offset + 1)
                except KafkaError as exc:
                    _emit(ev="commit_failed", p=tp.partition, err=repr(exc))
    consumer.close()
    _emit(ev="closed")


def _run_aio(bootstrap: str, group: str, topic: str, reset: str, instance: str | None) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError
    from aiokafka.structs import OffsetAndMetadata

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset=reset,
            enable_auto_commit=False,
            session_timeout_ms=SESSION_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            metadata_max_age_ms=1000,
            group_instance_id=instance,
        )
        await consumer.start()
        _emit(ev="ready")
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=1)
            for tp, records in batches.items():
                for r in records:
                    _emit(ev="msg", p=tp.partition, o=r.offset, v=r.value.decode())
                    try:
                        await consumer.commit(
                            {
                                TopicPartition(topic, tp.partition): OffsetAndMetadata(
                                    r.offset + 1, ""
                                )
                            }
                        )
                        _emit(ev="commit", p=tp.partition, o=r.offset + 1)
                    except KafkaError as exc:
                        _emit(ev="commit_failed", p=tp.partition, err=repr(exc))
        await consumer.stop()
        _emit(ev="closed")

    asyncio.run(main())


RUNNERS: dict[str, Callable[[str, str, str, str, str | None], None]] = {
    "ck": _run_ck,
    "kp": _run_kp,
    "aio": _run_aio,
}


# -- the parent's side -----------------------------------------------------------------------


class Member:
    """One consumer process and the events it printed."""

    def __init__(
        self,
        argv: list[str],
        parse: Callable[[str], dict[str, Any] | None],
        env: dict[str, str] | None = None,
    ) -> None:
        # The client's own log goes to a file, for the failure message of a test (log_tail).
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in _reap)
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
            env=env,
        )
        self.events: list[dict[str, Any]] = []
        self._parse = parse
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = self._parse(line)
            if event is not None:
                with self._lock:
                    self.events.append(event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["ev"] == kind]

    def values(self) -> list[str]:
        return [e["v"] for e in self.of("msg")]

    def last_commits(self) -> dict[int, int]:
        """Partition -> the last offset whose commit the broker acknowledged to this member."""
        done: dict[int, int] = {}
        for e in self.of("commit"):
            done[e["p"]] = max(done.get(e["p"], 0), e["o"])
        return done

    def terminate(self, timeout_s: float = 20.0) -> None:
        """SIGTERM: a clean close (commit, LeaveGroup)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reap()

    def kill(self) -> None:
        """SIGKILL: a crash; nothing is closed or left."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reap()

    def _reap(self) -> None:
        self._reader.join(5)
        self._log.close()

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the member wrote to stderr (its client's log), while it runs."""
        self._log.seek(0)
        return "".join(self._log.readlines()[-lines:])

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


def python_member(
    lib: str,
    bootstrap: str,
    group: str,
    topic: str,
    *,
    reset: str = "earliest",
    instance: str | None = None,
    assignor: str | None = None,
) -> Member:
    """A python-client member; `assignor` is librdkafka's partition.assignment.strategy (ck)."""
    argv = [sys.executable, __file__, lib, bootstrap, group, topic, reset, instance or ""]
    env = {**os.environ, "GROUPS_WORKER_ASSIGNOR": assignor} if assignor else None
    return Member(argv, lambda line: json.loads(line) if line.startswith("{") else None, env)


def kcat_member(bootstrap: str, group: str, topic: str) -> Member:
    """`kcat -G`: a balanced consumer (librdkafka 2.0.2, auto commit); prints 'p o value'."""
    argv = [
        "kcat",
        "-b",
        bootstrap,
        "-G",
        group,
        "-X",
        "auto.offset.reset=earliest",  # "-o beginning" would ignore the committed offsets
        "-u",
        "-q",
        "-f",
        "%p %o %s\\n",
        "-X",
        f"session.timeout.ms={SESSION_MS}",
        "-X",
        f"heartbeat.interval.ms={HEARTBEAT_MS}",
        "-X",
        "auto.commit.interval.ms=200",
        topic,
    ]

    def parse(line: str) -> dict[str, Any] | None:
        parts = line.strip().split(" ", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        return {"ev": "msg", "p": int(parts[0]), "o": int(parts[1]), "v": parts[2]}

    return Member(argv, parse)


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll `condition` until it is truthy; AssertionError naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


def decode_assignment(data: bytes) -> list[tuple[str, int]]:
    """ConsumerProtocolAssignment: version, [topic, [partition]], user data."""
    if len(data) < 6:
        return []
    pos = 2
    (n_topics,) = struct.unpack_from(">i", data, pos)
    pos += 4
    out = []
    for _ in range(max(n_topics, 0)):
        (name_len,) = struct.unpack_from(">h", data, pos)
        name = data[pos + 2 : pos + 2 + name_len].decode()
        pos += 2 + name_len
        (n_parts,) = struct.unpack_from(">i", data, pos)
        pos += 4
        for _ in range(n_parts):
            out.append((name, struct.unpack_from(">i", data, pos)[0]))
            pos += 4
    return out


def describe_group(bootstrap: str, group: str) -> tuple[str, dict[str, list[tuple[str, int]]]]:
    """(state, member id -> assigned partitions) from DescribeGroups v0 over a raw connection."""
    from kafkito.testing.wire import WireClient

    with WireClient(bootstrap) as client:
        answer = client.request(15, 0, {"groups": [group]})
    described = answer.groups[0]
    return described.group_state, {
        m.member_id: decode_assignment(bytes(m.member_assignment)) for m in described.members
    }


def stable_with(bootstrap: str, group: str, members: int, partitions: int) -> bool:
    """True when the group is Stable with `members` members sharing `partitions` partitions."""
    state, assigned = describe_group(bootstrap, group)
    if state != "Stable" or len(assigned) != members:
        return False
    owned = [tp for tps in assigned.values() for tp in tps]
    return len(owned) == partitions == len(set(owned))


def produce(bootstrap: str, topic: str, values: list[str], partitions: int) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, value in enumerate(values):
        producer.produce(topic, value=value.encode(), partition=i % partitions)
    assert producer.flush(20) == 0


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(20)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    lib, bootstrap_arg, group_arg, topic_arg, reset_arg, instance_arg = sys.argv[1:7]
    RUNNERS[lib](bootstrap_arg, group_arg, topic_arg, reset_arg, instance_arg or None)
