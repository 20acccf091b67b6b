"""ACLs with every real client over SASL PLAIN: confluent-kafka (through kafkito's Admin and its
own Producer/Consumer), aiokafka, kafka-python (also its ACL admin API) and kcat. Each client
logs in as alice, who may write and read `acl-open`, read with groups starting `acl-g`, and has
no ACL on `acl-secret`: what she may do works, and what she may not fails with the client's own
authorization error, while the broker keeps serving her allowed requests. Then a matrix of
principals (alice: WRITE and READ; bob: READ through a prefix; carol: nothing) x clients x
(produce, read) on one topic.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AioTopicPartition
from aiokafka import errors as aio_errors
from confluent_kafka import Consumer, KafkaError, Producer
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka import errors as kp_errors
from kafka.admin import ACL, ACLFilter, KafkaAdminClient, ResourcePattern, ResourcePatternFilter
from kafka.admin import ACLOperation as KpOp
from kafka.admin import ACLPermissionType as KpPerm
from kafka.admin import ACLResourcePatternType as KpPattern
from kafka.admin import ResourceType as KpResource

from compat.test_groups_worker import unstick_kafka_python
from kafkito import Broker
from kafkito.broker.auth import UserStore
from kafkito.client.admin import Acl, AclFilter, Admin
from kafkito.client.errors import AuthorizationError

PASSWORDS = {
    "admin": "admin-pw-for-acls",
    "alice": "alice-pw-for-acls",
    "bob": "bob-pw-for-acls",
    "carol": "carol-pw-for-acls",
}
OPEN, SECRET = "acl-open", "acl-secret"


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("acl-clients")
    users = str(root / "users.json")
    store = UserStore.load(users, missing_ok=True)
    for user, password in PASSWORDS.items():
        store.set_password(user, password)
    store.save()
    with Broker(
        port=0,
        data_dir=str(root / "data"),
        security_protocol="SASL_PLAINTEXT",
        sasl_users_file=users,
        authorizer="acl",
        super_users=("User:admin",),
    ) as address:
        with Admin(brokers=address, settings=rdk("admin")) as admin:
            admin.create_topics([OPEN, SECRET])
            admin.create_acls(
                Acl("TOPIC", OPEN, principal="User:alice", operation="WRITE"),
                Acl("TOPIC", OPEN, principal="User:alice", operation="READ"),
                Acl("GROUP", "acl-g", "PREFIXED", principal="User:alice", operation="READ"),
            )
        yield address


def rdk(user: str) -> dict[str, object]:
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": PASSWORDS[user],
    }


def py_kwargs(bootstrap: str, user: str = "alice") -> dict[str, object]:
    return {
        "bootstrap_servers": bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": user,
        "sasl_plain_password": PASSWORDS[user],
    }


# -- confluent-kafka -----------------------------------------------------------------------------


def test_confluent_kafka(bootstrap: str) -> None:
    def produce(topic: str) -> KafkaError | None:
        producer = Producer({"bootstrap.servers": bootstrap, **rdk("alice")})
        delivered: list[KafkaError | None] = []
        producer.produce(topic, b"from-confluent", on_delivery=lambda e, m: delivered.append(e))
        producer.flush(15)
        assert len(delivered) == 1
        return delivered[0]

    assert produce(OPEN) is None
    denied = produce(SECRET)
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    def consume(group: str) -> tuple[list[bytes], list[int]]:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                **rdk("alice"),
                "group.id": group,
                "auto.offset.reset": "earliest",
            }
        )
        values: list[bytes] = []
        errors: list[int] = []
        try:
            consumer.subscribe([OPEN])
            deadline = time.monotonic() + 20
            while not values and not errors and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    errors.append(msg.error().code())
                else:
                    values.append(msg.value())
        finally:
            consumer.close()
        return values, errors

    assert consume("acl-g-confluent")[0][:1] == [b"from-confluent"]
    assert consume("other-group")[1][:1] == [KafkaError.GROUP_AUTHORIZATION_FAILED]
    with Admin(brokers=bootstrap, settings=rdk("alice")) as alice:
        assert [t.name for t in alice.list_topics()] == [OPEN]  # the secret topic is hidden
        with pytest.raises(AuthorizationError, match="TOPIC_AUTHORIZATION_FAILED"):
            alice.create_topic("acl-new")
        with pytest.raises(AuthorizationError, match="CLUSTER_AUTHORIZATION_FAILED"):
            alice.create_acls(Acl("TOPIC", SECRET, principal="User:alice", operation="READ"))
        with pytest.raises(AuthorizationError, match="CLUSTER_AUTHORIZATION_FAILED"):
            alice.describe_acls()  # not an empty list (librdkafka drops this error itself)
    with Admin(brokers=bootstrap, settings=rdk("admin")) as admin:
        mine = admin.describe_acls(AclFilter(principal="User:alice"))
        assert {(a.resource_type, a.name, a.operation) for a in mine} == {
            ("TOPIC", OPEN, "WRITE"),
            ("TOPIC", OPEN, "READ"),
            ("GROUP", "acl-g", "READ"),
        }
        assert admin.describe_acls(AclFilter("TOPIC", OPEN, "MATCH", operation="WRITE")) == [
            Acl("TOPIC", OPEN, principal="User:alice", operation="WRITE")
        ]


# -- aiokafka ------------------------------------------------------------------------------------


async def aio_scenario(bootstrap: str) -> None:
    producer = AIOKafkaProducer(**py_kwargs(bootstrap))  # type: ignore[arg-type]
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(OPEN, b"from-aiokafka"), 15)
        with pytest.raises(aio_errors.TopicAuthorizationFailedError):
            await asyncio.wait_for(producer.send_and_wait(SECRET, b"no"), 15)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(**py_kwargs(bootstrap), group_id="acl-g-aio")  # type: ignore[arg-type]
    await consumer.start()
    try:
        tp = AioTopicPartition(OPEN, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        msg = await asyncio.wait_for(consumer.getone(), 15)
        assert msg.value is not None
        await consumer.commit()
    finally:
        await consumer.stop()
    # A group without a READ ACL: the coordinator lookup is refused, and the commit with it.
    stranger = AIOKafkaConsumer(**py_kwargs(bootstrap), group_id="no-acl-group")  # type: ignore[arg-type]
    await stranger.start()
    try:
        stranger.assign([AioTopicPartition(OPEN, 0)])
        with pytest.raises(aio_errors.GroupAuthorizationFailedError):
            await asyncio.wait_for(stranger.commit({AioTopicPartition(OPEN, 0): 0}), 15)
    finally:
        await stranger.stop()


def test_aiokafka(bootstrap: str) -> None:
    asyncio.run(aio_scenario(bootstrap))


# -- kafka-python --------------------------------------------------------------------------------


def test_kafka_python_clients_and_acl_admin(bootstrap: str) -> None:
    producer = KafkaProducer(**py_kwargs(bootstrap))
    try:
        producer.send(OPEN, b"from-kafka-python").get(15)
        with pytest.raises(kp_errors.TopicAuthorizationFailedError):
            producer.send(SECRET, b"no").get(15)
    finally:
        producer.close(5)
    consumer = KafkaConsumer(
        **py_kwargs(bootstrap), group_id="acl-g-kp", auto_offset_reset="earliest"
    )
    try:
        consumer.subscribe([OPEN])
        deadline = time.monotonic() + 20
        values: list[bytes] = []
        stuck: float | None = None
        while not values and time.monotonic() < deadline:
            for records in consumer.poll(500).values():
                values += [r.value for r in records]
            stuck = unstick_kafka_python(consumer, stuck)
        assert values
    finally:
        consumer.close()
    admin = KafkaAdminClient(**py_kwargs(bootstrap, "admin"))
    try:
        grant = ACL(
            "User:alice", "*", KpOp.READ, KpPerm.ALLOW, ResourcePattern(KpResource.TOPIC, SECRET)
        )
        created = admin.create_acls([grant])
        assert created["failed"] == [] and len(created["succeeded"]) == 1
        topic_filter = ResourcePatternFilter(KpResource.TOPIC, SECRET, KpPattern.LITERAL)
        found, error = admin.describe_acls(
            ACLFilter("User:alice", None, KpOp.ANY, KpPerm.ANY, topic_filter)
        )
        assert error is kp_errors.NoError and [a.operation for a in found] == [KpOp.READ]
        deleted = admin.delete_acls([ACLFilter(None, None, KpOp.ANY, KpPerm.ANY, topic_filter)])
        assert [len(matches) for _, matches, _ in deleted] == [1]
    finally:
        admin.close()
    alice = KafkaAdminClient(**py_kwargs(bootstrap))
    try:
        with pytest.raises(kp_errors.ClusterAuthorizationFailedError):
            alice.describe_acls(
                ACLFilter(
                    None,
                    None,
                    KpOp.ANY,
                    KpPerm.ANY,
                    ResourcePatternFilter(KpResource.ANY, None, KpPattern.ANY),
                )
            )
    finally:
        alice.close()


# -- kcat ----------------------------------------------------------------------------------------


def kcat_base(bootstrap: str, user: str) -> list[str]:
    base = ["kcat", "-b", bootstrap]
    for key, value in rdk(user).items():
        base += ["-X", f"{key.replace('mechanism', 'mechanisms')}={value}"]
    return base


def test_kcat(bootstrap: str) -> None:
    base = kcat_base(bootstrap, "alice")
    subprocess.run(
        [*base, "-P", "-t", OPEN],
        input=b"from-kcat\n",
        check=True,
        timeout=30,
        capture_output=True,
    )
    out = subprocess.run(
        [*base, "-C", "-t", OPEN, "-o", "beginning", "-e", "-q"],
        check=True,
        timeout=30,
        capture_output=True,
    )
    assert b"from-kcat" in out.stdout
    denied = subprocess.run(
        [*base, "-C", "-t", SECRET, "-o", "beginning", "-e"], timeout=30, capture_output=True
    )
    assert b"authorization failed" in denied.stderr.lower(), denied.stderr
    listing = subprocess.run([*base, "-L"], check=True, timeout=30, capture_output=True)
    assert OPEN.encode() in listing.stdout and SECRET.encode() not in listing.stdout


# -- principals x clients: produce and read one topic ---------------------------------------

MATRIX_TOPIC = "acl-matrix"
EXPECTED = {  # principal -> (may produce, may read)
    "alice": (True, True),  # WRITE and READ on acl-matrix
    "bob": (False, True),  # READ through the prefix "acl-m"
    "carol": (False, False),  # no ACL: the topic is hidden and refused
}


@pytest.fixture(scope="module")
def matrix(bootstrap: str) -> str:
    with Admin(brokers=bootstrap, settings=rdk("admin")) as admin:
        admin.create_topics([MATRIX_TOPIC])
        admin.create_acls(
            Acl("TOPIC", MATRIX_TOPIC, principal="User:alice", operation="WRITE"),
            Acl("TOPIC", MATRIX_TOPIC, principal="User:alice", operation="READ"),
            Acl("TOPIC", "acl-m", "PREFIXED", principal="User:bob", operation="READ"),
            Acl("GROUP", "acl-mx-", "PREFIXED", principal="User:*", operation="READ"),
        )
    producer = Producer({"bootstrap.servers": bootstrap, **rdk("admin")})
    producer.produce(MATRIX_TOPIC, b"seed")  # something to read
    assert producer.flush(15) == 0
    return bootstrap


def produce_as(client: str, bootstrap: str, user: str) -> bool:
    """True if `user` could write one record with `client`; False on its authorization error."""
    if client == "confluent-kafka":
        producer = Producer({"bootstrap.servers": bootstrap, **rdk(user)})
        delivered: list[KafkaError | None] = []
        producer.produce(MATRIX_TOPIC, b"m", on_delivery=lambda e, m: delivered.append(e))
        producer.flush(15)
        assert len(delivered) == 1
        error = delivered[0]
        assert error is None or error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
        return error is None
    if client == "kafka-python":
        kp = KafkaProducer(**py_kwargs(bootstrap, user), max_block_ms=10_000)
        try:
            kp.send(MATRIX_TOPIC, b"m").get(15)
        except kp_errors.TopicAuthorizationFailedError:
            return False
        except kp_errors.KafkaError as exc:
            # kafka-python is idempotent by default: without WRITE on any topic (or
            # IDEMPOTENT_WRITE) InitProducerId is refused first, as Kafka does (KIP-679)
            if "ClusterAuthorizationFailed" not in str(exc):
                raise
            return False
        finally:
            kp.close(5)
        return True
    if client == "aiokafka":

        async def aio() -> bool:
            producer = AIOKafkaProducer(**py_kwargs(bootstrap, user))  # type: ignore[arg-type]
            await producer.start()
            try:
                await asyncio.wait_for(producer.send_and_wait(MATRIX_TOPIC, b"m"), 15)
            except aio_errors.TopicAuthorizationFailedError:
                return False
            finally:
                await producer.stop()
            return True

        return asyncio.run(aio())
    done = subprocess.run(
        [*kcat_base(bootstrap, user), "-P", "-t", MATRIX_TOPIC],
        input=b"m\n",
        timeout=30,
        capture_output=True,
    )
    if done.returncode == 0:
        return True
    assert b"authorization failed" in done.stderr.lower(), done.stderr
    return False


def read_as(client: str, bootstrap: str, user: str) -> bool:
    """True if `user` could read the seeded record with `client`, False on its authorization
    error (confluent-kafka subscribes with a group every principal may use; the others
    assign, without a group)."""
    if client == "confluent-kafka":
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                **rdk(user),
                "group.id": f"acl-mx-{user}",  # every principal may use these groups
                "auto.offset.reset": "earliest",
            }
        )
        try:
            consumer.subscribe([MATRIX_TOPIC])
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
                    return False
                return True
            raise AssertionError("neither a record nor an authorization error")
        finally:
            consumer.close()
    if client == "kafka-python":
        consumer = KafkaConsumer(**py_kwargs(bootstrap, user), group_id=None)
        try:
            consumer.assign([KpTopicPartition(MATRIX_TOPIC, 0)])
            consumer.seek(KpTopicPartition(MATRIX_TOPIC, 0), 0)
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                if any(consumer.poll(500).values()):
                    return True
            # kafka-python waits for metadata it is refused, without raising (as against
            # Kafka): nothing read is its refusal
            return False
        except kp_errors.TopicAuthorizationFailedError:
            return False
        finally:
            consumer.close()
    done = subprocess.run(
        [*kcat_base(bootstrap, user), "-C", "-t", MATRIX_TOPIC, "-o", "beginning", "-c", "1"],
        timeout=30,
        capture_output=True,
    )
    if done.returncode == 0 and b"seed" in done.stdout:
        return True
    assert b"authorization failed" in done.stderr.lower(), done.stderr
    return False


@pytest.mark.parametrize("user", list(EXPECTED))
@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python", "aiokafka", "kcat"])
def test_principals_by_client(matrix: str, client: str, user: str) -> None:
    may_produce, may_read = EXPECTED[user]
    assert produce_as(client, matrix, user) is may_produce
    if client != "aiokafka":  # aiokafka waits for metadata it is refused, without an error
        assert read_as(client, matrix, user) is may_read
