"""ACL scenarios over the raw wire, the same on kafkito and on Apache Kafka (StandardAuthorizer).

`AclWire` is one SASL PLAIN connection (SaslHandshake v1, SaslAuthenticate v2) of a user, with
one method per request the matrix makes; each returns what a client observes: error codes
(`outcome` keeps the authorization codes and the deterministic ones, and folds the transient
coordinator codes into "ok", since a fresh Kafka loads its coordinators a moment later),
visible names and authorized-operation masks.

`run_matrix` lays out a scenario (topics, groups and ACLs, made by the super user `admin`),
then asks every request as each principal and returns the observations as a dict that two
brokers must share: principals x resources x operations, through every API that checks one.

Users (PLAIN): admin (super user), alice, bob, carol (no ACL at all). Names start with a run
prefix so that a session-wide Kafka is not confused by an earlier run.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kafkito.errors import ErrorCode
from kafkito.testing.wire import WireClient, record_batch

USERS = {
    "admin": "admin-secret-pw-1",
    "alice": "alice-secret-pw-1",
    "bob": "bob-secret-pw-1",
    "carol": "carol-secret-pw-1",
}
SUPER_USER = "User:admin"

# wire codes (Kafka's ResourceType, PatternType, AclOperation, AclPermissionType)
ANY_TYPE, TOPIC, GROUP, CLUSTER, TXN = 1, 2, 3, 4, 5
ANY_PATTERN, MATCH, LITERAL, PREFIXED = 1, 2, 3, 4
ANY_OP, ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE = 1, 2, 3, 4, 5, 6, 7, 8
DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE = 10, 11, 12
ANY_PERM, DENY, ALLOW = 1, 2, 3

AUTH_CODES = {
    ErrorCode.topic_authorization_failed,
    ErrorCode.group_authorization_failed,
    ErrorCode.cluster_authorization_failed,
    ErrorCode.transactional_id_authorization_failed,
    ErrorCode.security_disabled,
}
KEPT_CODES = AUTH_CODES | {
    ErrorCode.none,
    ErrorCode.unknown_topic_or_partition,
    ErrorCode.invalid_request,
    ErrorCode.topic_already_exists,
    ErrorCode.operation_not_attempted,
    ErrorCode.sasl_authentication_failed,
}
TRANSIENT = {
    ErrorCode.coordinator_not_available,
    ErrorCode.coordinator_load_in_progress,
    ErrorCode.not_coordinator,
    ErrorCode.concurrent_transactions,
}


def outcome(code: Any) -> str:
    """What a client takes from an error code: the code's name for the kept ones, "ok" for
    success and for transient coordinator codes, else "other"."""
    code = ErrorCode(int(code))
    if code in TRANSIENT or code is ErrorCode.none:
        return "ok"
    return code.name if code in KEPT_CODES else f"other:{code.name}"


def acl(
    rtype: int, name: str, pattern: int, principal: str, op: int, perm: int, host: str = "*"
) -> dict[str, Any]:
    """A CreateAcls creation (the wire's field names)."""
    return {
        "resource_type": rtype,
        "resource_name": name,
        "resource_pattern_type": pattern,
        "principal": principal,
        "host": host,
        "operation": op,
        "permission_type": perm,
    }


def acl_filter(
    rtype: int = ANY_TYPE,
    name: str | None = None,
    pattern: int = ANY_PATTERN,
    principal: str | None = None,
    op: int = ANY_OP,
    perm: int = ANY_PERM,
    host: str | None = None,
) -> dict[str, Any]:
    return {
        "resource_type_filter": rtype,
        "resource_name_filter": name,
        "pattern_type_filter": pattern,
        "principal_filter": principal,
        "host_filter": host,
        "operation": op,
        "permission_type": perm,
    }


class AclWire:
    """One authenticated connection; each method is one request and returns observations."""

    def __init__(self, client: WireClient) -> None:
        self.client = client
        self.last = ErrorCode.none
        """The raw code of the last observation (set-up steps wait for a real success)."""

    def seen(self, code: Any) -> str:
        self.last = ErrorCode(int(code))
        return outcome(code)

    def r(self, key: int, version: int, body: dict[str, Any]) -> Any:
        return self.client.request(key, version, body)

    # -- ACL APIs --------------------------------------------------------------------------

    def create_acls(self, creations: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
        answer = self.r(30, 3, {"creations": creations})
        # Messages only where they are Kafka's fixed text: a refusal's message names the
        # request and the connection, and success is "" on Kafka and null on kafkito.
        return [
            (
                outcome(x.error_code),
                x.error_message if x.error_code == ErrorCode.invalid_request else None,
            )
            for x in answer.results
        ]

    def describe_acls(
        self, wanted: dict[str, Any] | None = None
    ) -> tuple[str, list[tuple[Any, ...]]]:
        answer = self.r(29, 3, wanted or acl_filter())
        rows = sorted(
            (
                int(res.resource_type),
                res.resource_name,
                int(res.pattern_type),
                a.principal,
                a.host,
                int(a.operation),
                int(a.permission_type),
            )
            for res in answer.resources
            for a in res.acls
        )
        return outcome(answer.error_code), rows

    def delete_acls(self, filters: list[dict[str, Any]]) -> list[tuple[str, list[tuple[Any, ...]]]]:
        answer = self.r(31, 3, {"filters": filters})
        return [
            (
                outcome(f.error_code),
                sorted(
                    (
                        int(m.resource_type),
                        m.resource_name,
                        int(m.pattern_type),
                        m.principal,
                        m.host,
                        int(m.operation),
                        int(m.permission_type),
                    )
                    for m in f.matching_acls
                ),
            )
            for f in answer.filter_results
        ]

    # -- topics ----------------------------------------------------------------------------

    def metadata_all(self, prefix: str) -> dict[str, int]:
        """Every visible topic of the run (name -> authorized operations)."""
        answer = self.r(
            3,
            12,
            {
                "topics": None,
                "allow_auto_topic_creation": False,
                "include_topic_authorized_operations": True,
            },
        )
        return {
            t.name: int(t.topic_authorized_operations)
            for t in answer.topics
            if t.name and t.name.startswith(prefix)
        }

    def metadata(self, names: list[str], *, create: bool = False) -> dict[str, str]:
        answer = self.r(
            3,
            12,
            {
                "topics": [{"name": n, "topic_id": None} for n in names],
                "allow_auto_topic_creation": create,
                "include_topic_authorized_operations": False,
            },
        )
        return {t.name: outcome(t.error_code) for t in answer.topics}

    def cluster_ops(self) -> int:
        answer = self.r(60, 1, {"include_cluster_authorized_operations": True})
        return int(answer.cluster_authorized_operations)

    def produce(self, topic: str, *, txn: str | None = None) -> str:
        batch = record_batch([(b"k", b"v", [])])
        answer = self.r(
            0,
            9,
            {
                "transactional_id": txn,
                "acks": 1,
                "timeout": 5000,
                "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}],
            },
        )
        return self.seen(answer.responses[0].partition_responses[0].error_code)

    def fetch(self, topic: str) -> str:
        answer = self.r(
            1,
            12,
            {
                "max_wait": 0,
                "min_bytes": 0,
                "max_bytes": 1 << 20,
                "isolation_level": 0,
                "session_id": 0,
                "session_epoch": -1,
                "topics": [
                    {
                        "topic": topic,
                        "partitions": [
                            {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}
                        ],
                    }
                ],
            },
        )
        return outcome(answer.responses[0].partitions[0].error_code)

    def list_offsets(self, topic: str) -> str:
        answer = self.r(
            2,
            7,
            {
                "replica_id": -1,
                "isolation_level": 0,
                "topics": [
                    {"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}
                ],
            },
        )
        return outcome(answer.topics[0].partitions[0].error_code)

    def create_topic(self, name: str) -> str:
        answer = self.r(
            19,
            7,
            {
                "topics": [{"name": name, "num_partitions": 1, "replication_factor": 1}],
                "timeout": 10000,
                "validate_only": True,
            },
        )
        return outcome(answer.topics[0].error_code)

    def create_partitions(self, name: str) -> str:
        answer = self.r(
            37,
            3,
            {
                "topics": [{"name": name, "count": 2, "assignments": None}],
                "timeout": 10000,
                "validate_only": True,
            },
        )
        return outcome(answer.results[0].error_code)

    def delete_topic(self, name: str) -> str:
        answer = self.r(20, 6, {"topics": [{"name": name, "topic_id": None}], "timeout": 10000})
        return outcome(answer.responses[0].error_code)

    def describe_configs(self, rtype: int, name: str) -> str:
        answer = self.r(
            32,
            4,
            {
                "resources": [
                    {
                        "resource_type": rtype,
                        "resource_name": name,
                        "configuration_keys": ["cleanup.policy"],
                    }
                ],
            },
        )
        return outcome(answer.results[0].error_code)

    def alter_configs(self, rtype: int, name: str, key: str, value: str) -> str:
        answer = self.r(
            44,
            1,
            {
                "resources": [
                    {
                        "resource_type": rtype,
                        "resource_name": name,
                        "configs": [{"name": key, "config_operation": 0, "value": value}],
                    }
                ],
                "validate_only": True,
            },
        )
        return outcome(answer.responses[0].error_code)

    # -- groups ----------------------------------------------------------------------------

    def find_coordinator(self, key: str, key_type: int = 0) -> str:
        answer = self.r(10, 4, {"key_type": key_type, "coordinator_keys": [key]})
        return outcome(answer.coordinators[0].error_code)

    def commit(self, group: str, topic: str) -> str:
        answer = self.r(
            8,
            8,
            {
                "group_id": group,
                "generation_id_or_member_epoch": -1,
                "member_id": "",
                "group_instance_id": None,
                "topics": [
                    {
                        "name": topic,
                        "partitions": [
                            {
                                "partition_index": 0,
                                "committed_offset": 0,
                                "committed_leader_epoch": -1,
                                "committed_metadata": "",
                            }
                        ],
                    }
                ],
            },
        )
        return self.seen(answer.topics[0].partitions[0].error_code)

    def offset_fetch(self, group: str, topic: str | None) -> tuple[str, dict[str, str]]:
        topics = None if topic is None else [{"name": topic, "partition_indexes": [0]}]
        answer = self.r(
            9, 8, {"groups": [{"group_id": group, "topics": topics}], "require_stable": False}
        )
        g = answer.groups[0]
        return outcome(g.error_code), {
            t.name: outcome(t.partitions[0].error_code) for t in g.topics
        }

    def describe_group(self, group: str) -> tuple[str, int]:
        answer = self.r(15, 5, {"groups": [group], "include_authorized_operations": True})
        g = answer.groups[0]
        return outcome(g.error_code), int(g.authorized_operations)

    def list_groups(self, prefix: str) -> list[str]:
        answer = self.r(16, 4, {"states_filter": []})
        return sorted(g.group_id for g in answer.groups if g.group_id.startswith(prefix))

    def delete_group(self, group: str) -> str:
        answer = self.r(42, 2, {"groups_names": [group]})
        return outcome(answer.results[0].error_code)

    def classic_group(self, group: str) -> dict[str, str]:
        """JoinGroup (a first join: MEMBER_ID_REQUIRED when allowed), then SyncGroup,
        Heartbeat and LeaveGroup as a member that does not exist (UNKNOWN_MEMBER_ID when
        allowed): each needs READ on the group."""
        joined = self.r(11, 7, {
            "group_id": group, "session_timeout": 10000, "rebalance_timeout": 10000,
            "member_id": "", "group_instance_id": None, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b""}],
        })  # fmt: skip
        synced = self.r(14, 5, {
            "group_id": group, "generation_id": 1, "member_id": "nobody",
            "group_instance_id": None, "protocol_type": "consumer", "protocol_name": "range",
            "assignments": [],
        })  # fmt: skip
        no_protocol = self.r(14, 5, {
            "group_id": group, "generation_id": 1, "member_id": "nobody",
            "group_instance_id": None, "protocol_type": None, "protocol_name": None,
            "assignments": [],
        })  # fmt: skip
        beat = self.r(12, 4, {"group_id": group, "generation_id": 1, "member_id": "nobody",
                              "group_instance_id": None})  # fmt: skip
        left = self.r(13, 5, {"group_id": group, "members": [
            {"member_id": "nobody", "group_instance_id": None, "reason": None}]})  # fmt: skip
        return {
            "join": outcome(joined.error_code),
            # to a member that does not exist Kafka answers UNKNOWN_MEMBER_ID and kafkito's
            # coordinator INCONSISTENT_GROUP_PROTOCOL (noted in docs/development.md): only
            # whether authorization let it through is compared
            "sync": "refused" if synced.error_code in AUTH_CODES else "allowed",
            "sync without protocol": outcome(no_protocol.error_code),
            "heartbeat": outcome(beat.error_code),
            "leave": outcome(left.error_code),
        }

    def offset_for_leader_epoch(self, topic: str) -> str:
        answer = self.r(23, 4, {"replica_id": -2, "topics": [{"topic": topic, "partitions": [
            {"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}]}]})  # fmt: skip
        return outcome(answer.topics[0].partitions[0].error_code)

    def legacy_alter_configs(self, topic: str) -> str:
        answer = self.r(33, 2, {"resources": [{"resource_type": TOPIC, "resource_name": topic,
            "configs": [{"name": "retention.ms", "value": "3600000"}]}],
            "validate_only": True})  # fmt: skip
        return outcome(answer.responses[0].error_code)

    def alter_quotas(self) -> str:
        answer = self.r(49, 1, {"entries": [{
            "entity": [{"entity_type": "client-id", "entity_name": "acl-quota"}],
            "ops": [{"key": "producer_byte_rate", "value": 1024.0, "remove": False}]}],
            "validate_only": True})  # fmt: skip
        return outcome(answer.entries[0].error_code)

    def offset_delete(self, group: str, topic: str) -> str:
        answer = self.r(
            47, 0, {"group_id": group, "topics": [{"name": topic, "partitions": [
                {"partition_index": 0}]}]},
        )  # fmt: skip
        if answer.error_code != ErrorCode.none:
            return outcome(answer.error_code)
        return outcome(answer.topics[0].partitions[0].error_code)

    def group_heartbeat(self, group: str, topics: list[str]) -> tuple[str, str | None]:
        """ConsumerGroupHeartbeat (KIP-848) joining with `topics`; leaves again if joined."""
        answer = self.r(68, 0, {
            "group_id": group, "member_id": "", "member_epoch": 0, "instance_id": None,
            "rack_id": None, "rebalance_timeout": 30000, "subscribed_topic_names": topics,
            "server_assignor": None, "topic_partitions": [],
        })  # fmt: skip
        if answer.error_code == ErrorCode.none and answer.member_id:
            self.r(68, 0, {
                "group_id": group, "member_id": answer.member_id, "member_epoch": -1,
                "rebalance_timeout": 30000, "subscribed_topic_names": None,
                "topic_partitions": None,
            })  # fmt: skip
        message = answer.error_message if answer.error_code != ErrorCode.none else None
        return outcome(answer.error_code), message

    def consumer_group_describe(self, group: str) -> tuple[str, int]:
        answer = self.r(69, 0, {"group_ids": [group], "include_authorized_operations": True})
        g = answer.groups[0]
        ops = int(g.authorized_operations) if g.error_code == ErrorCode.none else 0
        return outcome(g.error_code), ops

    # -- topics, continued -----------------------------------------------------------------

    def delete_records(self, topic: str) -> str:
        """DeleteRecords below offset 0: changes nothing, but needs DELETE on the topic."""
        answer = self.r(21, 2, {
            "topics": [{"name": topic, "partitions": [{"partition_index": 0, "offset": 0}]}],
            "timeout": 5000,
        })  # fmt: skip
        return outcome(answer.topics[0].partitions[0].error_code)

    def describe_producers(self, topic: str) -> str:
        answer = self.r(61, 0, {"topics": [{"name": topic, "partition_indexes": [0]}]})
        return outcome(answer.topics[0].partitions[0].error_code)

    def describe_log_dirs(self) -> str:
        return outcome(self.r(35, 4, {"topics": None}).error_code)

    def describe_quotas(self) -> str:
        answer = self.r(48, 1, {"components": [], "strict": False})
        return outcome(answer.error_code)

    # -- producers ---------------------------------------------------------------------------

    def txn_apis(self, txn: str, p: str) -> dict[str, Any]:
        """The transaction APIs as this principal, with the producer id it gets (or -1):
        AddPartitionsToTxn (a writable and a hidden topic), AddOffsetsToTxn (a readable and
        a foreign group), TxnOffsetCommit, then EndTxn (abort)."""
        answer = self.r(22, 4, {"transactional_id": txn, "transaction_timeout": 60000,
                                "producer_id": -1, "producer_epoch": -1})  # fmt: skip
        pid, epoch = int(answer.producer_id), int(answer.producer_epoch)
        ids = {"transactional_id": txn, "producer_id": pid, "producer_epoch": epoch}
        seen: dict[str, Any] = {}

        def add(topics: list[str]) -> dict[str, str]:
            added = self.r(24, 3, {
                "v3_and_below_transactional_id": txn, "v3_and_below_producer_id": pid,
                "v3_and_below_producer_epoch": epoch,
                "v3_and_below_topics": [{"name": t, "partitions": [0]} for t in topics],
            })  # fmt: skip
            return {
                t.name: outcome(t.results_by_partition[0].partition_error_code)
                for t in added.results_by_topic_v3_and_below
            }

        seen["add partitions: orders and hosty"] = add([f"{p}orders", f"{p}hosty"])
        seen["add partitions: orders"] = add([f"{p}orders"])
        for group in ("g-alice", "g-none"):
            offsets = self.r(25, 3, {**ids, "group_id": f"{p}{group}"})
            seen[f"add offsets {group}"] = outcome(offsets.error_code)
            committed = self.r(28, 3, {
                **ids, "group_id": f"{p}{group}", "generation_id": -1, "member_id": "",
                "group_instance_id": None,
                "topics": [{"name": f"{p}pay-1", "partitions": [{
                    "partition_index": 0, "committed_offset": 0, "committed_leader_epoch": -1,
                    "committed_metadata": ""}]}],
            })  # fmt: skip
            seen[f"txn offset commit {group}"] = outcome(
                committed.topics[0].partitions[0].error_code
            )
        ended = self.r(26, 3, {**ids, "committed": False})
        seen["end (abort)"] = outcome(ended.error_code)
        return seen

    def list_transactions(self, prefix: str) -> list[str]:
        answer = self.r(66, 1, {"state_filters": [], "producer_id_filters": []})
        return sorted(
            t.transactional_id
            for t in answer.transaction_states
            if t.transactional_id.startswith(prefix)
        )

    def describe_transaction(self, txn: str) -> str:
        """The first state's error code, read by hand: kio cannot decode the -1 start time of
        a transaction that is not open (docs/development.md)."""
        self.client.send(65, 0, {"transactional_ids": [txn]})
        frame = self.client.read_frame()
        assert frame is not None
        # flexible: correlation id, no header tags, throttle_time_ms, a one-byte compact
        # array length, then the first state's error_code
        (code,) = struct.unpack_from(">h", frame, 10)
        return outcome(code)

    def init_producer_id(self, txn: str | None) -> str:
        answer = self.r(
            22,
            4,
            {
                "transactional_id": txn,
                "transaction_timeout": 60000,
                "producer_id": -1,
                "producer_epoch": -1,
            },
        )
        return self.seen(answer.error_code)


def sasl_login(client: WireClient, user: str, password: str) -> None:
    handshake = client.request(17, 1, {"mechanism": "PLAIN"})
    assert handshake.error_code == ErrorCode.none, handshake
    token = b"\0" + user.encode() + b"\0" + password.encode()
    answer = client.request(36, 2, {"auth_bytes": token})
    assert answer.error_code == ErrorCode.none, answer


@contextmanager
def connect(bootstrap: str, user: str) -> Iterator[AclWire]:
    with WireClient(bootstrap.split(",")[0], timeout_s=20) as client:
        sasl_login(client, user, USERS[user])
        yield AclWire(client)


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Kafka applies ACL changes on the broker a moment after the controller answers."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout_s:g} s")
        time.sleep(0.1)


def scenario_acls(p: str) -> list[dict[str, Any]]:
    """The matrix's ACLs, for run prefix `p`."""
    return [
        # alice: writes orders, reads everything under pay but pay-secret, reads her group
        acl(TOPIC, f"{p}orders", LITERAL, "User:alice", WRITE, ALLOW),
        acl(TOPIC, f"{p}pay", PREFIXED, "User:alice", READ, ALLOW),
        acl(TOPIC, f"{p}pay-secret", LITERAL, "User:alice", READ, DENY),
        acl(GROUP, f"{p}g-alice", LITERAL, "User:alice", READ, ALLOW),
        acl(GROUP, f"{p}cg", LITERAL, "User:alice", READ, ALLOW),
        acl(TXN, f"{p}tx-alice", LITERAL, "User:alice", WRITE, ALLOW),
        acl(TOPIC, f"{p}new-", PREFIXED, "User:alice", CREATE, ALLOW),
        acl(TOPIC, f"{p}hosty", LITERAL, "User:alice", READ, ALLOW, host="10.9.9.9"),
        # bob: everything on every topic, but no DESCRIBE of orders; configs of pay-1
        acl(TOPIC, "*", LITERAL, "User:bob", ALL, ALLOW),
        acl(TOPIC, f"{p}orders", LITERAL, "User:bob", DESCRIBE, DENY),
        acl(TOPIC, f"{p}pay-1", LITERAL, "User:bob", ALTER_CONFIGS, ALLOW),
        acl(CLUSTER, "kafka-cluster", LITERAL, "User:bob", DESCRIBE, ALLOW),
        acl(CLUSTER, "kafka-cluster", LITERAL, "User:bob", IDEMPOTENT_WRITE, ALLOW),
        # everyone may describe the public group; the super user is denied in vain
        acl(GROUP, f"{p}public", LITERAL, "User:*", DESCRIBE, ALLOW),
        acl(TOPIC, f"{p}pay-1", LITERAL, "User:admin", ALL, DENY),
    ]


def run_matrix(bootstrap: str, p: str) -> dict[str, Any]:
    """Lay out the scenario as the super user, then observe every request as each principal."""
    topics = [f"{p}{t}" for t in ("orders", "pay-1", "pay-secret", "hosty", "doomed")]
    seen: dict[str, Any] = {}
    with connect(bootstrap, "admin") as admin:
        for name in topics:
            created = admin.r(
                19,
                7,
                {
                    "topics": [{"name": name, "num_partitions": 1, "replication_factor": 1}],
                    "timeout": 10000,
                    "validate_only": False,
                },
            )
            assert created.topics[0].error_code == ErrorCode.none, created
        wait_for(lambda: len(admin.metadata_all(p)) == len(topics), "topics in metadata")
        for name in topics:
            wait_for(
                lambda name=name: (admin.produce(name), admin.last)[1] == 0, f"produce to {name}"
            )
        for group in ("g-alice", "public"):
            # FindCoordinator first: it is what makes Kafka create __consumer_offsets
            wait_for(
                lambda group=group: (
                    admin.find_coordinator(f"{p}{group}") == "ok"
                    and admin.commit(f"{p}{group}", f"{p}pay-1") == "ok"
                    and admin.last == ErrorCode.none
                ),
                f"commit of {group}",
                timeout_s=60,
            )
        # the transactional id exists before anyone asks (Kafka creates its transaction
        # state topic on the first FindCoordinator, then answers retriable codes a moment)
        wait_for(
            lambda: (
                admin.find_coordinator(f"{p}tx-alice", 1) == "ok"
                and admin.init_producer_id(f"{p}tx-alice") == "ok"
                and admin.last == ErrorCode.none
            ),
            "the transactional id",
            timeout_s=60,
        )
        wanted = scenario_acls(p)
        seen["create_acls"] = admin.create_acls(wanted)
        wait_for(
            lambda: len(admin.describe_acls(acl_filter(name=None))[1]) >= len(wanted),
            "ACLs on the broker",
        )
        seen["describe_all"] = [
            r for r in admin.describe_acls()[1] if p in r[1] or r[1] in ("*", "kafka-cluster")
        ]
        seen["describe_match_pay1"] = admin.describe_acls(acl_filter(TOPIC, f"{p}pay-1", MATCH))
        seen["describe_prefixed"] = admin.describe_acls(acl_filter(TOPIC, None, PREFIXED))
        seen["describe_alice"] = admin.describe_acls(acl_filter(principal="User:alice"))
        seen["admin_super"] = {
            "produce pay-1": admin.produce(f"{p}pay-1"),
            "metadata": sorted(admin.metadata_all(p)),
        }
        seen["invalid_acls"] = admin.create_acls(
            [
                acl(CLUSTER, "not-the-cluster", LITERAL, "User:x", ALTER, ALLOW),
                acl(TOPIC, f"{p}x", LITERAL, "no-colon", READ, ALLOW),
            ]
        )
    for user in ("alice", "bob", "carol"):
        with connect(bootstrap, user) as c:
            row: dict[str, Any] = {}
            row["metadata_all"] = c.metadata_all(p)
            row["metadata_named"] = c.metadata([*topics, f"{p}absent"])
            row["auto_create"] = {
                # Kafka creates asynchronously and first answers UNKNOWN_TOPIC_OR_PARTITION,
                # kafkito at once (docs/broker.md, "Topic creation is synchronous"): both are
                # "allowed"; whether the topics came to exist is observed at the end.
                name: "ok" if code in ("ok", "unknown_topic_or_partition") else code
                for name, code in c.metadata(
                    [f"{p}new-auto", f"{p}other-auto"], create=True
                ).items()
            }
            row["cluster_ops"] = c.cluster_ops()
            for t in ("orders", "pay-1", "pay-secret", "hosty"):
                name = f"{p}{t}"
                row[f"{t}"] = {
                    "produce": c.produce(name),
                    "fetch": c.fetch(name),
                    "list_offsets": c.list_offsets(name),
                    "describe_configs": c.describe_configs(TOPIC, name),
                    "alter_configs": c.alter_configs(TOPIC, name, "retention.ms", "3600000"),
                    "create_partitions": c.create_partitions(name),
                    "delete_records": c.delete_records(name),
                    "describe_producers": c.describe_producers(name),
                    "offset_for_leader_epoch": c.offset_for_leader_epoch(name),
                    "alter_configs (legacy)": c.legacy_alter_configs(name),
                }
            row["produce_absent"] = c.produce(f"{p}absent")
            row["produce_txn"] = c.produce(f"{p}orders", txn=f"{p}tx-other")
            row["create_topic"] = {t: c.create_topic(f"{p}{t}") for t in ("new-x", "other-x")}
            row["broker_configs"] = c.describe_configs(4, "")
            for g in ("g-alice", "public", "g-none"):
                group = f"{p}{g}"
                row[g] = {
                    "find_coordinator": c.find_coordinator(group),
                    "commit pay-1": c.commit(group, f"{p}pay-1"),
                    "commit orders": c.commit(group, f"{p}orders"),
                    "offset_fetch": c.offset_fetch(group, f"{p}pay-1"),
                    "describe": c.describe_group(group),
                }
            row["offset_fetch_all"] = c.offset_fetch(f"{p}g-alice", None)
            row["list_groups"] = c.list_groups(p)
            row["txn"] = {
                "find_coordinator": c.find_coordinator(f"{p}tx-alice", 1),
                "init": c.init_producer_id(f"{p}tx-alice"),
                "init_other": c.init_producer_id(f"{p}tx-other"),
            }
            row["txn_apis"] = c.txn_apis(f"{p}tx-alice", p)
            row["idempotent"] = c.init_producer_id(None)
            row["list_transactions"] = c.list_transactions(p)
            row["describe_transaction"] = c.describe_transaction(f"{p}tx-alice")
            row["describe_log_dirs"] = c.describe_log_dirs()
            row["describe_quotas"] = c.describe_quotas()
            row["alter_quotas"] = c.alter_quotas()
            row["classic group"] = {g: c.classic_group(f"{p}{g}") for g in ("g-alice", "g-none")}
            row["offset_delete"] = {
                g: c.offset_delete(f"{p}{g}", f"{p}pay-1") for g in ("g-alice", "public")
            }
            row["kip848"] = {
                "join": c.group_heartbeat(f"{p}cg", [f"{p}pay-1"]),
                "join hidden topic": c.group_heartbeat(f"{p}cg", [f"{p}pay-1", f"{p}hosty"]),
                "describe": c.consumer_group_describe(f"{p}cg"),
            }
            row["acl_apis"] = {
                "create": c.create_acls([acl(TOPIC, f"{p}z", LITERAL, "User:x", READ, ALLOW)]),
                "describe": c.describe_acls()[0],
                "delete": [code for code, _ in c.delete_acls([acl_filter()])],
            }
            row["delete_group public"] = c.delete_group(f"{p}public")
            row["delete doomed"] = c.delete_topic(f"{p}doomed")
            seen[user] = row
    with connect(bootstrap, "admin") as admin:
        seen["delete_acls"] = admin.delete_acls(
            [
                acl_filter(TOPIC, f"{p}pay", PREFIXED),
                acl_filter(principal="User:bob", rtype=CLUSTER),
            ]
        )
        left = len(scenario_acls(p)) - 3
        wait_for(
            lambda: (
                len(
                    [
                        r
                        for r in admin.describe_acls()[1]
                        if p in r[1] or r[1] in ("*", "kafka-cluster")
                    ]
                )
                == left
            ),
            "deleted ACLs gone",
        )
        with connect(bootstrap, "alice") as alice:
            seen["alice_after_delete"] = alice.fetch(f"{p}pay-1")
        auto = [f"{p}new-auto", f"{p}other-auto"]
        wait_for(lambda: set(admin.metadata(auto).values()) == {"ok"}, "auto-created topics")
    return seen


# -- OAUTHBEARER (unsecured JWTs) ------------------------------------------------------------


def jws(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    import base64
    import json

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return f"{part(header)}.{part(claims)}.{signature}"


def oauth_message(token: str, authzid: str = "") -> bytes:
    prefix = f"n,a={authzid}," if authzid else "n,,"
    return f"{prefix}\x01auth=Bearer {token}\x01\x01".encode()


def oauth_login(bootstrap: str, message: bytes) -> tuple[Any, ...]:
    """What a client sees logging in with one OAUTHBEARER message: the first answer's code and
    challenge, then (after a challenge) the answer to the client's 0x01."""
    with WireClient(bootstrap.split(",")[0], timeout_s=20) as client:
        handshake = client.request(17, 1, {"mechanism": "OAUTHBEARER"})
        if handshake.error_code != ErrorCode.none:
            return ("handshake", outcome(handshake.error_code))
        try:
            first = client.request(36, 2, {"auth_bytes": message})
        except AssertionError:  # closed without an answer
            return ("closed",)
        seen: tuple[Any, ...] = (outcome(first.error_code), bytes(first.auth_bytes))
        if first.error_code == ErrorCode.none and first.auth_bytes:
            second = client.request(36, 2, {"auth_bytes": b"\x01"})
            seen += (outcome(second.error_code),)
        return seen


@contextmanager
def oauth_connect(bootstrap: str, principal: str) -> Iterator[AclWire]:
    now = time.time()
    token = jws({"alg": "none"}, {"sub": principal, "iat": now, "exp": now + 300})
    with WireClient(bootstrap.split(",")[0], timeout_s=20) as client:
        assert client.request(17, 1, {"mechanism": "OAUTHBEARER"}).error_code == 0
        answer = client.request(36, 2, {"auth_bytes": oauth_message(token)})
        assert answer.error_code == 0 and not answer.auth_bytes, answer
        yield AclWire(client)


def run_oauthbearer(bootstrap: str, p: str) -> dict[str, Any]:
    """Logins with good and refused unsecured tokens, then ACLs applied to a token's principal."""
    now = time.time()
    none = {"alg": "none"}
    cases = {
        "valid": oauth_message(jws(none, {"sub": "alice", "iat": now, "exp": now + 60})),
        "valid with authzid": oauth_message(
            jws(none, {"sub": "alice", "exp": now + 60}), authzid="alice"
        ),
        "expired": oauth_message(jws(none, {"sub": "alice", "iat": now - 60, "exp": now - 30})),
        "issued in the future": oauth_message(
            jws(none, {"sub": "alice", "iat": now + 600, "exp": now + 900})
        ),
        "no exp": oauth_message(jws(none, {"sub": "alice", "iat": now})),
        "no sub": oauth_message(jws(none, {"iat": now, "exp": now + 60})),
        "scope list": oauth_message(
            jws(none, {"sub": "alice", "exp": now + 60, "scope": ["a", "b"]})
        ),
        "not a JWS": oauth_message("not-a-token"),
        "no bearer": b"n,,\x01auth=Basic abc\x01\x01",
    }
    seen: dict[str, Any] = {name: oauth_login(bootstrap, m) for name, m in cases.items()}
    with connect(bootstrap, "admin") as admin:
        created = admin.r(19, 7, {
            "topics": [{"name": f"{p}oauth", "num_partitions": 1, "replication_factor": 1}],
            "timeout": 10000,
        })  # fmt: skip
        assert created.topics[0].error_code == ErrorCode.none, created
        wait_for(lambda: admin.metadata([f"{p}oauth"]) == {f"{p}oauth": "ok"}, "topic")
        wait_for(lambda: (admin.produce(f"{p}oauth"), admin.last)[1] == 0, "produce to the topic")
        admin.create_acls([acl(TOPIC, f"{p}oauth", LITERAL, "User:alice", WRITE, ALLOW)])
        wait_for(lambda: len(admin.describe_acls(acl_filter(TOPIC, f"{p}oauth"))[1]) == 1, "ACL")
    # carol: no ACL anywhere, also none left by the matrix on a session-wide Kafka
    for principal in ("alice", "carol"):
        with oauth_connect(bootstrap, principal) as c:
            seen[f"{principal} produce"] = c.produce(f"{p}oauth")
            seen[f"{principal} fetch"] = c.fetch(f"{p}oauth")
    return seen


# -- re-authentication (KIP-368) ---------------------------------------------------------------


def plain_login(client: WireClient, user: str, password: str) -> tuple[str, int]:
    """One PLAIN login on `client`: (outcome, session_lifetime_ms), or ("closed", -1)."""
    try:
        handshake = client.request(17, 1, {"mechanism": "PLAIN"})
        if handshake.error_code != ErrorCode.none:
            return outcome(handshake.error_code), -1
        token = b"\0" + user.encode() + b"\0" + password.encode()
        answer = client.request(36, 2, {"auth_bytes": token})
    except AssertionError:
        return "closed", -1
    lifetime = answer.session_lifetime
    return outcome(answer.error_code), int(getattr(lifetime, "total_seconds", lambda: 0)() * 1000)


def still_served(client: WireClient) -> bool:
    """Does the connection still answer a request (Metadata of no topic)?"""
    try:
        client.request(3, 12, {"topics": [], "allow_auto_topic_creation": False,
                               "include_topic_authorized_operations": False})  # fmt: skip
    except (AssertionError, OSError):
        return False
    return True


def run_reauth(bootstrap: str, lifetime_ms: int) -> dict[str, Any]:
    """What a client sees of KIP-368 on a listener whose sessions last `lifetime_ms`."""
    host = bootstrap.split(",")[0]
    seen: dict[str, Any] = {}
    with WireClient(host, timeout_s=20) as client:
        seen["login"] = plain_login(client, "alice", USERS["alice"])
        seen["served"] = still_served(client)
        seen["reauth same user"] = plain_login(client, "alice", USERS["alice"])
        seen["served after reauth"] = still_served(client)
        time.sleep(lifetime_ms / 1000 * 0.6)
        seen["reauth again"] = plain_login(client, "alice", USERS["alice"])
        time.sleep(lifetime_ms / 1000 * 0.6)  # past the first session, inside the new one
        seen["served in the renewed session"] = still_served(client)
    with WireClient(host, timeout_s=20) as client:
        plain_login(client, "alice", USERS["alice"])
        seen["reauth as another user"] = plain_login(client, "bob", USERS["bob"])
        seen["served after a refused reauth"] = still_served(client)
    with WireClient(host, timeout_s=20) as client:
        plain_login(client, "alice", USERS["alice"])
        time.sleep(lifetime_ms / 1000 + 0.5)
        seen["served after expiry"] = still_served(client)
    with WireClient(host, timeout_s=20) as client:
        plain_login(client, "alice", USERS["alice"])
        time.sleep(lifetime_ms / 1000 + 0.5)
        seen["reauth after expiry"] = plain_login(client, "alice", USERS["alice"])
    return seen
