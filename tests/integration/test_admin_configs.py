"""Topic and broker configs against the embedded broker, over TCP, with every client that does it.

DescribeConfigs, AlterConfigs (non-incremental: replaces every override) and
IncrementalAlterConfigs with confluent-kafka (DescribeConfigs v1 with synonyms, AlterConfigs,
IncrementalAlterConfigs v1), kafka-python (DescribeConfigs v4, both alter kinds; its
alter_configs first checks the names against DescribeConfigs, KAFKA-NOTES §6 P12) and aiokafka
(DescribeConfigs v2, AlterConfigs v1). A change must show in DescribeConfigs, act on the live
partition logs (max.message.bytes, retention) and survive a broker restart.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource as AioConfigResource
from aiokafka.admin.config_resource import ConfigResourceType as AioConfigResourceType
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType as KpConfigResourceType

from kafkito import Broker
from kafkito.broker.configs import BROKER_CONFIGS, DYNAMIC_BROKER_CONFIGS, TOPIC_CONFIGS
from kafkito.testing.brokers import BrokerProcess

TIMEOUT_S = 15
SET = AlterConfigOpType.SET
DELETE = AlterConfigOpType.DELETE
APPEND = AlterConfigOpType.APPEND
SUBTRACT = AlterConfigOpType.SUBTRACT


# -- helpers -----------------------------------------------------------------------------------


def create(admin: AdminClient, name: str, partitions: int = 1, **configs: str) -> None:
    config = {key.replace("_", "."): value for key, value in configs.items()}
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=config)])
    futures[name].result(TIMEOUT_S)


def describe(admin: AdminClient, rtype: str, name: str) -> dict[str, Any]:
    (future,) = admin.describe_configs([ConfigResource(rtype, name)]).values()
    return future.result(TIMEOUT_S)  # type: ignore[no-any-return]


def incremental(admin: AdminClient, topic: str, *entries: tuple[str, Any, str | None]) -> None:
    """Apply (name, op, value) entries; raises KafkaException as the client reports it."""
    resource = ConfigResource(
        "topic",
        topic,
        incremental_configs=[
            ConfigEntry(name, value, incremental_operation=op) for name, op, value in entries
        ],
    )
    (future,) = admin.incremental_alter_configs([resource]).values()
    future.result(TIMEOUT_S)


def ck_failure(call: Any) -> KafkaError:
    with pytest.raises(KafkaException) as caught:
        call()
    return caught.value.args[0]  # type: ignore[no-any-return]


def produce_one(bootstrap: str, topic: str, size: int) -> KafkaError | None:
    """Produce one value of `size` bytes; the delivery error, or None."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "retries": 0})
    outcome: list[KafkaError | None] = []
    producer.produce(topic, value=b"x" * size, on_delivery=lambda err, msg: outcome.append(err))
    assert producer.flush(TIMEOUT_S) == 0
    return outcome[0]


def low_watermark(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lw-{uuid.uuid4().hex}"})
    try:
        low, _ = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S)
        return int(low)
    finally:
        consumer.close()


# -- confluent-kafka: describe ----------------------------------------------------------------


def test_ck_describe_topic_lists_every_key_with_default_and_source(admin: AdminClient) -> None:
    create(admin, "cfg-all", retention_ms="60000")
    configs = describe(admin, "topic", "cfg-all")
    assert set(configs) == set(TOPIC_CONFIGS)
    for name, entry in configs.items():
        assert not entry.is_read_only, name
        assert not entry.is_sensitive, name
        if name == "retention.ms":
            assert entry.value == "60000"
            assert entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
            # librdkafka asks for synonyms: the override, then the broker keys it shadows
            # that are set; log.retention.ms is not (Kafka's default is null, the 168 h come
            # from log.retention.hours, which Kafka leaves out of the list; differential tests)
            assert [(s.name, s.value) for s in entry.synonyms.values()] == [
                ("retention.ms", "60000"),
            ]
        else:
            assert entry.value == TOPIC_CONFIGS[name].default, name
            assert entry.source == ConfigSource.DEFAULT_CONFIG.value, name
    assert configs["max.message.bytes"].value == "1048588"
    assert configs["cleanup.policy"].value == "delete"


