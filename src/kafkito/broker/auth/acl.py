"""ACLs and the authorization decision, as Apache Kafka's StandardAuthorizer makes it.

Pure logic: no I/O, no clock. The broker keeps an `AclAuthorizer` (a metadata-log participant,
in `authorizer.py`); handlers ask through the one-line helpers of `kafkito.broker.auth.checks`.

**An ACL** (`Acl`) is a resource pattern (type, name, LITERAL or PREFIXED) and an entry
(principal such as `User:alice` or the wildcard `User:*`, host or `*`, operation, ALLOW or
DENY). The codes are Kafka's wire values (ResourceType, PatternType, AclOperation,
AclPermissionType), so requests and records carry them as they are.

**The decision** (StandardAuthorizerData.authorize and findResult), for a principal connected
from a host that wants an operation on a named resource:

1. a super user is allowed everything, whatever the ACLs say;
2. the ACLs that *apply* to the resource are the ones of its type whose pattern is the literal
   name, the literal wildcard `*`, or a prefix of the name (PREFIXED);
3. of those, an ACL *matches* when its principal is the principal or `User:*`, its host the
   host or `*`, and its operation the one wanted or ALL; an ALLOW ACL also matches an operation
   it implies (READ, WRITE, DELETE, ALTER imply DESCRIBE; ALTER_CONFIGS implies
   DESCRIBE_CONFIGS), a DENY ACL only its own operation (a DENY of READ leaves DESCRIBE alone);
4. any matching DENY wins; else any matching ALLOW allows;
5. with no matching ACL: allowed only if *no* ACL applies to the resource at all and
   `allow.everyone.if.no.acl.found` is on (off by default, as in Kafka); else denied.

`allowed_for_any` is Kafka's Authorizer.authorizeByResourceType (KIP-679): may the principal do
the operation on *some* resource of a type (an idempotent producer with WRITE on any topic).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from kafkito.errors import KafkitoError

__all__ = [
    "CLUSTER_NAME",
    "Acl",
    "AclFilter",
    "AclOperation",
    "InvalidAcl",
    "PatternType",
    "Permission",
    "ResourceType",
    "allowed_for_any",
    "decide",
    "supported_operations",
]

CLUSTER_NAME = "kafka-cluster"
"""The one name of the CLUSTER resource."""
WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class Permission(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


Op = AclOperation
_E = TypeVar("_E", bound=IntEnum)
_IMPLIES: dict[AclOperation, frozenset[AclOperation]] = {
    Op.DESCRIBE: frozenset({Op.DESCRIBE, Op.READ, Op.WRITE, Op.DELETE, Op.ALTER}),
    Op.DESCRIBE_CONFIGS: frozenset({Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS}),
}
"""For an ALLOW ACL: the ACL operations that grant the wanted one (StandardAuthorizerData)."""

_SUPPORTED: dict[ResourceType, tuple[AclOperation, ...]] = {
    ResourceType.TOPIC: (
        Op.READ,
        Op.WRITE,
        Op.CREATE,
        Op.DESCRIBE,
        Op.DELETE,
        Op.ALTER,
        Op.DESCRIBE_CONFIGS,
        Op.ALTER_CONFIGS,
    ),
    # Kafka 4 groups have configs (KIP-848: group.consumer.session.timeout.ms...), so their
    # authorized operations include the config pair, as Apache Kafka 4.1 answers.
    ResourceType.GROUP: (
        Op.READ,
        Op.DESCRIBE,
        Op.DELETE,
        Op.DESCRIBE_CONFIGS,
        Op.ALTER_CONFIGS,
    ),
    ResourceType.CLUSTER: (
        Op.CREATE,
        Op.CLUSTER_ACTION,
        Op.DESCRIBE_CONFIGS,
        Op.ALTER_CONFIGS,
        Op.IDEMPOTENT_WRITE,
        Op.ALTER,
        Op.DESCRIBE,
    ),
    ResourceType.TRANSACTIONAL_ID: (Op.DESCRIBE, Op.WRITE),
    ResourceType.DELEGATION_TOKEN: (Op.DESCRIBE,),
    ResourceType.USER: (Op.CREATE_TOKENS, Op.DESCRIBE_TOKENS),
}


def supported_operations(resource_type: ResourceType) -> tuple[AclOperation, ...]:
    """Kafka's AclEntry.supportedOperations: what authorized-operations fields report on."""
    return _SUPPORTED.get(resource_type, ())


