"""The broker's ACL authorizer: the ACLs (persisted in the metadata log) and its decisions.

Installed on every BrokerCore (by `assembly.build_core`) and active when the settings
say `authorizer="acl"`; without it every request is allowed, as a Kafka broker without
`authorizer.class.name`, and the ACL APIs answer SECURITY_DISABLED.

**Persistence.** Each ACL is one `acl` record in the metadata log, `{"acl": [...], "on": true}`
when created and `"on": false` when deleted; compaction keeps one record per live ACL. Creates
and deletes are fsynced before they are answered and before they take effect, so an ACL a
client was told exists survives a crash, and a refused write changes nothing.

**Decisions** are `acl.decide` over the ACLs that can apply, after the super users
(`super.users`, principals such as `User:admin`). The ACLs are indexed by (type, literal name)
and by (type, prefix), with the prefix lengths in use per type, so a decision looks at the
resource's literal ACLs, the type's `*` ACLs and one dict lookup per prefix length in use, not
at every ACL (Kafka keeps a sorted set for the same reason). Decisions are cached per
(principal, host, operation, resource) until the next change to the ACLs; the cache is bounded
(`MAX_CACHED_DECISIONS`, emptied when full), so a client naming millions of topics costs
memory only up to the bound.

**Warnings.** At start, a broker that listens on a non-loopback address without SASL and without
client certificates logs a loud warning: anyone who can reach it may do anything, and ACLs
cannot tell principals apart (every connection is `User:ANONYMOUS`). So does one that offers
OAUTHBEARER, whose unsecured tokens let anyone claim any principal.
"""

from __future__ import annotations

import logging
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from kafkito.broker.auth.acl import (
    Acl,
    AclFilter,
    AclOperation,
    PatternType,
    ResourceType,
    allowed_for_any,
    decide,
)

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore

__all__ = ["MAX_ACLS", "AclAuthorizer", "authorizer_of"]

log = logging.getLogger(__name__)

MAX_ACLS = 100_000
"""ACLs kept at most; CreateAcls beyond it is refused (one bound on metadata-log growth)."""
MAX_CACHED_DECISIONS = 100_000

_Key = tuple[str, str, int, int, str]
WILDCARD = "*"


