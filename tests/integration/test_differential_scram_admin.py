"""Describe/AlterUserScramCredentials (KIP-554), compared with Apache Kafka 4.1.

On the wire: listing every user, unknown and duplicate names, upserting SHA-256 and SHA-512
credentials, each refusal (iterations, mechanism, empty name, a user twice, deleting what is not
there), deleting; the codes and Kafka's messages are compared. Through the clients:
confluent-kafka's AdminClient and kafka-python's KafkaAdminClient describe and alter on both
brokers. kafkito only: a user made by AlterUserScramCredentials logs in with SCRAM (the stored
keys are right), and without DESCRIBE/ALTER on the cluster both APIs are refused.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from differential_admin import REFERENCE_NODE_ID, Target, code_name, same, unique, wait_for
from kafka.admin import KafkaAdminClient

from kafkito import Broker
from kafkito.broker.auth.store import UserStore
from kafkito.testing.apache_kafka import ApacheKafka

SHA256, SHA512 = 1, 2
SALT = b"0123456789abcdef"


@pytest.fixture
def kafkito(tmp_path: Path) -> Iterator[Target]:
    with Broker(port=0, node_id=REFERENCE_NODE_ID, data_dir=str(tmp_path / "data")) as bootstrap:
        yield Target("kafkito", bootstrap)


@pytest.fixture
def kafka(kafka_reference: ApacheKafka) -> Target:
    return Target("kafka", kafka_reference.bootstrap)


def _salted(mechanism: int, password: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(
        "sha256" if mechanism == SHA256 else "sha512", password, SALT, iterations
    )


def _describe(target: Target, users: list[str] | None) -> Any:
    answer = target.request(
        50, 0, {"users": None if users is None else [{"name": u} for u in users]}
    )
    # Kafka lists a user's mechanisms in no particular order (a hash map): sorted on both
    results = sorted(
        (
            r.user,
            code_name(r.error_code),
            r.error_message,
            sorted((int(c.mechanism), c.iterations) for c in r.credential_infos),
        )
        for r in answer.results
    )
    return code_name(answer.error_code), results


def _alter(
    target: Target,
    deletions: list[tuple[str, int]],
    upsertions: list[tuple[str, int, int]],
) -> Any:
    answer = target.request(
        51,
        0,
        {
            "deletions": [{"name": n, "mechanism": m} for n, m in deletions],
            "upsertions": [
                {
                    "name": n,
                    "mechanism": m,
                    "iterations": i,
                    "salt": SALT,
                    "salted_password": _salted(m, b"secret", i),
                }
                for n, m, i in upsertions
            ],
        },
    )
    return sorted((r.user, code_name(r.error_code), r.error_message) for r in answer.results)


def test_scram_credentials_described_and_altered_as_kafka(kafkito: Target, kafka: Target) -> None:
    u1, u2, u3, nobody = (unique(n) for n in ("scram-a", "scram-b", "scram-c", "nobody"))

    def scenario(target: Target) -> Any:
        seen: dict[str, Any] = {}
        seen["unknown"] = _describe(target, [nobody])
        seen["twice"] = _describe(target, [nobody, nobody])
        seen["empty_name"] = _describe(target, [""])
        seen["upsert"] = _alter(target, [], [(u1, SHA256, 4096), (u2, SHA512, 8192)])
        mine = {u1: [(SHA256, 4096)], u2: [(SHA512, 8192)]}

        def listed() -> Any:
            code, results = _describe(target, None)
            found = {user: infos for user, _, _, infos in results if user in mine}
            return (code, found) if found == mine else None

        seen["all"] = wait_for(listed, f"{target.name}: the new users listed")
        seen["named"] = _describe(target, [u1, u2, nobody])
        seen["refused"] = [
            _alter(target, [], [(u3, SHA256, 100)]),
            _alter(target, [], [(u3, SHA256, 20000)]),
            _alter(target, [], [(u3, 0, 4096)]),
            _alter(target, [], [(u3, 3, 4096)]),
            _alter(target, [], [("", SHA256, 4096)]),
            _alter(target, [(u1, SHA256)], [(u1, SHA256, 4096)]),
            _alter(target, [], [(u3, SHA256, 4096), (u3, SHA512, 8192)]),
            _alter(target, [(nobody, SHA256)], []),
            _alter(target, [(u1, SHA512)], []),  # u1 has SHA-256 only
        ]
        seen["second_mechanism"] = _alter(target, [], [(u1, SHA512, 4096)])
        wait_for(lambda: len(_describe(target, [u1])[1][0][3]) == 2, f"{target.name}: u1 has both")
        seen["both"] = _describe(target, [u1])
        seen["delete"] = _alter(target, [(u1, SHA256), (u2, SHA512)], [])
        wait_for(
            lambda: _describe(target, [u2])[1][0][1] == "RESOURCE_NOT_FOUND",
            f"{target.name}: u2 deleted",
        )
        seen["after_delete"] = _describe(target, [u1, u2])
        seen["cleanup"] = _alter(target, [(u1, SHA512)], [])
        return seen

    same(scenario, kafkito, kafka)


def test_scram_credentials_through_confluent_kafka_and_kafka_python(
    kafkito: Target, kafka: Target
) -> None:
    user = unique("scram-client")

    def scenario(target: Target) -> Any:
        admin = AdminClient({"bootstrap.servers": target.bootstrap})
        seen: dict[str, Any] = {}
        upsert = UserScramCredentialUpsertion(
            user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"secret", SALT
        )
        for name, future in admin.alter_user_scram_credentials([upsert]).items():
            seen["alter"] = (name, future.result(timeout=20))

        def described() -> Any:
            try:
                found = admin.describe_user_scram_credentials([user])[user].result(timeout=20)
            except KafkaException:
                return None
            return [(i.mechanism.value, i.iterations) for i in found.scram_credential_infos]

        seen["confluent"] = wait_for(described, f"{target.name}: {user} described")
        kp = KafkaAdminClient(bootstrap_servers=target.bootstrap, request_timeout_ms=20_000)
        try:
            answer = kp.describe_user_scram_credentials([user, user + "-x"])
            seen["kafka_python"] = {
                name: (
                    found["error"],
                    [(int(c["mechanism"]), c["iterations"]) for c in found["credential_infos"]],
                )
                for name, found in answer.items()
            }
        finally:
            kp.close()
        with pytest.raises(KafkaException) as missing:
            admin.describe_user_scram_credentials([user + "-x"])[user + "-x"].result(timeout=20)
        seen["missing"] = missing.value.args[0].name()
        delete = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)
        for _, future in admin.alter_user_scram_credentials([delete]).items():
            seen["delete"] = future.result(timeout=20)
        return seen

    seen = same(scenario, kafkito, kafka)
    assert seen["confluent"] == [(SHA512, 8192)]
    assert seen["missing"] == "RESOURCE_NOT_FOUND"


def _logs_in(config: dict[str, Any], user: str, password: str) -> bool:
    client = AdminClient({**config, "sasl.username": user, "sasl.password": password})
    try:
        client.list_topics(timeout=5)
    except KafkaException:
        return False
    return True


def test_a_user_made_over_the_wire_logs_in_with_scram(tmp_path: Path) -> None:
    users = str(tmp_path / "users.json")
    store = UserStore.load(users, missing_ok=True)
    store.set_password("admin", "admin-secret")
    store.save()
    with Broker(
        port=0,
        data_dir=str(tmp_path / "data"),
        security_protocol="SASL_PLAINTEXT",
        sasl_users_file=users,
    ) as bootstrap:
        sasl = {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-256",
        }
        admin = AdminClient({**sasl, "sasl.username": "admin", "sasl.password": "admin-secret"})
        salt = os.urandom(16)
        upsert = UserScramCredentialUpsertion(
            "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"carol-pw", salt
        )
        for future in admin.alter_user_scram_credentials([upsert]).values():
            assert future.result(timeout=20) is None
        assert _logs_in(sasl, "carol", "wrong") is False
        assert _logs_in(sasl, "carol", "carol-pw") is True
        assert "carol" in UserStore.load(users).users  # in the file the listener reads


def test_without_cluster_permissions_both_are_refused(tmp_path: Path) -> None:
    with Broker(port=0, data_dir=str(tmp_path / "data"), authorizer="acl") as bootstrap:
        target = Target("kafkito", bootstrap)
        assert _describe(target, None) == ("CLUSTER_AUTHORIZATION_FAILED", [])
        assert _alter(target, [], [("dave", SHA256, 4096)]) == [
            ("dave", "CLUSTER_AUTHORIZATION_FAILED", None)
        ]