class InvalidAcl(KafkitoError, ValueError):
    """An ACL or filter Kafka refuses with INVALID_REQUEST; the message is Kafka's."""


@dataclass(frozen=True, slots=True)
class Acl:
    """One ACL binding: a resource pattern and an access-control entry."""

    resource_type: ResourceType
    name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission: Permission

    @classmethod
    def parse(
        cls,
        resource_type: int,
        name: str,
        pattern_type: int,
        principal: str,
        host: str,
        operation: int,
        permission: int,
    ) -> Acl:
        """A new ACL from wire values; InvalidAcl as Kafka's AclControlManager.validateNewAcl
        and AclApis.handleCreateAcls refuse one."""
        rtype, ptype = _enum(ResourceType, resource_type), _enum(PatternType, pattern_type)
        op, perm = _enum(AclOperation, operation), _enum(Permission, permission)
        if rtype in (ResourceType.UNKNOWN, ResourceType.ANY):
            raise InvalidAcl(f"Invalid resourceType {rtype.name}")
        if ptype not in (PatternType.LITERAL, PatternType.PREFIXED):
            raise InvalidAcl(f"Invalid patternType {ptype.name}")
        if op in (AclOperation.UNKNOWN, AclOperation.ANY):
            raise InvalidAcl(f"Invalid operation {op.name}")
        if perm not in (Permission.ALLOW, Permission.DENY):
            raise InvalidAcl(f"Invalid permissionType {perm.name}")
        if rtype is ResourceType.CLUSTER and name != CLUSTER_NAME:
            raise InvalidAcl(f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}")
        if not name:
            raise InvalidAcl("Invalid empty resource name")
        if ":" not in principal:
            raise InvalidAcl(
                f"Could not parse principal from `{principal}` (no colon is present "
                "separating the principal type from the principal name)"
            )
        return cls(rtype, name, ptype, principal, host, op, perm)

    def applies_to(self, resource_type: ResourceType, name: str) -> bool:
        """Does this ACL's pattern cover the named resource (step 2 of the decision)?"""
        if self.resource_type is not resource_type:
            return False
        if self.pattern_type is PatternType.LITERAL:
            return self.name == name or self.name == WILDCARD
        return name.startswith(self.name)

    def grants(
        self, principals: tuple[str, str], host: str, operation: AclOperation
    ) -> Permission | None:
        """StandardAuthorizerData.findResult: ALLOW or DENY if the entry matches, else None."""
        if self.principal not in principals:
            return None
        if self.host != WILDCARD and self.host != host:
            return None
        if self.operation is not AclOperation.ALL:
            if self.permission is Permission.ALLOW:
                implied = _IMPLIES.get(operation)
                if self.operation not in (implied or (operation,)):
                    return None
            elif self.operation is not operation:
                return None
        return self.permission

    def to_record(self) -> list[object]:
        return [
            int(self.resource_type),
            self.name,
            int(self.pattern_type),
            self.principal,
            self.host,
            int(self.operation),
            int(self.permission),
        ]

    @classmethod
    def from_record(cls, row: list[object]) -> Acl:
        rtype, name, ptype, principal, host, op, perm = row
        return cls(
            ResourceType(int(str(rtype))),
            str(name),
            PatternType(int(str(ptype))),
            str(principal),
            str(host),
            AclOperation(int(str(op))),
            Permission(int(str(perm))),
        )

    def describe(self) -> str:
        """One line, as kafka-acls.sh prints a binding (for logs and the CLI)."""
        return (
            f"{self.permission.name} {self.principal} from {self.host} {self.operation.name} "
            f"{self.resource_type.name}:{self.pattern_type.name}:{self.name}"
        )


