"""Helpers shared by the client-library tests (imported by name: tests/client is on sys.path)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kafkito.broker.dispatch import advertised_versions

GROUP_APIS = {
    8,
    9,
    10,
    11,
    12,
    13,
    14,
}  # OffsetCommit/Fetch, FindCoordinator, Join/Heartbeat/Leave/Sync


def kafkito_serves_groups() -> bool:
    return {api_key for api_key, _lo, _hi in advertised_versions()} >= GROUP_APIS


@dataclass
class Cluster:
    """A running broker: its kind, address, and librdkafka settings that suit it in tests."""

    kind: str
    bootstrap: str
    groups: bool
    settings: dict[str, Any] = field(default_factory=dict)


# Tansu settles a group join only after about half the session timeout; a short one keeps the
# tests quick. The same settings are used on kafkito so that both legs run the same code.
FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
