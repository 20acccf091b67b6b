"""Broker settings: one typed object, defaults beside the fields; `validate()` names a conflict."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Literal

from kafkito.errors import KafkitoError

Durability = Literal["always", "interval"]


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
    """Request bytes held across all connections before reads pause."""
    max_connections: int = 10_000
    max_inflight_requests_per_connection: int = 64
    idle_timeout_ms: int = 10 * 60 * 1000
    durability: Durability = "always"
    flush_interval_ms: int = 1000
    retention_check_interval_ms: int = 5 * 60 * 1000
    log_segment_bytes: int = 1 << 30
    group_initial_rebalance_delay_ms: int = 3000
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
        if self.durability not in ("always", "interval"):
            raise KafkitoError(
                f"durability must be 'always' or 'interval', got {self.durability!r}"
            )

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
