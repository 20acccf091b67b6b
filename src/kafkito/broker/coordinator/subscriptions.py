"""Which topics a classic consumer group subscribes to, read from its members' metadata.

OffsetDelete refuses (GROUP_SUBSCRIBED_TO_TOPIC) to delete offsets of a topic that a live member
of a `consumer` group subscribes to, because the member would commit them again at once and a
reset would be lost. Kafka learns the topics from the ConsumerProtocolSubscription each member
sent in JoinGroup for the group's chosen protocol (ClassicGroup.computeSubscribedTopics); this
module does the same, purely.

ConsumerProtocolSubscription v0-3 is a non-flexible struct: int16 version, then topics as an
int32 count of int16-length strings (later fields: user data, owned partitions, generation,
rack; none needed here). Metadata that does not parse makes Kafka log and treat the group as
subscribed to nothing; so does this.
"""

from __future__ import annotations

import struct

from kafkito.broker.coordinator.group import Group

CONSUMER_PROTOCOL_TYPE = "consumer"
MAX_SUBSCRIBED_TOPICS = 100_000
"""A bound on the topic count read from one member's metadata (the frame limit bounds it too)."""

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


def subscription_topics(metadata: bytes) -> set[str] | None:
    """The topics of one ConsumerProtocolSubscription, or None if the bytes do not parse."""
    try:
        (version,) = _I16.unpack_from(metadata, 0)
        if version < 0:
            return None
        (count,) = _I32.unpack_from(metadata, 2)
        if not 0 <= count <= MAX_SUBSCRIBED_TOPICS:
            return None
        at = 6
        topics: set[str] = set()
        for _ in range(count):
            (size,) = _I16.unpack_from(metadata, at)
            at += 2
            if size < 0 or at + size > len(metadata):
                return None
            topics.add(metadata[at : at + size].decode())
            at += size
        return topics
    except (struct.error, UnicodeDecodeError):
        return None


def subscribed_topics(group: Group) -> set[str]:
    """Every topic some member of a `consumer` group subscribes to (empty for other groups)."""
    if group.protocol_type != CONSUMER_PROTOCOL_TYPE or group.protocol_name is None:
        return set()
    topics: set[str] = set()
    for member in group.members.values():
        found = subscription_topics(member.metadata_for(group.protocol_name))
        if found is None:
            return set()
        topics |= found
    return topics
