"""Apache Kafka itself, on loopback: the reference broker our behaviour is checked against.

    with ApacheKafka(brokers=3) as kafka:          # three KRaft nodes, each its own JVM
        Writer("clicks", brokers=kafka.bootstrap).write(b"hi")
        kafka.kill(1)                               # SIGKILL node 1; leadership moves
        kafka.start_broker(1)                       # back on the same ports and data

Theory of operation
-------------------
*Jars.* No tarball and no Docker: the broker's jars are resolved from Maven Central by a
generated pom (`org.apache.kafka:kafka_2.13` at `KAFKA_VERSION`, plus log4j2 as the logging
backend, as the distribution ships it) with `mvn dependency:copy-dependencies` into a cache
directory, once; later runs find the `.complete` marker and start at once. With `KAFKA_HOME`
set, its `libs/` is used instead and nothing is resolved.

*Nodes.* Every node runs in KRaft combined mode (`process.roles=broker,controller`), so a
cluster of N is N JVMs and N controller voters; SIGKILL of one node of three keeps a quorum.
Each node has its own directory under `data_dir` (`node-<id>/`: its properties, its log4j2
file, `data/` and `server.log`), formatted once with Kafka's own storage tool (all nodes of a
cluster share one cluster id), so a node can be killed and started again on its data.

*Readiness.* A node counts as up when the cluster's Metadata (asked over the wire with
`kafkito.testing.wire`) lists it; `start()` returns when all nodes are listed, which in KRaft
means every broker is registered and unfenced, so topics of replication factor N can be made.

*Settings that differ from Kafka's defaults*, each so that tests start and fail over quickly
on a 2-core machine (everything else is Kafka's default; `broker_configs` overrides any):

    group.initial.rebalance.delay.ms = 0        (3000) a first consumer joins at once
    offsets.topic.num.partitions = 5            (50)   fewer internal partitions to create
    transaction.state.log.num.partitions = 5    (50)   the same for transactions
    broker.heartbeat.interval.ms = 500          (2000) a killed node is noticed ...
    broker.session.timeout.ms = 3000            (9000) ... and fenced within ~3 s, so
                                                       leadership moves within ~3 s
    offsets/transaction log replication factor, transaction.state.log.min.isr, and
    default.replication.factor = min(3, N)      (3, 2, 1) a cluster of one can run
    min.insync.replicas = 2 when N >= 3         (1)    acks=all means two copies

*Security (off by default).* `sasl_users` adds a SASL_PLAINTEXT listener (PLAIN, those
users and passwords) beside the PLAINTEXT one, its address in `sasl_bootstrap`; `authorizer`
turns on Kafka's StandardAuthorizer (`authorizer.class.name`) with `super_users`. The PLAINTEXT
and CONTROLLER listeners stay for the nodes' own traffic and the readiness check, so their
principal, User:ANONYMOUS, is made a super user too: tests connect to `sasl_bootstrap`.

The JVMs get small heaps (`heap_mb`, 384 MB by default) and the serial collector; `fast_jit`
(the default) stops the JIT at tier 1, which starts a node in about half the CPU time and
makes it slower under load: benchmarks turn it off.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from kafkito.errors import KafkitoError
from kafkito.testing.brokers import free_port

__all__ = [
    "KAFKA_SERVER_JVM",
    "KAFKA_VERSION",
    "ApacheKafka",
    "ApacheKafkaError",
    "KafkaNode",
    "resolve_jars",
]

KAFKA_VERSION = os.environ.get("KAFKITO_KAFKA_VERSION", "4.1.1")
"""The Apache Kafka release we test against (KAFKITO_KAFKA_VERSION overrides it)."""

KAFKA_SERVER_JVM = (
    "-Xmx1G",
    "-Xms1G",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
"""The JVM options of Kafka's own kafka-server-start.sh (heap) and kafka-run-class.sh (GC)."""

_LOG4J_VERSION = "2.24.3"
_SLF4J_VERSION = "2.0.16"
_METADATA_API, _METADATA_VERSION = 3, 12
_LOG_TAIL_CHARS = 4000