def test_ck_describe_broker_lists_read_only_settings(admin: AdminClient, broker: str) -> None:
    configs = describe(admin, "broker", "0")
    assert set(BROKER_CONFIGS) <= set(configs)
    # read-only but the dynamic ones (Kafka's DynamicLogConfig set: the topic defaults)
    assert {name for name, entry in configs.items() if not entry.is_read_only} == set(
        DYNAMIC_BROKER_CONFIGS
    )
    assert configs["message.max.bytes"].value == "1048588"
    assert configs["num.partitions"].value == "1"
    assert configs["node.id"].value == "0"
    assert configs["advertised.listeners"].value == f"PLAINTEXT://{broker}"
    assert configs["advertised.listeners"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert configs["log.retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value


def test_ck_describe_unknown_topic_fails_alone(admin: AdminClient) -> None:
    create(admin, "cfg-known")
    futures = admin.describe_configs(
        [ConfigResource("topic", "cfg-unknown"), ConfigResource("topic", "cfg-known")]
    )
    by_name = {resource.name: future for resource, future in futures.items()}
    error = ck_failure(lambda: by_name["cfg-unknown"].result(TIMEOUT_S))
    assert error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert "retention.ms" in by_name["cfg-known"].result(TIMEOUT_S)


# -- confluent-kafka: alter ---------------------------------------------------------------------


def test_ck_incremental_set_append_subtract_delete(admin: AdminClient) -> None:
    create(admin, "cfg-inc")
    incremental(admin, "cfg-inc", ("retention.ms", SET, "1234"), ("segment.ms", SET, "60000"))
    incremental(admin, "cfg-inc", ("cleanup.policy", APPEND, "compact"))
    configs = describe(admin, "topic", "cfg-inc")
    assert configs["retention.ms"].value == "1234"
    assert configs["segment.ms"].value == "60000"
    assert configs["cleanup.policy"].value == "delete,compact"
    assert configs["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    incremental(admin, "cfg-inc", ("cleanup.policy", SUBTRACT, "delete"))
    incremental(admin, "cfg-inc", ("retention.ms", DELETE, None))
    configs = describe(admin, "topic", "cfg-inc")
    assert configs["cleanup.policy"].value == "compact"
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["segment.ms"].value == "60000"  # not named: kept


def test_ck_incremental_refusals_name_the_key_and_change_nothing(admin: AdminClient) -> None:
    create(admin, "cfg-bad", retention_ms="5000")
    cases = [
        (("no.such.config", SET, "1"), KafkaError.INVALID_CONFIG, "no.such.config"),
        (("retention.ms", SET, "soon"), KafkaError.INVALID_CONFIG, "retention.ms"),
        (("segment.bytes", SET, "3"), KafkaError.INVALID_CONFIG, "segment.bytes"),
        (("retention.ms", APPEND, "5"), KafkaError.INVALID_CONFIG, "retention.ms"),
        (("cleanup.policy", APPEND, "shred"), KafkaError.INVALID_CONFIG, "cleanup.policy"),
    ]
    for entry, code, named in cases:
        error = ck_failure(
            lambda entry=entry: incremental(  # type: ignore[misc]
                admin, "cfg-bad", ("segment.ms", SET, "1000"), entry
            )
        )
        assert error.code() == code, (entry, error)
        assert named in error.str(), (entry, error)
    unknown = ck_failure(lambda: incremental(admin, "cfg-none", ("retention.ms", SET, "1")))
    assert unknown.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    configs = describe(admin, "topic", "cfg-bad")
    assert configs["retention.ms"].value == "5000"
    assert configs["segment.ms"].value == "604800000"


def test_ck_incremental_validate_only_changes_nothing(admin: AdminClient) -> None:
    create(admin, "cfg-dry")
    resource = ConfigResource(
        "topic",
        "cfg-dry",
        incremental_configs=[ConfigEntry("retention.ms", "99", incremental_operation=SET)],
    )
    (future,) = admin.incremental_alter_configs([resource], validate_only=True).values()
    future.result(TIMEOUT_S)
    assert describe(admin, "topic", "cfg-dry")["retention.ms"].value == "604800000"


def test_ck_alter_configs_replaces_every_override(admin: AdminClient) -> None:
    create(admin, "cfg-replace", retention_ms="1000", segment_ms="2000")
    (future,) = admin.alter_configs(
        [ConfigResource("topic", "cfg-replace", set_config={"max.message.bytes": "5000"})]
    ).values()
    future.result(TIMEOUT_S)
    configs = describe(admin, "topic", "cfg-replace")
    assert configs["max.message.bytes"].value == "5000"
    assert configs["retention.ms"].value == "604800000"  # left out: back to the default
    assert configs["segment.ms"].value == "604800000"
    modified = {
        n for n, e in configs.items() if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    }
    assert modified == {"max.message.bytes"}

    (bad,) = admin.alter_configs(
        [ConfigResource("topic", "cfg-replace", set_config={"flush.messages": "0"})]
    ).values()
    error = ck_failure(lambda: bad.result(TIMEOUT_S))
    assert error.code() == KafkaError.INVALID_CONFIG
    assert "flush.messages" in error.str()
    assert describe(admin, "topic", "cfg-replace")["max.message.bytes"].value == "5000"


def test_ck_broker_configs_are_read_only(admin: AdminClient) -> None:
    resource = ConfigResource(
        "broker",
        "0",
        incremental_configs=[ConfigEntry("num.partitions", "3", incremental_operation=SET)],
    )
    (future,) = admin.incremental_alter_configs([resource]).values()
    error = ck_failure(lambda: future.result(TIMEOUT_S))
    assert error.code() == KafkaError.INVALID_REQUEST  # Kafka's code for a static broker key
    assert "num.partitions" in error.str()
    assert describe(admin, "broker", "0")["num.partitions"].value == "1"


# -- configs in effect ------------------------------------------------------------------------


def test_max_message_bytes_lowered_refuses_larger_batches(admin: AdminClient, broker: str) -> None:
    create(admin, "cfg-size")
    assert produce_one(broker, "cfg-size", 4000) is None
    incremental(admin, "cfg-size", ("max.message.bytes", SET, "1000"))
    error = produce_one(broker, "cfg-size", 4000)
    assert error is not None
    assert error.code() == KafkaError.MSG_SIZE_TOO_LARGE
    assert produce_one(broker, "cfg-size", 100) is None
    incremental(admin, "cfg-size", ("max.message.bytes", DELETE, None))
    assert produce_one(broker, "cfg-size", 4000) is None


def test_retention_bytes_set_at_runtime_deletes_old_segments(tmp_path: Path) -> None:
    with Broker(
        port=0, data_dir=str(tmp_path / "data"), retention_check_interval_ms=100
    ) as bootstrap:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        create(admin, "cfg-retention", segment_bytes="1024")
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        for _ in range(20):  # one batch of ~300 bytes per flush: several segments
            producer.produce("cfg-retention", value=b"r" * 250)
            assert producer.flush(TIMEOUT_S) == 0
        time.sleep(0.3)
        assert low_watermark(bootstrap, "cfg-retention") == 0  # nothing past retention yet

        incremental(admin, "cfg-retention", ("retention.bytes", SET, "0"))
        deadline = time.monotonic() + TIMEOUT_S
        while (low := low_watermark(bootstrap, "cfg-retention")) == 0:
            assert time.monotonic() < deadline, "retention.bytes=0 deleted no segment"
            time.sleep(0.1)
        assert 0 < low < 20


def test_dynamic_broker_retention_deletes_old_segments_and_a_topic_override_wins(
    tmp_path: Path,
) -> None:
    """log.retention.bytes set cluster-wide at run time reaches every topic without an
    override of its own (the next retention pass deletes), and not a topic that has one."""
    with Broker(
        port=0, data_dir=str(tmp_path / "data"), retention_check_interval_ms=100
    ) as bootstrap:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        create(admin, "dyn-ret", segment_bytes="1024")
        create(admin, "dyn-keep", segment_bytes="1024", retention_bytes="-1")
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        for _ in range(20):  # one batch of ~300 bytes per flush: several segments
            producer.produce("dyn-ret", value=b"r" * 250)
            producer.produce("dyn-keep", value=b"r" * 250)
            assert producer.flush(TIMEOUT_S) == 0
        resource = ConfigResource(
            "broker",
            "0",
            incremental_configs=[
                ConfigEntry("log.retention.bytes", "0", incremental_operation=SET)
            ],
        )
        (future,) = admin.incremental_alter_configs([resource]).values()
        future.result(TIMEOUT_S)
        deadline = time.monotonic() + TIMEOUT_S
        while (low := low_watermark(bootstrap, "dyn-ret")) == 0:
            assert time.monotonic() < deadline, "log.retention.bytes=0 deleted no segment"
            time.sleep(0.1)
        assert 0 < low < 20
        # one retention pass visits every partition on the event loop, so the pass that
        # trimmed dyn-ret has visited dyn-keep too
        assert low_watermark(bootstrap, "dyn-keep") == 0
        entry = describe(admin, "topic", "dyn-ret")["retention.bytes"]
        assert (entry.value, entry.source) == ("0", ConfigSource.DYNAMIC_BROKER_CONFIG.value)


# -- restart -------------------------------------------------------------------------------------


def test_config_changes_survive_a_restart(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    with Broker(port=0, data_dir=data_dir) as bootstrap:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        create(admin, "cfg-kept", retention_ms="7000")
        create(admin, "cfg-replaced", segment_ms="9000")
        incremental(admin, "cfg-kept", ("max.message.bytes", SET, "1000"))
        (future,) = admin.alter_configs(
            [ConfigResource("topic", "cfg-replaced", set_config={"flush.ms": "100"})]
        ).values()
        future.result(TIMEOUT_S)
        del admin
    with Broker(port=0, data_dir=data_dir) as bootstrap:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        kept = describe(admin, "topic", "cfg-kept")
        assert kept["retention.ms"].value == "7000"
        assert kept["max.message.bytes"].value == "1000"
        replaced = describe(admin, "topic", "cfg-replaced")
        assert replaced["flush.ms"].value == "100"
        assert replaced["segment.ms"].value == "604800000"
        error = produce_one(bootstrap, "cfg-kept", 4000)  # still in effect on the reopened log
        assert error is not None
        assert error.code() == KafkaError.MSG_SIZE_TOO_LARGE


# -- kafka-python --------------------------------------------------------------------------------


def test_kp_describe_every_config(kp_admin: KafkaAdminClient) -> None:
    kp_admin.create_topics({"kp-cfg": {"configs": {"retention.ms": "3000"}}})
    everything = kp_admin.describe_configs(
        [
            KpConfigResource(KpConfigResourceType.TOPIC, "kp-cfg"),
            KpConfigResource(KpConfigResourceType.BROKER, "0"),
        ],
        include_synonyms=True,
        config_filter="all",
    )
    topic = everything["topic"]["kp-cfg"]
    assert set(topic) == set(TOPIC_CONFIGS)
    assert topic["retention.ms"]["value"] == "3000"
    assert topic["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert topic["segment.ms"]["config_source"] == "DEFAULT_CONFIG"
    assert topic["retention.ms"]["config_type"] == "LONG"
    assert topic["cleanup.policy"]["config_type"] == "LIST"
    broker = everything["broker"]["0"]
    assert set(BROKER_CONFIGS) <= set(broker)
    writable = {name for name, entry in broker.items() if not entry["read_only"]}
    assert writable == set(DYNAMIC_BROKER_CONFIGS)

    modified = kp_admin.describe_configs(
        [KpConfigResource(KpConfigResourceType.TOPIC, "kp-cfg")]  # default filter: modified
    )
    assert set(modified["topic"]["kp-cfg"]) == {"retention.ms"}
    some = kp_admin.describe_configs(
        [KpConfigResource(KpConfigResourceType.TOPIC, "kp-cfg", ["segment.ms", "no.such"])],
        config_filter="all",
    )
    assert set(some["topic"]["kp-cfg"]) == {"segment.ms"}


def test_kp_alter_configs_both_kinds(kp_admin: KafkaAdminClient) -> None:
    kp_admin.create_topics({"kp-alter": {"configs": {"segment.ms": "60000"}}})
    resource = KpConfigResource(KpConfigResourceType.TOPIC, "kp-alter")

    def current() -> dict[str, str]:
        described = kp_admin.describe_configs([resource])["topic"]["kp-alter"]
        return {name: entry["value"] for name, entry in described.items()}

    # Incremental (the default on a broker that advertises key 44): names checked first (P12)
    result = kp_admin.alter_configs(
        [KpConfigResource(KpConfigResourceType.TOPIC, "kp-alter", {"retention.ms": "4000"})]
    )
    assert result == {"topic": {"kp-alter": "OK"}}
    assert current() == {"segment.ms": "60000", "retention.ms": "4000"}

    # Non-incremental: kafka-python resends the other modified keys to keep them
    result = kp_admin.alter_configs(
        [KpConfigResource(KpConfigResourceType.TOPIC, "kp-alter", {"flush.ms": "500"})],
        incremental=False,
    )
    assert result == {"topic": {"kp-alter": "OK"}}
    assert current() == {"segment.ms": "60000", "retention.ms": "4000", "flush.ms": "500"}

    with pytest.raises(ValueError, match="Unrecognized configs"):
        kp_admin.alter_configs(
            [KpConfigResource(KpConfigResourceType.TOPIC, "kp-alter", {"no.such": "1"})]
        )
    refused = kp_admin.alter_configs(
        [KpConfigResource(KpConfigResourceType.TOPIC, "kp-alter", {"no.such": "1"})],
        raise_on_unknown=False,
    )
    assert "InvalidConfigurationError" in refused["topic"]["kp-alter"]
    assert "no.such" in refused["topic"]["kp-alter"]

    kp_admin.reset_configs(
        [KpConfigResource(KpConfigResourceType.TOPIC, "kp-alter", ["retention.ms"])]
    )
    assert current() == {"segment.ms": "60000", "flush.ms": "500"}


# -- aiokafka ------------------------------------------------------------------------------------


async def test_aio_describe_and_alter_configs(aio_admin: AIOKafkaAdminClient, broker: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker})
    create(admin, "aio-cfg", segment_ms="70000")
    topic = AioConfigResource(AioConfigResourceType.TOPIC, "aio-cfg")

    async def described() -> dict[str, Any]:
        (response,) = await aio_admin.describe_configs([topic])
        ((code, _, _, name, configs),) = response.resources
        assert (code, name) == (0, "aio-cfg")
        return {entry[0]: entry for entry in configs}

    before = await described()
    assert set(before) == set(TOPIC_CONFIGS)
    assert before["segment.ms"][1] == "70000"

    (response,) = await aio_admin.alter_configs(
        [AioConfigResource(AioConfigResourceType.TOPIC, "aio-cfg", {"retention.ms": "8000"})]
    )
    assert [(code, name) for code, _, _, name, *_ in response.resources] == [(0, "aio-cfg")]
    after = await described()
    assert after["retention.ms"][1] == "8000"
    assert after["segment.ms"][1] == "604800000"  # non-incremental: replaced

    (broker_response,) = await aio_admin.describe_configs(
        [AioConfigResource(AioConfigResourceType.BROKER, "0")]
    )
    ((code, _, _, name, configs),) = broker_response.resources
    assert (code, name) == (0, "0")
    assert {entry[0] for entry in configs} >= set(BROKER_CONFIGS)


def test_config_changes_survive_a_crash(broker_process: BrokerProcess) -> None:
    """kill -9: the changes are replayed from the uncompacted metadata log."""
    bootstrap = broker_process.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create(admin, "cfg-crash", retention_ms="7000")
    incremental(admin, "cfg-crash", ("max.message.bytes", SET, "1000"))
    incremental(admin, "cfg-crash", ("retention.ms", DELETE, None))
    del admin
    broker_process.kill()
    broker_process.start()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = describe(admin, "topic", "cfg-crash")
    assert configs["max.message.bytes"].value == "1000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    error = produce_one(bootstrap, "cfg-crash", 4000)
    assert error is not None
    assert error.code() == KafkaError.MSG_SIZE_TOO_LARGE
