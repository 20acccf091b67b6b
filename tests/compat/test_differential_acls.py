"""ACLs, kafkito against Apache Kafka's StandardAuthorizer: the same allow/deny and codes.

Both brokers get the same SASL PLAIN users (compat/aclkit.py: admin, a super user; alice, bob;
carol without any ACL), the same ACLs made through CreateAcls by the super user, and the same
requests from each principal through every API that checks one (principals x resources x
operations): what each principal sees in Metadata (topics it may not describe are hidden), the
authorized-operation masks, the error code of every refused request (TOPIC_, GROUP_,
CLUSTER_, TRANSACTIONAL_ID_AUTHORIZATION_FAILED), what DescribeAcls lists for each filter
(MATCH, PREFIXED, a principal) and what DeleteAcls deletes.

The reference is its own node (SASL listener and authorizer on), started once for the module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat.aclkit import SUPER_USER, USERS, run_matrix, run_oauthbearer
from compat.differential import assert_same_observations
from kafkito import Broker
from kafkito.broker.auth import UserStore
from kafkito.testing.apache_kafka import ApacheKafka, ApacheKafkaError


@pytest.fixture(scope="module")
def kafka_acl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    kafka = ApacheKafka(
        data_dir=tmp_path_factory.mktemp("kafka-acl"),
        sasl_users=USERS,
        sasl_oauthbearer=True,
        authorizer=True,
        super_users=[SUPER_USER],
    )
    try:
        kafka.start()
    except ApacheKafkaError as exc:  # no JDK or Maven here: say so, do not fail the suite
        pytest.skip(f"Apache Kafka not available: {exc}")
    try:
        yield kafka
    finally:
        kafka.stop()


def users_file(root: Path) -> str:
    path = str(root / "users.json")
    store = UserStore.load(path, missing_ok=True)
    for user, password in USERS.items():
        store.set_password(user, password)
    store.save()
    return path


@pytest.fixture
def kafkito_acl(tmp_path: Path) -> Iterator[str]:
    with Broker(
        port=0,
        data_dir=str(tmp_path / "data"),
        security_protocol="SASL_PLAINTEXT",
        sasl_users_file=users_file(tmp_path),
        sasl_mechanisms=("PLAIN", "OAUTHBEARER"),
        authorizer="acl",
        super_users=(SUPER_USER,),
    ) as bootstrap:
        yield bootstrap


def test_the_acl_matrix_matches_the_standard_authorizer(
    kafkito_acl: str, kafka_acl: ApacheKafka
) -> None:
    prefix = f"acl{uuid.uuid4().hex[:6]}-"
    ours = run_matrix(kafkito_acl, prefix)
    theirs = run_matrix(kafka_acl.sasl_bootstrap, prefix)
    assert_same_observations(ours, theirs)
    # and what both answered is what the rules say (not the same mistake twice)
    assert ours["carol"]["metadata_all"] == {}
    assert ours["alice"]["pay-secret"]["fetch"] == "topic_authorization_failed"
    assert ours["alice"]["pay-1"]["fetch"] == "ok"
    assert ours["admin_super"]["produce pay-1"] == "ok"


def test_oauthbearer_logins_and_principals_match(kafkito_acl: str, kafka_acl: ApacheKafka) -> None:
    """OAUTHBEARER with unsecured JWTs (Kafka's development validator): which tokens log in,
    the error challenge and the failure after it, and ACLs applied to the token's principal."""
    prefix = f"oauth{uuid.uuid4().hex[:6]}-"
    ours = run_oauthbearer(kafkito_acl, prefix)
    theirs = run_oauthbearer(kafka_acl.sasl_bootstrap, prefix)
    assert_same_observations(
        ours,
        theirs,
        allowed={
            "no bearer": "a malformed OAUTHBEARER message: kafkito answers "
            "SASL_AUTHENTICATION_FAILED before closing, Kafka closes without an answer "
            "(docs/broker.md, Differences)"
        },
    )
    assert ours["no bearer"] == ("sasl_authentication_failed", b"")
    assert ours["valid"] == ("ok", b"")
    assert ours["expired"] == ("ok", b'{"status":"invalid_token"}', "sasl_authentication_failed")
    assert ours["alice produce"] == "ok" and ours["carol produce"] == "topic_authorization_failed"
