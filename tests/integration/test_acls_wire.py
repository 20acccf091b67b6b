"""ACLs on the embedded broker over the raw wire: the principals x resources x operations
matrix (compat/aclkit.py, also run against Apache Kafka in compat/test_differential_acls.py)
with its expected outcomes spelled out, persistence across restarts, the broker without an
authorizer, super users and allow.everyone.if.no.acl.found.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat.aclkit import (
    ALLOW,
    DENY,
    DESCRIBE,
    GROUP,
    LITERAL,
    PREFIXED,
    READ,
    SUPER_USER,
    TOPIC,
    USERS,
    WRITE,
    acl,
    acl_filter,
    connect,
    run_matrix,
)
from kafkito import Broker
from kafkito.broker.auth import UserStore
from kafkito.errors import KafkitoError
from kafkito.testing.wire import WireClient

TOPIC_OPS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))  # every topic operation
OMITTED = -(2**31)


def users_file(root: Path) -> str:
    path = str(root / "users.json")
    store = UserStore.load(path, missing_ok=True)
    for user, password in USERS.items():
        store.set_password(user, password)
    store.save()
    return path


def acl_broker(root: Path, **overrides: Any) -> Broker:
    settings: dict[str, Any] = {
        "port": 0,
        "data_dir": str(root / "data"),
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_users_file": users_file(root),
        "sasl_mechanisms": ("PLAIN",),
        "authorizer": "acl",
        "super_users": (SUPER_USER,),
    }
    return Broker(**{**settings, **overrides})


@pytest.fixture
def bootstrap(tmp_path: Path) -> Iterator[str]:
    with acl_broker(tmp_path) as address:
        yield address


def test_the_matrix(bootstrap: str) -> None:
    p = "m-"
    seen = run_matrix(bootstrap, p)
    alice, bob, carol = seen["alice"], seen["bob"], seen["carol"]
    denied_topic = "topic_authorization_failed"
    # Metadata hides what may not be described; READ/WRITE imply DESCRIBE
    # (a DENY of READ does not deny DESCRIBE: pay-secret is listed, not readable)
    assert sorted(alice["metadata_all"]) == [f"{p}orders", f"{p}pay-1", f"{p}pay-secret"]
    assert alice["metadata_all"][f"{p}pay-1"] == (1 << READ) | (1 << DESCRIBE)
    assert alice["metadata_all"][f"{p}orders"] == (1 << WRITE) | (1 << DESCRIBE)
    assert f"{p}orders" not in bob["metadata_all"]  # DENY DESCRIBE beats ALL on *
    assert carol["metadata_all"] == {}
    assert carol["metadata_named"][f"{p}absent"] == denied_topic  # existence not disclosed
    assert bob["metadata_named"][f"{p}absent"] == "unknown_topic_or_partition"
    # the DENY of pay-secret beats the prefixed ALLOW; a host ACL elsewhere does not apply
    assert alice["pay-1"]["fetch"] == "ok"
    assert alice["pay-secret"]["fetch"] == denied_topic
    assert alice["hosty"]["fetch"] == denied_topic
    assert alice["orders"]["produce"] == "ok"
    assert alice["orders"]["fetch"] == denied_topic
    assert alice["pay-1"]["produce"] == denied_topic
    assert bob["pay-1"]["alter_configs"] == "ok"
    assert alice["pay-1"]["alter_configs"] == denied_topic
    # auto-creation and CreateTopics need CREATE on the cluster or the topic
    # (auto-creation asks DESCRIBE first, which CREATE does not imply: Kafka's order too)
    assert alice["auto_create"] == {f"{p}new-auto": denied_topic, f"{p}other-auto": denied_topic}
    assert bob["auto_create"] == {f"{p}new-auto": "ok", f"{p}other-auto": "ok"}
    assert alice["create_topic"] == {"new-x": "ok", "other-x": denied_topic}
    # groups, transactional ids, the cluster
    assert alice["g-alice"]["commit pay-1"] == "ok"
    assert alice["g-alice"]["commit orders"] == denied_topic  # WRITE is not READ
    assert bob["g-alice"]["commit pay-1"] == "group_authorization_failed"
    assert alice["g-alice"]["describe"] == ("ok", (1 << READ) | (1 << DESCRIBE))
    assert carol["public"]["describe"] == ("ok", 1 << DESCRIBE)
    assert carol["list_groups"] == [f"{p}public"]
    assert bob["list_groups"] == [f"{p}cg", f"{p}g-alice", f"{p}public"]  # DESCRIBE on cluster
    assert alice["txn"]["init"] == "ok"
    assert alice["txn"]["init_other"] == "transactional_id_authorization_failed"
    assert alice["idempotent"] == "ok"  # WRITE on a topic is enough (KIP-679)
    assert carol["idempotent"] == "cluster_authorization_failed"
    assert bob["cluster_ops"] == (1 << DESCRIBE) | (1 << 12)
    assert alice["acl_apis"]["describe"] == "cluster_authorization_failed"
    assert bob["delete doomed"] == "ok"
    assert alice["delete doomed"] == denied_topic
    assert alice["kip848"]["join"] == ("ok", None)
    assert alice["kip848"]["join hidden topic"] == (denied_topic, None)
    assert bob["kip848"]["join"] == ("group_authorization_failed", None)
    assert alice["list_transactions"] == [f"{p}tx-alice"] and bob["list_transactions"] == []
    assert bob["describe_log_dirs"] == "ok" and alice["describe_log_dirs"] != "ok"
    assert alice["pay-1"]["describe_producers"] == "ok"  # READ
    assert alice["pay-1"]["delete_records"] == denied_topic
    txn = alice["txn_apis"]
    assert txn["add partitions: orders and hosty"] == {
        f"{p}hosty": denied_topic,
        f"{p}orders": "operation_not_attempted",  # nothing added when one topic is refused
    }
    assert txn["add partitions: orders"] == {f"{p}orders": "ok"}
    assert txn["add offsets g-none"] == "group_authorization_failed"
    assert txn["txn offset commit g-alice"] == "ok" and txn["end (abort)"] == "ok"
    assert set(bob["txn_apis"]["add partitions: orders"].values()) == {
        "transactional_id_authorization_failed"
    }
    # the super user is allowed even where a DENY names it
    assert seen["admin_super"]["produce pay-1"] == "ok"
    assert seen["alice_after_delete"] == denied_topic  # its prefixed ALLOW was deleted


def test_acls_survive_restarts_and_deletes_stay_deleted(tmp_path: Path) -> None:
    wanted = [
        acl(TOPIC, "keep", LITERAL, "User:alice", READ, ALLOW),
        acl(TOPIC, "pre", PREFIXED, "User:bob", WRITE, DENY),
        acl(GROUP, "g", LITERAL, "User:*", READ, ALLOW, host="10.1.2.3"),
        acl(TOPIC, "gone", LITERAL, "User:alice", READ, ALLOW),
    ]
    with acl_broker(tmp_path) as address, connect(address, "admin") as admin:
        assert [code for code, _ in admin.create_acls(wanted)] == ["ok"] * 4
        assert admin.create_acls(wanted[:1]) == [("ok", None)]  # again: no change
        assert admin.delete_acls([acl_filter(name="gone")])[0][1] == [
            (2, "gone", 3, "User:alice", "*", 3, 3)
        ]
        before = admin.describe_acls()
    assert len(before[1]) == 3
    for _ in range(2):  # a clean stop compacts the metadata log; the second start reads that
        with acl_broker(tmp_path) as address, connect(address, "admin") as admin:
            assert admin.describe_acls() == before
        with acl_broker(tmp_path) as address, connect(address, "alice") as alice:
            assert alice.metadata([]) == {}
    with acl_broker(tmp_path) as address:
        with connect(address, "admin") as admin:
            admin.r(
                19,
                7,
                {
                    "topics": [{"name": "keep", "num_partitions": 1, "replication_factor": 1}],
                    "timeout": 5000,
                },
            )
        with connect(address, "alice") as alice:
            assert alice.fetch("keep") == "ok"


def test_without_an_authorizer_acl_apis_answer_security_disabled(tmp_path: Path) -> None:
    with acl_broker(tmp_path, authorizer="none") as address, connect(address, "alice") as c:
        assert c.create_acls([acl(TOPIC, "t", LITERAL, "User:a", READ, ALLOW)]) == [
            ("security_disabled", None)
        ]
        assert c.describe_acls()[0] == "security_disabled"
        assert c.delete_acls([acl_filter()]) == [("security_disabled", [])]
        # everything is allowed, and the masks list every operation the type supports
        assert c.metadata(["free"], create=True) == {"free": "ok"}
        assert c.metadata_all("free") == {"free": TOPIC_OPS}
        assert c.cluster_ops() == sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))


def test_allow_everyone_if_no_acl_found(tmp_path: Path) -> None:
    with acl_broker(tmp_path, allow_everyone_if_no_acl_found=True) as address:
        with connect(address, "admin") as admin:
            admin.create_acls([acl(TOPIC, "closed", LITERAL, "User:bob", READ, ALLOW)])
        with connect(address, "carol") as carol:
            assert carol.metadata(["open"], create=True) == {"open": "ok"}
            assert carol.produce("open") == "ok"
            assert carol.metadata(["closed"]) == {"closed": "topic_authorization_failed"}


def test_plaintext_connections_are_anonymous(tmp_path: Path) -> None:
    with (
        Broker(
            port=0,
            data_dir=str(tmp_path / "data"),
            authorizer="acl",
            super_users=("User:ANONYMOUS",),
        ) as address,
        WireClient(address) as client,
    ):
        answer = client.request(29, 3, acl_filter())
        assert answer.error_code == 0
    with (
        Broker(port=0, data_dir=str(tmp_path / "data2"), authorizer="acl") as address,
        WireClient(address) as client,
    ):
        answer = client.request(29, 3, acl_filter())
        assert int(answer.error_code) == 31  # CLUSTER_AUTHORIZATION_FAILED


def test_bad_settings_are_named() -> None:
    with pytest.raises(KafkitoError, match="super user 'admin'"):
        Broker(authorizer="acl", super_users=("admin",))
    with pytest.raises(KafkitoError, match="authorizer must be"):
        Broker(authorizer="ranger")


def test_a_reachable_broker_without_authentication_warns_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kafkito")
    with Broker(port=0, host="0.0.0.0", data_dir=str(tmp_path / "open")):
        pass
    loud = [r.getMessage() for r in caplog.records if "WITHOUT AUTHENTICATION" in r.getMessage()]
    assert len(loud) == 1 and "0.0.0.0" in loud[0], loud
    caplog.clear()
    with acl_broker(tmp_path, host="0.0.0.0"), Broker(port=0, data_dir=str(tmp_path / "lo")):
        pass  # SASL, or loopback only: no warning
    assert not [r for r in caplog.records if "WITHOUT AUTHENTICATION" in r.getMessage()]
