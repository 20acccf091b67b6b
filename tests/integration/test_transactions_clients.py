"""Transactions with real clients, each scenario run on the embedded broker and on Apache
Kafka: the expected observations, and the same ones on both brokers.

confluent-kafka, kafka-python and aiokafka produce (commit, abort); confluent-kafka, kcat,
kafka-python and aiokafka read at read_committed and read_uncommitted. The LSO, fencing,
timeout and offsets-in-a-transaction scenarios use confluent-kafka (librdkafka), the client
the library is built on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from txnkit import (
    EXPECTED_ALL,
    EXPECTED_COMMITTED,
    aio_commit_abort,
    aio_fencing_scenario,
    aio_offsets_scenario,
    aio_read_committed,
    ck_commit_abort,
    create_topic,
    fencing_scenario,
    kp_commit_abort,
    kp_fencing_scenario,
    kp_offsets_scenario,
    kp_read_committed,
    lso_scenario,
    member_offsets_scenario,
    observe,
    offsets_scenario,
    timeout_scenario,
)

from kafkito.testing.apache_kafka import ApacheKafka


def _fresh() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return f"txn-{suffix}", f"tid-{suffix}"


def on_both(
    broker: str, kafka: ApacheKafka, scenario: Callable[[str, str, str], object]
) -> tuple[object, object]:
    results = []
    for bootstrap in (broker, kafka.bootstrap):
        topic, txn_id = _fresh()
        create_topic(bootstrap, topic)
        results.append(scenario(bootstrap, topic, txn_id))
    return results[0], results[1]


PRODUCERS = {
    "confluent": ck_commit_abort,
    "kafka-python": kp_commit_abort,
    "aiokafka": aio_commit_abort,
}


@pytest.mark.parametrize("client", sorted(PRODUCERS))
def test_commit_and_abort(broker: str, kafka_reference: ApacheKafka, client: str) -> None:
    def scenario(bootstrap: str, topic: str, txn_id: str) -> object:
        PRODUCERS[client](bootstrap, topic, txn_id)
        seen = observe(bootstrap, topic)
        if client == "kafka-python":
            seen["own_reader"] = kp_read_committed(bootstrap, topic, len(EXPECTED_COMMITTED))
        if client == "aiokafka":
            seen["own_reader"] = aio_read_committed(bootstrap, topic, len(EXPECTED_COMMITTED))
        return seen

    ours, kafka = on_both(broker, kafka_reference, scenario)
    assert isinstance(ours, dict)
    assert ours["committed"] == EXPECTED_COMMITTED
    assert ours["uncommitted"] == EXPECTED_ALL
    assert ours["hw"] == ours["lso"] == 10  # 7 records and 3 markers
    if ours["kcat_committed"] is not None:
        assert ours["kcat_committed"] == EXPECTED_COMMITTED
        assert ours["kcat_uncommitted"] == EXPECTED_ALL
    if "own_reader" in ours:
        assert ours["own_reader"] == EXPECTED_COMMITTED
    assert ours == kafka


def test_open_transaction_holds_back_read_committed(
    broker: str, kafka_reference: ApacheKafka
) -> None:
    ours, kafka = on_both(broker, kafka_reference, lso_scenario)
    assert isinstance(ours, list)
    (_, open_), (_, done) = ours
    assert open_["committed"] == ["before"]
    assert open_["uncommitted"] == ["before", "open0", "after"]
    assert (open_["lso"], open_["hw"]) == (1, 3)
    assert done["committed"] == ["before", "open0", "after"]
    assert done["lso"] == done["hw"] == 4
    assert ours == kafka


FENCING = {
    "confluent": fencing_scenario,
    "kafka-python": kp_fencing_scenario,
    "aiokafka": aio_fencing_scenario,
}


@pytest.mark.parametrize("client", sorted(FENCING))
def test_a_new_producer_fences_the_old_and_aborts_its_transaction(
    broker: str, kafka_reference: ApacheKafka, client: str
) -> None:
    ours, kafka = on_both(broker, kafka_reference, FENCING[client])
    assert isinstance(ours, dict)
    assert ours["committed"] == ["winner"]
    assert ours["uncommitted"] == ["zombie", "winner"]
    assert ours["zombie_commit"] != "committed"
    assert ours == kafka


def test_transaction_timeout_aborts(broker: str, kafka_reference: ApacheKafka) -> None:
    ours, kafka = on_both(broker, kafka_reference, timeout_scenario)
    assert isinstance(ours, dict)
    assert ours["committed"] == []
    assert ours["uncommitted"] == ["late"]
    assert ours["late_commit"] != "committed"
    assert ours == kafka


OFFSETS = {
    "confluent": offsets_scenario,
    "kafka-python": kp_offsets_scenario,
    "aiokafka": aio_offsets_scenario,
}


@pytest.mark.parametrize("client", sorted(OFFSETS))
def test_offsets_in_a_transaction_reach_the_group_only_on_commit(
    broker: str, kafka_reference: ApacheKafka, client: str
) -> None:
    def scenario(bootstrap: str, topic: str, txn_id: str) -> object:
        return OFFSETS[client](bootstrap, topic, txn_id, f"g-{txn_id}")

    ours, kafka = on_both(broker, kafka_reference, scenario)
    assert ours == [(False, -1001), (True, 7), ["o7"]]
    assert ours == kafka


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_a_group_member_commits_its_offsets_in_a_transaction(
    broker: str, kafka_reference: ApacheKafka, protocol: str
) -> None:
    """The member's generation (classic) or member epoch (KIP-848) goes with the offsets."""

    def scenario(bootstrap: str, topic: str, txn_id: str) -> object:
        return member_offsets_scenario(bootstrap, topic, txn_id, f"g-{txn_id}", protocol)

    ours, kafka = on_both(broker, kafka_reference, scenario)
    assert ours == [(["in0", "in1", "in2"], 3), ["in0", "in1", "in2", "out"]]
    assert ours == kafka