class ApacheKafkaError(KafkitoError):
    """Apache Kafka could not be resolved or started; the message says why in one line."""


def _cache_root() -> Path:
    configured = os.environ.get("KAFKITO_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kafkito"


def _pom(version: str) -> str:
    deps = [
        ("org.apache.kafka", "kafka_2.13", version),
        ("org.slf4j", "slf4j-api", _SLF4J_VERSION),
        ("org.apache.logging.log4j", "log4j-slf4j2-impl", _LOG4J_VERSION),
        ("org.apache.logging.log4j", "log4j-core", _LOG4J_VERSION),
    ]
    rows = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.kafkito</groupId>
  <artifactId>apache-kafka-runtime</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{rows}
  </dependencies>
</project>
"""


def resolve_jars(version: str = KAFKA_VERSION, *, cache_dir: Path | None = None) -> Path:
    """The directory of Apache Kafka's jars: `$KAFKA_HOME/libs`, or resolved by Maven (cached).

    Raises ApacheKafkaError when java is missing, or mvn is missing and nothing is cached,
    or Maven fails (its output's tail is in the message).
    """
    if shutil.which("java") is None:
        raise ApacheKafkaError("java not found: install a JDK (17 or newer) to run Apache Kafka")
    home = os.environ.get("KAFKA_HOME")
    if home:
        libs = Path(home) / "libs"
        if not libs.is_dir():
            raise ApacheKafkaError(f"KAFKA_HOME={home} has no libs/ directory")
        return libs
    target = (cache_dir or _cache_root() / "apache-kafka") / version
    libs = target / "libs"
    complete = target / ".complete"
    if complete.exists():
        return libs
    if shutil.which("mvn") is None:
        raise ApacheKafkaError(
            "mvn not found: install Maven to resolve Apache Kafka's jars, or set KAFKA_HOME"
        )
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one resolver per cache, across processes
        if complete.exists():
            return libs
        (target / "pom.xml").write_text(_pom(version))
        shutil.rmtree(libs, ignore_errors=True)
        done = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(target / "pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-_LOG_TAIL_CHARS:]
            raise ApacheKafkaError(
                f"mvn could not resolve org.apache.kafka:kafka_2.13:{version}:\n{tail}"
            )
        complete.write_text(version + "\n")
    return libs


def _properties(values: Mapping[str, object]) -> str:
    return "".join(f"{name}={value}\n" for name, value in values.items())


_LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {path}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


@dataclass
class KafkaNode:
    """One KRaft node (broker and controller) in its own JVM."""

    node_id: int
    port: int
    controller_port: int
    home: Path
    proc: subprocess.Popen[bytes] | None = None
    sasl_port: int | None = None
    """The SASL_PLAINTEXT listener's port, when the cluster has `sasl_users`."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The end of this node's server log and console output, for failure messages."""
        parts = []
        for path in (self.log_path, self.home / "stdout.log"):
            if path.exists():
                text = path.read_text(errors="replace")
                if text.strip():
                    parts.append(f"--- {path} ---\n{text[-chars:]}")
        return "\n".join(parts) or f"(node {self.node_id} wrote no log)"


@dataclass
class ApacheKafka:
    """A real Apache Kafka cluster of `brokers` KRaft nodes on 127.0.0.1 (context manager).

    `port` fixes the first node's client port (the others take the next ones); by default
    every port is a free one. `data_dir` keeps the nodes' data and logs (a temporary
    directory, removed on stop, when not given). `broker_configs` adds or overrides
    server.properties entries on every node. `jvm_args` replaces the broker JVMs' heap, GC
    and JIT options (benchmarks pass `KAFKA_SERVER_JVM`, the distribution's own).
    `sasl_users` (name -> password) adds a SASL_PLAINTEXT (PLAIN) listener, `sasl_oauthbearer`
    OAUTHBEARER with unsecured JWTs on it (Kafka's development validator); `authorizer` turns
    on the StandardAuthorizer with `super_users` (principals such as "User:admin").
    """

    brokers: int = 1
    port: int | None = None
    data_dir: Path | str | None = None
    version: str = KAFKA_VERSION
    heap_mb: int = 384
    fast_jit: bool = True
    broker_configs: Mapping[str, object] = field(default_factory=dict)
    jvm_args: Sequence[str] | None = None
    start_timeout_s: float = 90.0
    sasl_users: Mapping[str, str] | None = None
    sasl_oauthbearer: bool = False
    authorizer: bool = False
    super_users: Sequence[str] = ()
    nodes: list[KafkaNode] = field(default_factory=list, init=False)
    cluster_id: str = field(default="", init=False)
    serving_after_s: float = field(default=0.0, init=False)
    """Seconds from spawning the nodes (storage already formatted) until all served."""
    _libs: Path | None = field(default=None, init=False)
    _temp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.brokers < 1:
            raise ValueError(f"brokers must be at least 1, got {self.brokers}")

    # --- addresses -----------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """ "127.0.0.1:P1,127.0.0.1:P2,..." for every node."""
        return ",".join(node.address for node in self.nodes)

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_PLAINTEXT (PLAIN) listeners, "127.0.0.1:S1,..." (needs `sasl_users`)."""
        if self.sasl_users is None:
            raise ApacheKafkaError("this cluster has no SASL listener: give sasl_users")
        return ",".join(f"127.0.0.1:{node.sasl_port}" for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        """The node with this id (ids are 1..brokers)."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(f"no node {node_id}: nodes are 1..{self.brokers}")

    # --- life cycle ----------------------------------------------------------------------

    def __enter__(self) -> ApacheKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ApacheKafka:
        """Resolve the jars, format every node's storage, start them, wait until all serve."""
        self._libs = resolve_jars(self.version)
        if self.data_dir is None:
            self._temp = tempfile.TemporaryDirectory(prefix="apache-kafka-")
            root = Path(self._temp.name)
        else:
            root = Path(self.data_dir)
        root.mkdir(parents=True, exist_ok=True)
        self._lay_out(root)
        try:
            self._format_all()
            spawned = time.monotonic()
            for node in self.nodes:
                self._spawn(node)
            self._wait_listed({node.node_id for node in self.nodes})
            self.serving_after_s = time.monotonic() - spawned
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop every node (SIGTERM, then SIGKILL after `timeout_s`); remove a temp data dir."""
        for node in self.nodes:
            if node.running:
                assert node.proc is not None
                node.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()
                node.proc = None
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None

    def kill(self, node_id: int) -> None:
        """SIGKILL one node: no controlled shutdown, its leaderships move after the session."""
        node = self.node(node_id)
        if node.proc is not None:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGKILL)
            node.proc.wait()
            node.proc = None

    def stop_broker(self, node_id: int, timeout_s: float = 30.0) -> None:
        """SIGTERM one node: a controlled shutdown that hands its leaderships over first."""
        node = self.node(node_id)
        if node.proc is not None:
            node.proc.send_signal(signal.SIGTERM)
            try:
                node.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
            node.proc = None

    def start_broker(self, node_id: int) -> None:
        """Start a stopped or killed node again on its data; returns when the cluster lists it."""
        node = self.node(node_id)
        if node.running:
            return
        self._spawn(node)
        self._wait_listed({node_id})

    def listed_brokers(self) -> set[int]:
        """The node ids the cluster's Metadata lists now (registered and unfenced brokers)."""
        from kafkito.testing.wire import WireClient

        for node in self.nodes:
            if not node.running:
                continue
            try:
                with WireClient(node.address, timeout_s=2.0) as client:
                    answer = client.request(
                        _METADATA_API,
                        _METADATA_VERSION,
                        {
                            "topics": [],
                            "allow_auto_topic_creation": False,
                            "include_topic_authorized_operations": False,
                        },
                    )
            except (OSError, AssertionError):
                continue
            return {int(broker.node_id) for broker in answer.brokers}
        return set()

    def logs(self) -> str:
        """Every node's log tail, for a failure message."""
        return "\n".join(node.log_tail() for node in self.nodes)

    # --- internals -----------------------------------------------------------------------

    def _lay_out(self, root: Path) -> None:
        ports = self._client_ports()
        self.cluster_id = _random_cluster_id()
        self.nodes = [
            KafkaNode(i + 1, ports[i], free_port(), root / f"node-{i + 1}")
            for i in range(self.brokers)
        ]
        if self.sasl_users is not None:
            for node in self.nodes:
                node.sasl_port = free_port()
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        copies = min(3, self.brokers)
        for node in self.nodes:
            node.home.mkdir(parents=True, exist_ok=True)
            settings: dict[str, object] = {
                "process.roles": "broker,controller",
                "node.id": node.node_id,
                "controller.quorum.voters": voters,
                "listeners": (
                    f"PLAINTEXT://127.0.0.1:{node.port},"
                    f"CONTROLLER://127.0.0.1:{node.controller_port}"
                ),
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
                "controller.listener.names": "CONTROLLER",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "log.dirs": node.home / "data",
                "group.initial.rebalance.delay.ms": 0,
                "offsets.topic.num.partitions": 5,
                "transaction.state.log.num.partitions": 5,
                "broker.heartbeat.interval.ms": 500,
                "broker.session.timeout.ms": 3000,
                "offsets.topic.replication.factor": copies,
                "transaction.state.log.replication.factor": copies,
                "transaction.state.log.min.isr": min(2, copies),
                "default.replication.factor": copies,
                "min.insync.replicas": 2 if self.brokers >= 3 else 1,
                **self._security(node),
                **self.broker_configs,
            }
            (node.home / "server.properties").write_text(_properties(settings))
            (node.home / "log4j2.properties").write_text(_LOG4J2.format(path=node.log_path))

    def _security(self, node: KafkaNode) -> dict[str, object]:
        """server.properties entries of the SASL listener and the authorizer (none by default)."""
        settings: dict[str, object] = {}
        if self.sasl_users is not None:
            users = " ".join(
                f'user_{name}="{password}"' for name, password in self.sasl_users.items()
            )
            settings |= {
                "listeners": (
                    f"PLAINTEXT://127.0.0.1:{node.port},"
                    f"CONTROLLER://127.0.0.1:{node.controller_port},"
                    f"SASL_PLAINTEXT://127.0.0.1:{node.sasl_port}"
                ),
                "advertised.listeners": (
                    f"PLAINTEXT://127.0.0.1:{node.port},SASL_PLAINTEXT://127.0.0.1:{node.sasl_port}"
                ),
                "listener.security.protocol.map": (
                    "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
                ),
                "sasl.enabled.mechanisms": "PLAIN,OAUTHBEARER"
                if self.sasl_oauthbearer
                else "PLAIN",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                    f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};"
                ),
            }
            if self.sasl_oauthbearer:  # Kafka's default: the unsecured-JWT validator
                settings["listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
                )
        if self.authorizer:
            settings |= {
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users": ";".join(["User:ANONYMOUS", *self.super_users]),
            }
        return settings

    def _client_ports(self) -> list[int]:
        if self.port is None:
            return [free_port() for _ in range(self.brokers)]
        return [self.port + i for i in range(self.brokers)]

    def _java(
        self, node: KafkaNode, main: str, *args: str, heap_mb: int, server: bool = False
    ) -> list[str]:
        assert self._libs is not None
        if server and self.jvm_args is not None:
            jvm = list(self.jvm_args)
        else:
            jvm = [f"-Xmx{heap_mb}m", "-Xms64m", "-XX:+UseSerialGC"]
            if self.fast_jit:
                jvm.append("-XX:TieredStopAtLevel=1")
        jvm += [
            f"-Dlog4j2.configurationFile={node.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={node.home}",
        ]
        return ["java", *jvm, "-cp", f"{self._libs}/*", main, *args]

    def _format_all(self) -> None:
        """Kafka's storage tool on every node at once (one JVM each, ~3 s)."""
        if all((node.home / "data" / "meta.properties").exists() for node in self.nodes):
            return
        running = [
            (
                node,
                subprocess.Popen(
                    self._java(
                        node,
                        "kafka.tools.StorageTool",
                        "format",
                        "--ignore-formatted",
                        # one argument: an id may start with "-" (1 in 64), which argparse
                        # would take for an option when given as a separate argument
                        f"--cluster-id={self.cluster_id}",
                        "-c",
                        str(node.home / "server.properties"),
                        heap_mb=256,
                    ),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                ),
            )
            for node in self.nodes
        ]
        for node, proc in running:
            output, _ = proc.communicate(timeout=self.start_timeout_s)
            if proc.returncode != 0:
                text = output.decode(errors="replace")[-_LOG_TAIL_CHARS:]
                raise ApacheKafkaError(f"formatting node {node.node_id} failed:\n{text}")

    def _spawn(self, node: KafkaNode) -> None:
        with open(node.home / "stdout.log", "ab") as out:
            node.proc = subprocess.Popen(
                self._java(
                    node,
                    "kafka.Kafka",
                    str(node.home / "server.properties"),
                    heap_mb=self.heap_mb,
                    server=True,
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal reaches us, not the JVMs
            )

    def _wait_listed(self, wanted: set[int]) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            dead = [n for n in self.nodes if n.node_id in wanted and not n.running]
            if dead:
                node = dead[0]
                raise ApacheKafkaError(
                    f"Apache Kafka node {node.node_id} exited during start:\n{node.log_tail()}"
                )
            if wanted <= self.listed_brokers():
                return
            if time.monotonic() > deadline:
                raise ApacheKafkaError(
                    f"Apache Kafka nodes {sorted(wanted)} not serving after "
                    f"{self.start_timeout_s:.0f} s:\n{self.logs()}"
                )
            time.sleep(0.2)


def _random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (as the tool's).

    Never one starting with '-' (1 in 64 would): the storage tool's argument parser takes it
    for an option and formatting fails; Kafka's own Uuid.randomUuid skips those too.
    """
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m kafkito.testing.apache_kafka --brokers N --port P --data-dir D`.

    Prints `bootstrap: 127.0.0.1:P,...` once every node serves, then runs until SIGTERM or
    SIGINT and stops every node.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m kafkito.testing.apache_kafka",
        description="Run a real Apache Kafka cluster (KRaft) on 127.0.0.1 until stopped.",
    )
    parser.add_argument("--brokers", type=int, default=1, help="number of nodes (default 1)")
    parser.add_argument("--port", type=int, default=None, help="first node's port (free)")
    parser.add_argument("--data-dir", default=None, help="keep data and logs here (temporary)")
    parser.add_argument("--version", default=KAFKA_VERSION, help=f"Kafka ({KAFKA_VERSION})")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a server.properties entry for every node (repeatable)",
    )
    parser.add_argument(
        "--resolve-only", action="store_true", help="resolve and cache the jars, then exit"
    )
    args = parser.parse_args(argv)
    if args.resolve_only:
        try:
            print(f"jars: {resolve_jars(args.version)}", flush=True)
        except ApacheKafkaError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.brokers < 1:
        parser.error("--brokers must be at least 1")
    configs: dict[str, object] = {}
    for item in args.config:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--config takes KEY=VALUE, got {item!r}")
        configs[name] = value
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    kafka = ApacheKafka(
        brokers=args.brokers,
        port=args.port,
        data_dir=args.data_dir,
        version=args.version,
        broker_configs=configs,
    )
    try:
        kafka.start()
    except ApacheKafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"bootstrap: {kafka.bootstrap}", flush=True)
        while not stopping:
            time.sleep(0.2)
            for node in kafka.nodes:
                if not node.running:
                    print(f"error: node {node.node_id} exited:\n{node.log_tail()}", file=sys.stderr)
                    return 1
    finally:
        with contextlib.suppress(Exception):
            kafka.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
