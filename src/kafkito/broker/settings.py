"""Broker settings: one typed object, defaults beside the fields; `validate()` names a conflict."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Literal

from kafkito.errors import KafkitoError

Durability = Literal["always", "interval"]
SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"]
SECURITY_PROTOCOLS: tuple[SecurityProtocol, ...] = (
    "PLAINTEXT",
    "SASL_PLAINTEXT",
    "SSL",
    "SASL_SSL",
)
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
OAUTHBEARER = "OAUTHBEARER"
"""Unsecured JWTs, for development (broker/auth/oauthbearer.py): never on by default."""
KNOWN_SASL_MECHANISMS = (*SASL_MECHANISMS, OAUTHBEARER)


@dataclass(slots=True)
class BrokerSettings:
    """Everything `kafkito broker` and `kafkito.Broker` can be told."""

    host: str = "127.0.0.1"
    """Address to listen on; loopback by default (security default)."""
    port: int = 9092
    """TCP port; 0 picks a free one, and the bound port is advertised."""
    data_dir: str = "./.kafkito/data"
    advertised_host: str | None = None
    """Host put in Metadata; defaults to the listen host (0.0.0.0 advertises 127.0.0.1)."""
    node_id: int = 0
    auto_create_topics: bool = True
    num_partitions: int = 1
    message_max_bytes: int = 1048588
    max_frame_bytes: int = 100 * 1024 * 1024
    """socket.request.max.bytes: larger frames close the connection before allocation."""
    max_inflight_bytes: int = 256 * 1024 * 1024
    """Received request bytes held across all connections before reads pause; counted as bytes
    arrive, never from a declared size (B23)."""
    max_connections: int = 10_000
    """Open connections; one more is accepted and closed at once (B25)."""
    max_connections_per_ip: int = 1_000
    """Open connections from one client address (Kafka's max.connections.per.ip)."""
    max_inflight_requests_per_connection: int = 64
    idle_timeout_ms: int = 10 * 60 * 1000
    """connections.max.idle.ms: a connection with no request for this long is closed."""
    request_read_timeout_ms: int = 30_000
    """A request must arrive whole within this once its first byte has (slowloris, B24)."""
    response_write_timeout_ms: int = 30_000
    """A response must be taken by the peer within this (a client that never reads)."""
    # -- security (RELIABILITY §2.3) -------------------------------------------------------
    security_protocol: SecurityProtocol = "PLAINTEXT"
    """PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL, as Kafka's listener security protocols."""
    sasl_mechanisms: tuple[str, ...] = SASL_MECHANISMS
    """Mechanisms offered in SaslHandshake, a subset of SCRAM-SHA-512, SCRAM-SHA-256, PLAIN and
    OAUTHBEARER (unsecured JWTs, development only: anyone may claim any principal)."""
    sasl_users_file: str | None = None
    """The SCRAM credential store (JSON, mode 0600; `kafkito users` manages it)."""
    sasl_max_receive_bytes: int = 512 * 1024
    """sasl.server.max.receive.size: frame cap before authentication (S3)."""
    auth_timeout_ms: int = 10_000
    """A SASL connection must authenticate within this after connecting (TLS handshake included)."""
    connections_max_reauth_ms: int = 0
    """connections.max.reauth.ms (KIP-368): a SASL session lasts this long, then the client must
    re-authenticate on its connection or have it closed; 0 (Kafka's default): forever."""
    auth_failure_delay_ms: int = 100
    """connection.failed.authentication.delay.ms: a failed login is answered after this."""
    ssl_certfile: str | None = None
    """PEM certificate chain of the broker (SSL, SASL_SSL)."""
    ssl_keyfile: str | None = None
    """PEM private key of the broker; may be inside ssl_certfile."""
    ssl_cafile: str | None = None
    """PEM CA bundle; when set, clients must present a certificate signed by it (mutual TLS)."""
    tls_handshake_timeout_ms: int = 10_000
    authorizer: Literal["none", "acl"] = "none"
    """"acl": check every request against ACLs (Kafka's StandardAuthorizer); "none": allow all."""
    super_users: tuple[str, ...] = ()
    """super.users: principals (`User:admin`) allowed everything, whatever the ACLs say."""
    allow_everyone_if_no_acl_found: bool = False
    """allow.everyone.if.no.acl.found: a resource no ACL applies to is open to everyone."""
    durability: Durability = "always"
    fsync_on_loop: bool = True
    """Let small rounds of fsyncs run on the event loop's thread while the disk is fast (no
    thread hand-offs: half the latency of a durable acknowledgement); False keeps every fsync
    in worker threads. $KAFKITO_FSYNC_INLINE=0 turns it off too (storage/durability.py)."""
    flush_interval_ms: int = 1000
    """fsync period of logs that do not sync on ack (durability=interval): on power loss the
    last interval may be lost, never on a crash of the process alone."""
    recovery_checkpoint_interval_ms: int = 1000
    """How often the recovery point is checkpointed: after an unclean stop only what was
    written since is scanned."""
    retention_check_interval_ms: int = 5 * 60 * 1000
    log_cleaner_enable: bool = True
    """Run the log cleaner for topics with `compact` in cleanup.policy (log.cleaner.enable)."""
    log_cleaner_backoff_ms: int = 15_000
    """Sleep between looks for a log to clean when none was due (log.cleaner.backoff.ms)."""
    log_cleaner_io_max_bytes_per_second: float = float("inf")
    """Cleaner reads plus writes per second (log.cleaner.io.max.bytes.per.second)."""
    log_cleaner_dedupe_buffer_bytes: int = 128 << 20
    """Memory for the cleaner's key -> offset map (log.cleaner.dedupe.buffer.size)."""
    log_cleaner_in_process: bool = True
    """Run each cleaning pass in a child process (storage.cleaner_process), so that the
    broker's event loop never waits for the GIL while a pass scans records; False runs it in a
    worker thread of the broker (lower start cost, worse produce latency while cleaning)."""
    log_segment_bytes: int = 1 << 30
    group_initial_rebalance_delay_ms: int = 300
    """How long a group leaving Empty waits for more members before its first generation.
    Kafka's 3000 ms costs every single consumer 3 s at start-up; 0 makes consumers started
    together go through one rebalance per straggler, each paid at a heartbeat interval (up to
    3 s in librdkafka). 300 ms gathers a burst of consumers into one generation
    (bench/bench_groups.py, docs/benchmarks.md)."""
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    extra: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise KafkitoError naming the first bad setting."""
        if not 0 <= self.port <= 65535:
            raise KafkitoError(f"port {self.port} is outside 0..65535")
        if self.num_partitions < 1:
            raise KafkitoError(f"num_partitions must be at least 1, got {self.num_partitions}")
        if self.message_max_bytes < 64:
            raise KafkitoError(f"message_max_bytes {self.message_max_bytes} is too small")
        if self.max_frame_bytes < self.message_max_bytes:
            raise KafkitoError(
                f"max_frame_bytes {self.max_frame_bytes} is below message_max_bytes "
                f"{self.message_max_bytes}"
            )
        self._validate_limits()
        self._validate_security()
        if self.flush_interval_ms <= 0 or self.recovery_checkpoint_interval_ms <= 0:
            raise KafkitoError(
                f"flush_interval_ms ({self.flush_interval_ms}) and "
                f"recovery_checkpoint_interval_ms ({self.recovery_checkpoint_interval_ms}) "
                "must be positive"
            )
        if self.log_cleaner_backoff_ms < 1 or self.log_cleaner_dedupe_buffer_bytes < 1 << 16:
            raise KafkitoError(
                f"log_cleaner_backoff_ms ({self.log_cleaner_backoff_ms}) must be positive and "
                f"log_cleaner_dedupe_buffer_bytes ({self.log_cleaner_dedupe_buffer_bytes}) "
                "at least 65536"
            )
        if not self.log_cleaner_io_max_bytes_per_second > 0:
            raise KafkitoError(
                "log_cleaner_io_max_bytes_per_second must be positive, got "
                f"{self.log_cleaner_io_max_bytes_per_second}"
            )
        if self.durability not in ("always", "interval"):
            raise KafkitoError(
                f"durability must be 'always' or 'interval', got {self.durability!r}"
            )

    def _validate_limits(self) -> None:
        for name in (
            "max_inflight_bytes",
            "max_connections",
            "max_connections_per_ip",
            "max_inflight_requests_per_connection",
            "idle_timeout_ms",
            "request_read_timeout_ms",
            "response_write_timeout_ms",
            "sasl_max_receive_bytes",
            "auth_timeout_ms",
            "tls_handshake_timeout_ms",
        ):
            if getattr(self, name) < 1:
                raise KafkitoError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.connections_max_reauth_ms < 0:
            raise KafkitoError(
                f"connections_max_reauth_ms must be >= 0, got {self.connections_max_reauth_ms}"
            )
        if self.auth_failure_delay_ms < 0:
            raise KafkitoError(
                f"auth_failure_delay_ms must be >= 0, got {self.auth_failure_delay_ms}"
            )
        if self.max_inflight_bytes < self.max_frame_bytes:
            raise KafkitoError(
                f"max_inflight_bytes {self.max_inflight_bytes} is below max_frame_bytes "
                f"{self.max_frame_bytes}: one whole request must fit"
            )

    def _validate_security(self) -> None:
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise KafkitoError(
                f"security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"got {self.security_protocol!r}"
            )
        if self.sasl_enabled:
            unknown = [m for m in self.sasl_mechanisms if m not in KNOWN_SASL_MECHANISMS]
            if unknown or not self.sasl_mechanisms:
                raise KafkitoError(
                    "sasl_mechanisms must be a non-empty subset of "
                    f"{', '.join(KNOWN_SASL_MECHANISMS)}, "
                    f"got {', '.join(self.sasl_mechanisms) or 'none'}"
                )
            if not self.sasl_users_file:
                raise KafkitoError(
                    f"security_protocol {self.security_protocol} needs sasl_users_file"
                )
        if self.authorizer not in ("none", "acl"):
            raise KafkitoError(f"authorizer must be 'none' or 'acl', got {self.authorizer!r}")
        bad = [p for p in self.super_users if ":" not in p or not p.partition(":")[2]]
        if bad:
            raise KafkitoError(
                f"super user {bad[0]!r} is not a principal such as User:admin (type:name)"
            )
        if self.tls_enabled and not self.ssl_certfile:
            raise KafkitoError(f"security_protocol {self.security_protocol} needs ssl_certfile")

    @property
    def sasl_enabled(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def tls_enabled(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def advertised(self) -> str:
        if self.advertised_host:
            return self.advertised_host
        if self.host in ("0.0.0.0", "", "::"):
            return "127.0.0.1"
        if self.host == "localhost":
            return "127.0.0.1"  # librdkafka may resolve localhost to ::1 (KAFKA-NOTES P1)
        return self.host

    def is_loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    @property
    def data_path(self) -> str:
        return os.path.abspath(self.data_dir)
