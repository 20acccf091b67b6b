"""The authorization rules of broker/auth/acl.py, as Kafka's StandardAuthorizer applies them."""

from __future__ import annotations

import pytest

from kafkito.broker.auth.acl import (
    Acl,
    AclFilter,
    AclOperation,
    InvalidAcl,
    PatternType,
    Permission,
    ResourceType,
    allowed_for_any,
    decide,
    supported_operations,
)

Op, T, P = AclOperation, ResourceType, PatternType
ALLOW, DENY = Permission.ALLOW, Permission.DENY


def rule(
    name: str,
    op: AclOperation,
    perm: Permission = ALLOW,
    *,
    principal: str = "User:alice",
    pattern: PatternType = P.LITERAL,
    rtype: ResourceType = T.TOPIC,
    host: str = "*",
) -> Acl:
    return Acl(rtype, name, pattern, principal, host, op, perm)


def allowed(acls: list[Acl], op: AclOperation, name: str = "orders", **kw: object) -> bool:
    return decide(
        acls,
        str(kw.get("principal", "User:alice")),
        str(kw.get("host", "127.0.0.1")),
        op,
        kw.get("rtype", T.TOPIC),  # type: ignore[arg-type]
        name,
        allow_if_no_acl=bool(kw.get("open", False)),
    )


def test_no_acl_denies_unless_allow_everyone_if_no_acl_found() -> None:
    assert not allowed([], Op.READ)
    assert allowed([], Op.READ, open=True)
    # an ACL that applies to the resource, even for someone else, closes it
    assert not allowed([rule("orders", Op.READ, principal="User:bob")], Op.READ, open=True)
    # one for another resource does not
    assert allowed([rule("other", Op.READ, principal="User:bob")], Op.READ, open=True)


@pytest.mark.parametrize(
    ("granted", "wanted", "result"),
    [
        (Op.READ, Op.DESCRIBE, True),
        (Op.WRITE, Op.DESCRIBE, True),
        (Op.DELETE, Op.DESCRIBE, True),
        (Op.ALTER, Op.DESCRIBE, True),
        (Op.CREATE, Op.DESCRIBE, False),
        (Op.ALTER_CONFIGS, Op.DESCRIBE_CONFIGS, True),
        (Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS, False),
        (Op.DESCRIBE, Op.READ, False),
        (Op.ALL, Op.IDEMPOTENT_WRITE, True),
        (Op.READ, Op.WRITE, False),
    ],
)
def test_allow_implications(granted: AclOperation, wanted: AclOperation, result: bool) -> None:
    assert allowed([rule("orders", granted)], wanted) is result


def test_deny_wins_and_does_not_imply() -> None:
    acls = [rule("orders", Op.ALL), rule("orders", Op.READ, DENY)]
    assert not allowed(acls, Op.READ)
    assert allowed(acls, Op.WRITE)
    # a DENY of READ leaves DESCRIBE alone (only ALLOW implies)
    assert allowed(acls, Op.DESCRIBE)
    assert not allowed([*acls, rule("orders", Op.ALL, DENY)], Op.DESCRIBE)


def test_patterns_wildcards_principals_and_hosts() -> None:
    prefixed = rule("pay", Op.READ, pattern=P.PREFIXED)
    assert allowed([prefixed], Op.READ, "payments")
    assert not allowed([prefixed], Op.READ, "pa")
    star = rule("*", Op.READ, principal="User:*")
    assert allowed([star], Op.READ, "anything", principal="User:zed")
    literal_star_prefixed = rule("*", Op.READ, pattern=P.PREFIXED)  # a prefix "*", not a wildcard
    assert not allowed([literal_star_prefixed], Op.READ, "orders")
    assert allowed([literal_star_prefixed], Op.READ, "*orders")
    hosty = rule("orders", Op.READ, host="10.0.0.1")
    assert not allowed([hosty], Op.READ)
    assert allowed([hosty], Op.READ, host="10.0.0.1")
    other_type = rule("orders", Op.READ, rtype=T.GROUP)
    assert not allowed([other_type], Op.READ)
    assert allowed([other_type], Op.READ, rtype=T.GROUP)


def test_allowed_for_any_topic() -> None:
    assert allowed_for_any([rule("x", Op.WRITE)], "User:alice", "h", Op.WRITE, T.TOPIC)
    assert not allowed_for_any([rule("x", Op.READ)], "User:alice", "h", Op.WRITE, T.TOPIC)
    # a DENY prefix covering the only ALLOW
    acls = [
        rule("pay-1", Op.WRITE),
        rule("pay", Op.WRITE, DENY, pattern=P.PREFIXED),
    ]
    assert not allowed_for_any(acls, "User:alice", "h", Op.WRITE, T.TOPIC)
    assert not allowed_for_any(
        [rule("x", Op.WRITE), rule("*", Op.WRITE, DENY)], "User:alice", "h", Op.WRITE, T.TOPIC
    )
    assert allowed_for_any([], "User:alice", "h", Op.WRITE, T.TOPIC, allow_if_no_acl=True)


