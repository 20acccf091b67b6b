"""Client quotas: list, set and remove them on any Kafka (DescribeClientQuotas/AlterClientQuotas).

librdkafka has no client-quota API (confluent-kafka 2.16 neither), so this module speaks the two
requests itself, encoded by kio, over one blocking connection to the first bootstrap broker
(any broker answers both; Kafka forwards the change to its controller). It takes the same
librdkafka settings as the rest of kafkito.client: PLAINTEXT and SSL (`ssl.ca.location`,
`enable.ssl.certificate.verification`), and SASL PLAIN on either. Other SASL mechanisms raise
ConfigError (SCRAM and OAUTHBEARER are left to a later change).

Quota values are floats (bytes per second for the byte rates, percent for
request_percentage); an entity is a mapping {"user": name, "client-id": name} where None is the
default entity of its type.
"""

from __future__ import annotations

import io
import socket
import ssl
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafkito.client.errors import (
    AuthenticationError,
    BrokerUnreachableError,
    ConfigError,
    InvalidRequestError,
)

__all__ = ["QuotaEntry", "alter_quotas", "describe_quotas"]

DESCRIBE, ALTER, SASL_HANDSHAKE, SASL_AUTHENTICATE = 48, 49, 17, 36
ENTITY_TYPES = ("user", "client-id", "ip")
MAX_ANSWER_BYTES = 100 << 20
"""A bound on one answer (librdkafka's receive.message.max.bytes)."""
_SIZE = struct.Struct(">i")


@dataclass(frozen=True, slots=True)
class QuotaEntry:
    """One quota entity and its values."""

    entity: dict[str, str | None]
    values: dict[str, float]


class _Connection:
    def __init__(self, settings: Mapping[str, Any], timeout_s: float) -> None:
        bootstrap = str(settings.get("bootstrap.servers", "")).split(",")[0].strip()
        if ":" not in bootstrap:
            raise ConfigError(f"bootstrap.servers must be host:port, not {bootstrap!r}")
        self.bootstrap = bootstrap
        host, port = bootstrap.rsplit(":", 1)
        protocol = str(settings.get("security.protocol", "plaintext")).lower()
        try:
            sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        except OSError as exc:
            raise self._unreachable(f"cannot connect to {bootstrap}: {exc}") from exc
        if protocol in ("ssl", "sasl_ssl"):
            context = ssl.create_default_context(cafile=settings.get("ssl.ca.location"))
            if str(settings.get("enable.ssl.certificate.verification", "true")) == "false":
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.correlation_id = 0
        if protocol.startswith("sasl"):
            self._login(settings)
        elif protocol not in ("plaintext", "ssl"):
            raise ConfigError(f"unknown security.protocol {protocol!r}")

    def _login(self, settings: Mapping[str, Any]) -> None:
        mechanism = str(settings.get("sasl.mechanism", settings.get("sasl.mechanisms", "GSSAPI")))
        if mechanism.upper() != "PLAIN":
            raise ConfigError(f"client quotas over SASL {mechanism} are not supported yet")
        handshake = self.request(SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
        if handshake.error_code != 0:
            raise AuthenticationError(f"the broker refused SASL PLAIN: {handshake.error_code}")
        user = str(settings.get("sasl.username", ""))
        password = str(settings.get("sasl.password", ""))
        token = b"\0" + user.encode() + b"\0" + password.encode()
        answer = self.request(SASL_AUTHENTICATE, 2, {"auth_bytes": token})
        if answer.error_code != 0:
            raise AuthenticationError(f"login as {user!r} failed: {answer.error_message}")

    def request(self, api_key: int, version: int, body: Mapping[str, Any]) -> Any:
        from kio.index import load_request_schema, load_response_schema
        from kio.serial import entity_reader, entity_writer

        from kafkito.protocol.codec import build

        self.correlation_id += 1
        schema: Any = load_request_schema(api_key, version)
        header_schema: Any = schema.__header_schema__
        head = {
            "request_api_key": api_key,
            "request_api_version": version,
            "correlation_id": self.correlation_id,
            "client_id": "kafkito-quotas",
        }
        buf = io.BytesIO()
        entity_writer(header_schema)(buf, build(header_schema, head))
        entity_writer(schema)(buf, build(schema, body))
        payload = buf.getvalue()
        try:
            self.sock.sendall(_SIZE.pack(len(payload)) + payload)
            (size,) = _SIZE.unpack(self._read(4))
            if not 0 <= size <= MAX_ANSWER_BYTES:
                raise self._unreachable(f"answer of {size} bytes from the broker")
            frame = self._read(size)
        except OSError as exc:
            raise self._unreachable(f"the broker connection failed: {exc}") from exc
        response: Any = load_response_schema(api_key, version)
        _, used = entity_reader(response.__header_schema__)(frame, 0)
        answer, _ = entity_reader(response)(frame, used)
        return answer

    def _read(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            chunk = self.sock.recv(min(n - got, 1 << 20))
            if not chunk:
                raise self._unreachable("the broker closed the connection")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _unreachable(self, message: str) -> BrokerUnreachableError:
        return BrokerUnreachableError(message, brokers=self.bootstrap, attempts=1)

    def close(self) -> None:
        self.sock.close()


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
    connection = _Connection(settings, timeout_s)
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
    connection = _Connection(settings, timeout_s)
    try:
        answer = connection.request(ALTER, 1, body)
    finally:
        connection.close()
    for entry in answer.entries:
        if entry.error_code != 0:
            raise InvalidRequestError(f"client quotas refused: {entry.error_message}")
