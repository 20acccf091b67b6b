"""TLS listeners (SSL and SASL_SSL) with a CA generated here by the openssl CLI, verification on.

Every client checks the broker's certificate against that CA (and the 127.0.0.1 IP SAN):
confluent-kafka, aiokafka, kafka-python and kcat round-trip over SSL; confluent-kafka and kcat
over SASL_SSL with SCRAM-SHA-512 (RELIABILITY S6). A client that does not trust the CA fails, a
plaintext client on the TLS port is closed at once, TLS below 1.2 is not offered, and with
ssl_cafile set the broker demands a client certificate.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AioTopicPartition
from aiokafka.helpers import create_ssl_context
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

from kafkito import Broker
from kafkito.broker.auth import UserStore
from kafkito.broker.server import tls_context
from kafkito.broker.settings import BrokerSettings

PASSWORD = "tls-Pa55"


@dataclass(frozen=True)
class Pki:
    ca: str
    cert: str
    key: str
    client_cert: str
    client_key: str


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def issue(cwd: Path, name: str, subject: str, extensions: str) -> None:
    (cwd / f"{name}.ext").write_text(extensions)
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=cwd,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
        cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=kafkito test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d,
    )  # fmt: skip
    issue(
        d,
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    issue(
        d,
        "client",
        "/CN=test-client",
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    return Pki(
        str(d / "ca.pem"),
        str(d / "server.pem"),
        str(d / "server.key"),
        str(d / "client.pem"),
        str(d / "client.key"),
    )


@pytest.fixture(scope="module")
def ssl_bootstrap(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("ssl")
    with Broker(
        port=0,
        data_dir=str(root / "data"),
        security_protocol="SSL",
        ssl_certfile=pki.cert,
        ssl_keyfile=pki.key,
        tls_handshake_timeout_ms=3000,
    ) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def sasl_ssl_bootstrap(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("sasl-ssl")
    users = str(root / "users.json")
    store = UserStore.load(users, missing_ok=True)
    store.set_password("alice", PASSWORD)
    store.save()
    with Broker(
        port=0,
        data_dir=str(root / "data"),
        security_protocol="SASL_SSL",
        sasl_users_file=users,
        ssl_certfile=pki.cert,
        ssl_keyfile=pki.key,
    ) as bootstrap:
        yield bootstrap


def new_topic() -> str:
    return f"tls-{uuid.uuid4().hex[:10]}"


def rdk_ssl(bootstrap: str, pki: Pki) -> dict[str, object]:
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SSL",
        "ssl.ca.location": pki.ca,
        "enable.ssl.certificate.verification": True,
        "ssl.endpoint.identification.algorithm": "https",
    }


def confluent_round_trip(config: dict[str, object]) -> None:
    topic = new_topic()
    producer = Producer(config)
    delivered: list[object] = []
    producer.produce(topic, b"secret-ish", on_delivery=lambda err, msg: delivered.append(err))
    assert producer.flush(15) == 0 and delivered == [None]
    consumer = Consumer({**config, "group.id": "g", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        msg = consumer.poll(15)
        assert msg is not None and msg.error() is None and msg.value() == b"secret-ish"
    finally:
        consumer.close()


def test_confluent_over_ssl_with_verification(ssl_bootstrap: str, pki: Pki) -> None:
    confluent_round_trip(rdk_ssl(ssl_bootstrap, pki))


def test_megabytes_over_ssl_arrive_whole_and_in_order(ssl_bootstrap: str, pki: Pki) -> None:
    """Produce requests of about 1 MB through TLS: each spans many TLS records and reads of the
    broker's BufferedProtocol over SSL (broker/server.py RequestStream); every record comes
    back, in order, byte for byte."""
    topic = new_topic()
    config = rdk_ssl(ssl_bootstrap, pki)
    producer = Producer({**config, "linger.ms": 50, "batch.size": 1_000_000})
    count = 20_000
    values = [i.to_bytes(4, "big") * 256 for i in range(count)]  # 1 KiB each, all different
    failed: list[object] = []
    for value in values:
        while True:
            try:
                producer.produce(
                    topic, value, on_delivery=lambda err, _m: err is not None and failed.append(err)
                )
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0 and not failed
    consumer = Consumer({**config, "group.id": "g", "enable.auto.commit": False})
    received: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 60
        while len(received) < count and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 1.0):
                assert msg.error() is None
                received.append(msg.value())
    finally:
        consumer.close()
    assert received == values


def test_aiokafka_over_ssl_with_verification(ssl_bootstrap: str, pki: Pki) -> None:
    async def run() -> None:
        topic = new_topic()
        context = create_ssl_context(cafile=pki.ca)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        common = {
            "bootstrap_servers": ssl_bootstrap,
            "security_protocol": "SSL",
            "ssl_context": context,
        }
        producer = AIOKafkaProducer(**common)  # type: ignore[arg-type]
        await producer.start()
        try:
            await asyncio.wait_for(producer.send_and_wait(topic, b"aio"), 15)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(**common)  # type: ignore[arg-type]
        await consumer.start()
        try:
            tp = AioTopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            assert (await asyncio.wait_for(consumer.getone(), 15)).value == b"aio"
        finally:
            await consumer.stop()

    asyncio.run(run())


def test_kafka_python_over_ssl_with_verification(ssl_bootstrap: str, pki: Pki) -> None:
    topic = new_topic()
    common = {
        "bootstrap_servers": ssl_bootstrap,
        "security_protocol": "SSL",
        "ssl_cafile": pki.ca,
        "ssl_check_hostname": True,
    }
    producer = KafkaProducer(**common)
    try:
        producer.send(topic, b"kp").get(15)
    finally:
        producer.close(5)
    consumer = KafkaConsumer(**common, group_id=None, auto_offset_reset="earliest")
    try:
        consumer.assign([KpTopicPartition(topic, 0)])
        values: list[bytes] = []
        deadline = time.monotonic() + 15
        while not values and time.monotonic() < deadline:
            for records in consumer.poll(1000).values():
                values += [r.value for r in records]
        assert values == [b"kp"]
    finally:
        consumer.close()


def kcat(bootstrap: str, pki: Pki, *args: str, extra: tuple[str, ...] = ()) -> bytes:
    out = subprocess.run(
        ["kcat", "-b", bootstrap, "-X", f"ssl.ca.location={pki.ca}", *extra, *args],
        input=b"over-tls\n",
        capture_output=True,
        timeout=30,
        check=True,
    )
    return out.stdout


def test_kcat_over_ssl_with_verification(ssl_bootstrap: str, pki: Pki) -> None:
    topic = new_topic()
    extra = ("-X", "security.protocol=SSL")
    kcat(ssl_bootstrap, pki, "-P", "-t", topic, extra=extra)
    got = kcat(
        ssl_bootstrap, pki, "-C", "-t", topic, "-o", "beginning", "-c", "1", "-e", extra=extra
    )
    assert got == b"over-tls\n"


def test_confluent_sasl_ssl_scram_round_trip(sasl_ssl_bootstrap: str, pki: Pki) -> None:
    confluent_round_trip(
        {
            **rdk_ssl(sasl_ssl_bootstrap, pki),
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "alice",
            "sasl.password": PASSWORD,
        }
    )


def test_kcat_sasl_ssl_scram_round_trip(sasl_ssl_bootstrap: str, pki: Pki) -> None:
    topic = new_topic()
    extra = (
        "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-256",
        "-X", "sasl.username=alice", "-X", f"sasl.password={PASSWORD}",
    )  # fmt: skip
    kcat(sasl_ssl_bootstrap, pki, "-P", "-t", topic, extra=extra)
    got = kcat(
        sasl_ssl_bootstrap, pki, "-C", "-t", topic, "-o", "beginning", "-c", "1", "-e", extra=extra
    )
    assert got == b"over-tls\n"


def test_client_that_does_not_trust_the_ca_fails_verification(ssl_bootstrap: str) -> None:
    errors: list[KafkaError] = []
    producer = Producer(
        {"bootstrap.servers": ssl_bootstrap, "security.protocol": "SSL", "error_cb": errors.append}
    )
    deadline = time.monotonic() + 15
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    assert errors and "certificate verify failed" in str(errors[0]), errors


def test_plaintext_client_on_the_tls_port_is_closed_at_once(ssl_bootstrap: str) -> None:
    host, port = ssl_bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        # An ApiVersions v0 request, as a PLAINTEXT client would send it first.
        body = struct.pack(">hhih", 18, 0, 1, 1) + b"x"
        sock.sendall(struct.pack(">i", len(body)) + body)
        started = time.monotonic()
        sock.settimeout(5)
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            data = b""
        # Closed (maybe after a TLS alert record, 0x15), well before the 3 s handshake timeout.
        assert data == b"" or data[:1] == b"\x15"
        assert time.monotonic() - started < 2


def test_tls_1_2_works_and_nothing_older_is_accepted(ssl_bootstrap: str, pki: Pki) -> None:
    host, port = ssl_bootstrap.rsplit(":", 1)
    client = ssl.create_default_context(cafile=pki.ca)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        client.wrap_socket(raw, server_hostname=host) as tls,
    ):
        assert tls.version() == "TLSv1.2"
    settings = BrokerSettings(security_protocol="SSL", ssl_certfile=pki.cert, ssl_keyfile=pki.key)
    assert tls_context(settings).minimum_version == ssl.TLSVersion.TLSv1_2


def test_mutual_tls_demands_a_client_certificate(pki: Pki, tmp_path: Path) -> None:
    with Broker(
        port=0,
        data_dir=str(tmp_path / "data"),
        security_protocol="SSL",
        ssl_certfile=pki.cert,
        ssl_keyfile=pki.key,
        ssl_cafile=pki.ca,
    ) as bootstrap:
        confluent_round_trip(
            {
                **rdk_ssl(bootstrap, pki),
                "ssl.certificate.location": pki.client_cert,
                "ssl.key.location": pki.client_key,
            }
        )
        host, port = bootstrap.rsplit(":", 1)
        client = ssl.create_default_context(cafile=pki.ca)  # no client certificate
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            tls = client.wrap_socket(raw, server_hostname=host)
            # TLS 1.3 reports the missing certificate on the first read, not in the handshake.
            try:
                tls.sendall(struct.pack(">ihhih", 11, 18, 0, 1, 1) + b"x")
                data = tls.recv(4096)
            except (ssl.SSLError, ConnectionResetError):
                data = b""
            tls.close()
            assert data == b"", "answered without a client certificate"


def test_client_library_over_tls_with_verification(ssl_bootstrap: str, pki: Pki) -> None:
    """kafkito's Writer and Reader with the seed's `client.tls` keys: verification on."""
    from kafkito import Reader, Writer

    topic = new_topic()
    config = {"client": {"tls": {"ca_file": pki.ca}, "timeout": 5}}
    with Writer(topic, config, brokers=ssl_bootstrap) as writer:
        writer.write(b"over tls", key=b"k")
    seen: list[bytes | None] = []
    with Reader(topic, config, brokers=ssl_bootstrap) as reader:
        reader.read_value(seen.append, limit=1)
    assert seen == [b"over tls"]


def test_client_library_refuses_an_untrusted_broker_certificate(ssl_bootstrap: str) -> None:
    """TLS verification is on by default: the system CAs do not know the test CA."""
    from kafkito import AuthenticationError, Writer

    config = {"client": {"tls": {}, "timeout": 3, "retry": {1: 0.1}}}
    with (
        pytest.raises(AuthenticationError, match="certificate verify failed"),
        Writer(new_topic(), config, brokers=ssl_bootstrap) as writer,
    ):
        writer.write(b"never delivered")


def test_client_library_sasl_over_tls(sasl_ssl_bootstrap: str, pki: Pki) -> None:
    from kafkito import Reader, Writer

    topic = new_topic()
    config = {
        "client": {
            "username": "alice",
            "password": PASSWORD,
            "algorithm": "SCRAM-SHA-512",
            "tls": {"ca_file": pki.ca},
            "timeout": 5,
        }
    }
    with Writer(topic, config, brokers=sasl_ssl_bootstrap) as writer:
        writer.write(b"scram over tls")
    seen: list[bytes | None] = []
    with Reader(topic, config, brokers=sasl_ssl_bootstrap) as reader:
        reader.read_value(seen.append, limit=1)
    assert seen == [b"scram over tls"]