class AclAuthorizer:
    """The ACLs of one broker and the authorization decisions over them."""

    def __init__(self, broker: BrokerCore) -> None:
        settings = broker.settings
        self.broker = broker
        self.enabled = settings.authorizer == "acl"
        self.super_users = frozenset(settings.super_users)
        self.allow_if_no_acl = settings.allow_everyone_if_no_acl_found
        self.acls: dict[Acl, None] = {}
        """Insertion-ordered set: DescribeAcls lists ACLs in the order they were created."""
        self._by_type: dict[ResourceType, list[Acl]] = {}
        self._literal: dict[tuple[ResourceType, str], list[Acl]] = {}
        self._prefixed: dict[tuple[ResourceType, str], list[Acl]] = {}
        self._prefix_lengths: dict[ResourceType, Counter[int]] = {}
        self._cache: dict[_Key, bool] = {}

    # -- decisions -----------------------------------------------------------------------------

    def allows(
        self,
        principal: str,
        host: str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: str,
    ) -> bool:
        """May `principal`, connected from `host`, do `operation` on the resource?"""
        if not self.enabled or principal in self.super_users:
            return True
        key = (principal, host, int(operation), int(resource_type), name)
        found = self._cache.get(key)
        if found is None:
            found = decide(
                self._candidates(resource_type, name),
                principal,
                host,
                operation,
                resource_type,
                name,
                allow_if_no_acl=self.allow_if_no_acl,
            )
            if len(self._cache) >= MAX_CACHED_DECISIONS:
                self._cache.clear()
            self._cache[key] = found
        return found

    def allows_any(
        self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType
    ) -> bool:
        """Kafka's authorizeByResourceType: the operation on some resource of the type."""
        if not self.enabled or principal in self.super_users:
            return True
        return allowed_for_any(
            self._by_type.get(resource_type, ()),
            principal,
            host,
            operation,
            resource_type,
            allow_if_no_acl=self.allow_if_no_acl,
        )

    def _candidates(self, rtype: ResourceType, name: str) -> list[Acl]:
        """Every ACL whose pattern may cover the resource (a superset; decide checks)."""
        found = list(self._literal.get((rtype, name), ()))
        if name != WILDCARD:
            found += self._literal.get((rtype, WILDCARD), ())
        for length in self._prefix_lengths.get(rtype, ()):
            if length <= len(name):
                found += self._prefixed.get((rtype, name[:length]), ())
        return found

    # -- CreateAcls / DescribeAcls / DeleteAcls ---------------------------------------------

    def describe(self, wanted: AclFilter) -> list[Acl]:
        return [acl for acl in self.acls if wanted.matches(acl)]

    async def create(self, acls: Iterable[Acl]) -> None:
        """Persist, then apply, the new ACLs (ones already present are no change).

        One admin change at a time (the topic registry's admin lock), fsynced off the loop
        (MetadataLog.append_durable). Raises OSError if the metadata log cannot be written
        (nothing applied) and ValueError beyond MAX_ACLS."""
        async with self.broker.topics.admin_lock:
            await self._create(acls)

    async def _create(self, acls: Iterable[Acl]) -> None:
        new = list(dict.fromkeys(acl for acl in acls if acl not in self.acls))
        if not new:
            return
        if len(self.acls) + len(new) > MAX_ACLS:
            raise ValueError(f"more than {MAX_ACLS} ACLs")
        await self.broker.metalog.append_durable([_record(acl, on=True) for acl in new])
        for acl in new:
            self._add(acl)
        for acl in new:
            log.info("ACL created: %s", acl.describe())

    async def delete(self, filters: list[AclFilter]) -> list[list[Acl]]:
        """Delete the ACLs each filter matches; per filter, what it deleted (an ACL matched by
        two filters is listed under both, as Kafka does). Raises OSError as `create`."""
        async with self.broker.topics.admin_lock:
            return await self._delete(filters)

    async def _delete(self, filters: list[AclFilter]) -> list[list[Acl]]:
        matched = [[acl for acl in self.acls if f.matches(acl)] for f in filters]
        gone = list(dict.fromkeys(acl for found in matched for acl in found))
        if gone:
            await self.broker.metalog.append_durable([_record(acl, on=False) for acl in gone])
            for acl in gone:
                self._remove(acl)
                log.info("ACL deleted: %s", acl.describe())
        return matched

    def _index(self, acl: Acl) -> list[Acl]:
        key = (acl.resource_type, acl.name)
        if acl.pattern_type is PatternType.LITERAL:
            return self._literal.setdefault(key, [])
        return self._prefixed.setdefault(key, [])

    def _add(self, acl: Acl) -> None:
        if acl not in self.acls:
            self.acls[acl] = None
            self._by_type.setdefault(acl.resource_type, []).append(acl)
            self._index(acl).append(acl)
            if acl.pattern_type is PatternType.PREFIXED:
                lengths = self._prefix_lengths.setdefault(acl.resource_type, Counter())
                lengths[len(acl.name)] += 1
            self._cache.clear()

    def _remove(self, acl: Acl) -> None:
        if acl in self.acls:
            del self.acls[acl]
            self._by_type[acl.resource_type].remove(acl)
            self._index(acl).remove(acl)
            if acl.pattern_type is PatternType.PREFIXED:
                lengths = self._prefix_lengths[acl.resource_type]
                lengths[len(acl.name)] -= 1
                if lengths[len(acl.name)] <= 0:
                    del lengths[len(acl.name)]
            self._cache.clear()

    # -- metadata-log participant -------------------------------------------------------

    def begin_replay(self) -> None:
        self.acls.clear()
        self._by_type.clear()
        self._literal.clear()
        self._prefixed.clear()
        self._prefix_lengths.clear()
        self._cache.clear()

    def replay(self, record: dict[str, Any]) -> bool:
        if record.get("type") != "acl":
            return False
        acl = Acl.from_record(record["acl"])
        if record.get("on", True):
            self._add(acl)
        else:
            self._remove(acl)
        return True

    def finish_replay(self) -> None:
        if self.acls:
            log.info("%d ACLs loaded (authorizer %s)", len(self.acls), self.enabled and "on")

    def live_records(self) -> Iterator[dict[str, Any]]:
        for acl in self.acls:
            yield _record(acl, on=True)

    async def start(self) -> None:
        settings = self.broker.settings
        if settings.sasl_enabled and "OAUTHBEARER" in settings.sasl_mechanisms:
            log.warning(
                "*** SASL OAUTHBEARER with UNSECURED tokens is on: any client may log in as "
                "any principal (development only)%s ***",
                "" if settings.is_loopback() else f"; and {settings.host} is reachable",
            )
        if not settings.is_loopback() and not settings.sasl_enabled and not settings.ssl_cafile:
            log.warning(
                "*** listening on %s WITHOUT AUTHENTICATION: anyone who can reach port %d may "
                "read, write and delete every topic%s. Use --security-protocol SASL_SSL (or "
                "SASL_PLAINTEXT) with --sasl-users-file, or listen on 127.0.0.1 ***",
                settings.host,
                self.broker.port,
                "; ACLs see every client as User:ANONYMOUS" if self.enabled else "",
            )


def _record(acl: Acl, *, on: bool) -> dict[str, Any]:
    return {"type": "acl", "acl": acl.to_record(), "on": on}


_AUTHORIZERS: weakref.WeakKeyDictionary[BrokerCore, AclAuthorizer] = weakref.WeakKeyDictionary()


def install(broker: BrokerCore) -> None:
    """Attach the authorizer to a fresh BrokerCore (called by `assembly.build_core`)."""
    authorizer = AclAuthorizer(broker)
    _AUTHORIZERS[broker] = authorizer
    broker.participants.append(authorizer)


def authorizer_of(broker: BrokerCore) -> AclAuthorizer | None:
    return _AUTHORIZERS.get(broker)
