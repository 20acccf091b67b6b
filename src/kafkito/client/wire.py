"""One blocking Kafka connection that speaks requests librdkafka has no API for.

librdkafka (confluent-kafka 2.16) has no client-quota API and no transaction admin API
(ListTransactions, DescribeTransactions, DescribeProducers), so `kafkito.client.quotas` and
`kafkito.client.txn_admin` send those requests themselves, encoded by kio, over this
connection. It takes the same librdkafka settings as the rest of kafkito.client: PLAINTEXT and
SSL (`ssl.ca.location`, `enable.ssl.certificate.verification`), and SASL PLAIN on either.
Other SASL mechanisms raise ConfigError (SCRAM and OAUTHBEARER are left to a later change).

By default it connects to the first bootstrap broker; `address` names another one (a
transaction coordinator, a partition leader), reached with the same security settings.
"""

from __future__ import annotations

import io
import socket
import ssl
import struct
from collections.abc import Mapping
from typing import Any

from kafkito.client.errors import AuthenticationError, BrokerUnreachableError, ConfigError

__all__ = ["MAX_ANSWER_BYTES", "BrokerConnection"]

SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
MAX_ANSWER_BYTES = 100 << 20
"""A bound on one answer (librdkafka's receive.message.max.bytes)."""
_SIZE = struct.Struct(">i")


def first_bootstrap(settings: Mapping[str, Any]) -> str:
    """The first host:port of `bootstrap.servers`; ConfigError if it has no port."""
    bootstrap = str(settings.get("bootstrap.servers", "")).split(",")[0].strip()
    if ":" not in bootstrap:
        raise ConfigError(f"bootstrap.servers must be host:port, not {bootstrap!r}")
    return bootstrap


class BrokerConnection:
    """A blocking connection to one broker, logged in; `request` sends one and reads the
    answer. Every socket wait is bounded by `timeout_s`; a failure is BrokerUnreachableError."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        timeout_s: float,
        *,
        address: str | None = None,
        client_id: str = "kafkito",
    ) -> None:
        target = address if address is not None else first_bootstrap(settings)
        self.bootstrap = target
        self.client_id = client_id
        host, port = target.rsplit(":", 1)
        protocol = str(settings.get("security.protocol", "plaintext")).lower()
        if protocol not in ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl"):
            raise ConfigError(f"unknown security.protocol {protocol!r}")
        try:
            sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        except OSError as exc:
            raise self._unreachable(f"cannot connect to {target}: {exc}") from exc
        if protocol in ("ssl", "sasl_ssl"):
            context = ssl.create_default_context(cafile=settings.get("ssl.ca.location"))
            if str(settings.get("enable.ssl.certificate.verification", "true")) == "false":
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            try:
                sock = context.wrap_socket(sock, server_hostname=host)
            except OSError as exc:
                sock.close()
                raise self._unreachable(f"TLS with {target} failed: {exc}") from exc
        self.sock = sock
        self.correlation_id = 0
        if protocol.startswith("sasl"):
            try:
                self._login(settings)
            except BaseException:
                self.close()
                raise

    def _login(self, settings: Mapping[str, Any]) -> None:
        mechanism = str(settings.get("sasl.mechanism", settings.get("sasl.mechanisms", "GSSAPI")))
        if mechanism.upper() != "PLAIN":
            raise ConfigError(
                f"SASL {mechanism} is not supported yet by kafkito's own requests (client "
                "quotas, transaction admin); use PLAIN"
            )
        handshake = self.request(SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
        if handshake.error_code != 0:
            raise AuthenticationError(f"the broker refused SASL PLAIN: {handshake.error_code}")
        user = str(settings.get("sasl.username", ""))
        password = str(settings.get("sasl.password", ""))
        token = b"\0" + user.encode() + b"\0" + password.encode()
        answer = self.request(SASL_AUTHENTICATE, 2, {"auth_bytes": token})
        if answer.error_code != 0:
            raise AuthenticationError(f"login as {user!r} failed: {answer.error_message}")

    def request_bytes(self, api_key: int, version: int, body: Mapping[str, Any]) -> bytes:
        """Send one request; the answer's bytes after its header (for answers kio cannot
        decode, such as DescribeTransactions' -1 start time)."""
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
            "client_id": self.client_id,
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
        return frame[used:]

    def request(self, api_key: int, version: int, body: Mapping[str, Any]) -> Any:
        """Send one request; the answer decoded by kio."""
        from kio.index import load_response_schema
        from kio.serial import entity_reader

        data = self.request_bytes(api_key, version, body)
        response: Any = load_response_schema(api_key, version)
        answer, _ = entity_reader(response)(data, 0)
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

    def __enter__(self) -> BrokerConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