def test_parse_refuses_what_kafka_refuses() -> None:
    ok = Acl.parse(2, "orders", 3, "User:a", "*", 3, 3)
    assert ok == rule("orders", Op.READ, principal="User:a")
    for bad, message in [
        ((1, "x", 3, "User:a", "*", 3, 3), "Invalid resourceType ANY"),
        ((2, "x", 2, "User:a", "*", 3, 3), "Invalid patternType MATCH"),
        ((2, "x", 3, "User:a", "*", 1, 3), "Invalid operation ANY"),
        ((2, "x", 3, "User:a", "*", 3, 1), "Invalid permissionType ANY"),
        ((4, "x", 3, "User:a", "*", 3, 3), "only valid name for the CLUSTER"),
        ((2, "", 3, "User:a", "*", 3, 3), "empty resource name"),
        ((2, "x", 3, "alice", "*", 3, 3), "no colon"),
        ((99, "x", 3, "User:a", "*", 3, 3), "Invalid resourceType UNKNOWN"),
    ]:
        with pytest.raises(InvalidAcl, match=message):
            Acl.parse(*bad)  # type: ignore[arg-type]


def test_filters_match_as_kafka_filters() -> None:
    literal = rule("pay-1", Op.READ)
    prefixed = rule("pay", Op.READ, pattern=P.PREFIXED)
    star = rule("*", Op.WRITE, principal="User:bob")
    acls = [literal, prefixed, star]

    def match(**kw: object) -> list[Acl]:
        base = {
            "resource_type": T.ANY,
            "name": None,
            "pattern_type": P.ANY,
            "principal": None,
            "host": None,
            "operation": Op.ANY,
            "permission": Permission.ANY,
        }
        wanted = AclFilter(**{**base, **kw})  # type: ignore[arg-type]
        return [a for a in acls if wanted.matches(a)]

    assert match() == acls
    assert match(name="pay-1", pattern_type=P.MATCH) == acls
    assert match(name="pay-1") == [literal]
    assert match(name="pay", pattern_type=P.PREFIXED) == [prefixed]
    assert match(pattern_type=P.LITERAL) == [literal, star]
    assert match(principal="User:bob") == [star]
    assert match(operation=Op.READ, name="pay-2", pattern_type=P.MATCH) == [prefixed]
    with pytest.raises(InvalidAcl):
        AclFilter.parse(0, None, 1, None, None, 1, 1)


def test_records_round_trip_and_supported_operations() -> None:
    one = rule("pay", Op.ALTER_CONFIGS, DENY, pattern=P.PREFIXED, host="10.0.0.1")
    assert Acl.from_record(one.to_record()) == one
    assert set(supported_operations(T.GROUP)) == {
        Op.READ,
        Op.DESCRIBE,
        Op.DELETE,
        Op.DESCRIBE_CONFIGS,
        Op.ALTER_CONFIGS,
    }
    assert Op.IDEMPOTENT_WRITE in supported_operations(T.CLUSTER)


def test_the_indexed_authorizer_decides_as_a_scan_of_every_acl() -> None:
    """AclAuthorizer looks only at the ACLs its indexes say may apply; over random ACL sets,
    adds and removes, it must decide exactly as `decide` over every ACL (seed in the name)."""
    import random
    from types import SimpleNamespace

    from kafkito.broker.auth.authorizer import AclAuthorizer
    from kafkito.broker.settings import BrokerSettings

    seed = 1907
    rng = random.Random(seed)
    names = ["", "a", "ab", "abc", "abd", "b", "ba", "*", "pay-1", "pay"]
    principals = ["User:alice", "User:bob", "User:*"]
    ops = [Op.READ, Op.WRITE, Op.DESCRIBE, Op.ALL, Op.ALTER_CONFIGS, Op.DESCRIBE_CONFIGS]
    broker = SimpleNamespace(settings=BrokerSettings(authorizer="acl"))
    authorizer = AclAuthorizer(broker)  # type: ignore[arg-type]
    live: list[Acl] = []
    for step in range(600):
        made = Acl(
            rng.choice([T.TOPIC, T.GROUP]),
            rng.choice(names[1:]),
            rng.choice([P.LITERAL, P.PREFIXED]),
            rng.choice(principals),
            rng.choice(["*", "10.0.0.1"]),
            rng.choice(ops),
            rng.choice([ALLOW, DENY]),
        )
        if live and rng.random() < 0.3:
            gone = live.pop(rng.randrange(len(live)))
            authorizer._remove(gone)
        elif made not in live:
            live.append(made)
            authorizer._add(made)
        for _ in range(5):
            args = (
                rng.choice(principals[:2]),
                rng.choice(["127.0.0.1", "10.0.0.1"]),
                rng.choice([*ops[:3], Op.DESCRIBE_CONFIGS]),
                rng.choice([T.TOPIC, T.GROUP]),
                rng.choice(names[1:]) + rng.choice(["", "x"]),
            )
            assert authorizer.allows(*args) == decide(live, *args), (seed, step, args)