@dataclass(frozen=True, slots=True)
class AclFilter:
    """An AclBindingFilter of DescribeAcls / DeleteAcls: None and ANY match everything."""

    resource_type: ResourceType
    name: str | None
    pattern_type: PatternType
    principal: str | None
    host: str | None
    operation: AclOperation
    permission: Permission

    @classmethod
    def parse(
        cls,
        resource_type: int,
        name: str | None,
        pattern_type: int,
        principal: str | None,
        host: str | None,
        operation: int,
        permission: int,
    ) -> AclFilter:
        """A filter from wire values; InvalidAcl for UNKNOWN values (Kafka refuses those)."""
        made = cls(
            _enum(ResourceType, resource_type),
            name,
            _enum(PatternType, pattern_type),
            principal,
            host,
            _enum(AclOperation, operation),
            _enum(Permission, permission),
        )
        for value in (made.resource_type, made.pattern_type, made.operation, made.permission):
            if value == 0:
                raise InvalidAcl(f"Invalid filter: unknown {type(value).__name__} value")
        return made

    def matches(self, acl: Acl) -> bool:
        """ResourcePatternFilter.matches and AccessControlEntryFilter.matches together."""
        rtype, ptype, name = self.resource_type, self.pattern_type, self.name
        if rtype is not ResourceType.ANY and rtype is not acl.resource_type:
            return False
        if ptype not in (PatternType.ANY, PatternType.MATCH) and ptype is not acl.pattern_type:
            return False
        if name is not None:
            if ptype is PatternType.ANY or ptype is acl.pattern_type:
                if name != acl.name:
                    return False
            elif acl.pattern_type is PatternType.LITERAL:  # MATCH
                if name != acl.name and acl.name != WILDCARD:
                    return False
            elif not name.startswith(acl.name):
                return False
        if self.principal is not None and self.principal != acl.principal:
            return False
        if self.host is not None and self.host != acl.host:
            return False
        if self.operation is not AclOperation.ANY and self.operation is not acl.operation:
            return False
        return self.permission is Permission.ANY or self.permission is acl.permission


def _enum(kind: type[_E], value: int) -> _E:
    """A wire value as the enum; values Kafka does not know read as UNKNOWN (0)."""
    try:
        return kind(int(value))
    except ValueError:
        return kind(0)


def decide(
    acls: Iterable[Acl],
    principal: str,
    host: str,
    operation: AclOperation,
    resource_type: ResourceType,
    name: str,
    *,
    allow_if_no_acl: bool = False,
) -> bool:
    """Steps 2-5 of the decision (the caller handles super users); True: allowed."""
    principals = (principal, WILDCARD_PRINCIPAL)
    applies = allowed = False
    for acl in acls:
        if not acl.applies_to(resource_type, name):
            continue
        applies = True
        verdict = acl.grants(principals, host, operation)
        if verdict is Permission.DENY:
            return False
        if verdict is Permission.ALLOW:
            allowed = True
    if allowed:
        return True
    return not applies and allow_if_no_acl


def allowed_for_any(
    acls: Iterable[Acl],
    principal: str,
    host: str,
    operation: AclOperation,
    resource_type: ResourceType,
    *,
    allow_if_no_acl: bool = False,
) -> bool:
    """Kafka's default Authorizer.authorizeByResourceType (the caller handles super users).

    Allowed if a resource named "hardcode" would be (wildcard ACLs, or no ACL and
    allow.everyone.if.no.acl.found), or if some ALLOW pattern for the operation is not wholly
    covered by a DENY (a literal DENY of the same name, or a DENY prefix of it)."""
    acls = list(acls)
    if decide(
        acls, principal, host, operation, resource_type, "hardcode", allow_if_no_acl=allow_if_no_acl
    ):
        return True
    principals = (principal, WILDCARD_PRINCIPAL)
    deny_literal: set[str] = set()
    deny_prefix: set[str] = set()
    allow: list[Acl] = []
    for acl in acls:
        if acl.resource_type is not resource_type or acl.principal not in principals:
            continue
        if acl.host != WILDCARD and acl.host != host:
            continue
        if acl.operation is not operation and acl.operation is not AclOperation.ALL:
            continue
        if acl.permission is Permission.DENY:
            if acl.pattern_type is PatternType.LITERAL:
                if acl.name == WILDCARD:
                    return False
                deny_literal.add(acl.name)
            else:
                deny_prefix.add(acl.name)
        else:
            allow.append(acl)
    for acl in allow:
        if acl.pattern_type is PatternType.LITERAL and acl.name == WILDCARD:
            return True
        if any(acl.name.startswith(prefix) for prefix in deny_prefix):
            continue
        if acl.pattern_type is PatternType.LITERAL and acl.name in deny_literal:
            continue
        return True
    return False
