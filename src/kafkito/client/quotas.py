"""Client quotas: list, set and remove them on any Kafka (DescribeClientQuotas/AlterClientQuotas).

librdkafka has no client-quota API (confluent-kafka 2.16 neither), so this module speaks the two
requests itself over one `kafkito.client.wire.BrokerConnection` to the first bootstrap broker
(any broker answers both; Kafka forwards the change to its controller), with the same
security settings as the rest of kafkito.client (SASL PLAIN only, see that module).

Quota values are floats (bytes per second for the byte rates, percent for
request_percentage); an entity is a mapping {"user": name, "client-id": name} where None is the
default entity of its type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafkito.client.errors import ConfigError, InvalidRequestError
from kafkito.client.wire import BrokerConnection

__all__ = ["QuotaEntry", "alter_quotas", "describe_quotas"]

DESCRIBE, ALTER = 48, 49
ENTITY_TYPES = ("user", "client-id", "ip")


@dataclass(frozen=True, slots=True)
class QuotaEntry:
    """One quota entity and its values."""

    entity: dict[str, str | None]
    values: dict[str, float]


def _check_entity(entity: Mapping[str, str | None]) -> None:
    if not entity:
        raise ConfigError("a quota entity needs a user, a client id or an ip")
    for entity_type in entity:
        if entity_type not in ENTITY_TYPES:
            raise ConfigError(f"unknown entity type {entity_type!r} (one of {ENTITY_TYPES})")


def describe_quotas(
    settings: Mapping[str, Any],
    match: Mapping[str, str | None] | None = None,
    *,
    timeout_s: float = 10.0,
) -> list[QuotaEntry]:
    """Quota entries; `match` keeps those with these exact names (None: the default entity).

    Raises BrokerUnreachableError, AuthenticationError, InvalidRequestError (refused filter).
    """
    components = [
        {"entity_type": t, "match_type": 1 if n is None else 0, "match": n}
        for t, n in (match or {}).items()
    ]
    connection = BrokerConnection(settings, timeout_s, client_id="kafkito-quotas")
    try:
        answer = connection.request(DESCRIBE, 1, {"components": components, "strict": False})
    finally:
        connection.close()
    if answer.error_code != 0:
        raise InvalidRequestError(f"describe client quotas: {answer.error_message}")
    return sorted(
        (
            QuotaEntry(
                {e.entity_type: e.entity_name for e in entry.entity},
                {v.key: float(v.value) for v in entry.values},
            )
            for entry in answer.entries
        ),
        key=lambda q: sorted((t, n or "") for t, n in q.entity.items()),
    )


def alter_quotas(
    settings: Mapping[str, Any],
    entity: Mapping[str, str | None],
    values: Mapping[str, float | None],
    *,
    validate_only: bool = False,
    timeout_s: float = 10.0,
) -> None:
    """Set (a number) or remove (None) quota values of one entity.

    Raises ConfigError (bad entity), InvalidRequestError (the broker refused, with its
    message), BrokerUnreachableError, AuthenticationError.
    """
    _check_entity(entity)
    body = {
        "entries": [
            {
                "entity": [{"entity_type": t, "entity_name": n} for t, n in entity.items()],
                "ops": [
                    {"key": k, "value": 0.0 if v is None else float(v), "remove": v is None}
                    for k, v in values.items()
                ],
            }
        ],
        "validate_only": validate_only,
    }
    connection = BrokerConnection(settings, timeout_s, client_id="kafkito-quotas")
    try:
        answer = connection.request(ALTER, 1, body)
    finally:
        connection.close()
    for entry in answer.entries:
        if entry.error_code != 0:
            raise InvalidRequestError(f"client quotas refused: {entry.error_message}")
