"""The app's topics before it starts: source partition counts, repartition topics,
changelogs (compacted, as many partitions as their input) and the dead-letter topic, and
the co-partitioning check of joined topics. Called once by `StreamsApp` at start-up."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from kafkito.client import Admin
from kafkito.client.errors import ClientError, UnknownTopicError
from kafkito.streams.aggregate import StoreSpec
from kafkito.streams.errors import StreamsError

__all__ = ["create_topics"]

VISIBLE_WITHIN_S = 10.0
"""How long a topic just created may stay unknown to the broker asked about it."""


def partitions_of_created(admin: Admin, topic: str) -> int:
    """The partition count of a topic just created (or found existing). On a cluster the
    broker that answers may not have learned of a new topic yet (Apache Kafka with three
    brokers answered UNKNOWN_TOPIC_OR_PARTITION for a changelog created a moment before).
    `Admin.create_topic` waits until every broker lists the topic (created, or found existing
    with if_not_exists) but gives up quietly after its timeout, so an unknown topic is asked
    again here for up to `VISIBLE_WITHIN_S` before it is an error."""
    deadline = time.monotonic() + VISIBLE_WITHIN_S
    while True:
        try:
            return len(admin.partitions(topic))
        except UnknownTopicError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def create_topics(
    admin: Admin,
    *,
    sources: Iterable[str],
    repartitions: Mapping[str, tuple[str, int | None]],
    joins: Iterable[tuple[str, str]],
    stores: Iterable[StoreSpec],
    dead_letters: str,
) -> None:
    """Create what is missing and check what exists; StreamsError when a source topic is
    missing, joined topics are not co-partitioned or a changelog does not match its input.
    `sources` are the user's topics (not the repartition topics)."""
    counts: dict[str, int] = {}
    for topic in sources:
        try:
            counts[topic] = len(admin.partitions(topic))
        except ClientError as exc:
            raise StreamsError(f"source topic {topic!r}: {exc}") from exc
    pending = dict(repartitions)
    while pending:
        if not any(source in counts for source, _ in pending.values()):
            raise StreamsError(f"repartition topics without a source: {sorted(pending)}")
        for topic, (source, partitions) in list(pending.items()):
            if source in counts:
                counts[topic] = partitions or counts[source]
                admin.create_topic(topic, counts[topic], if_not_exists=True)
                counts[topic] = partitions_of_created(admin, topic)
                del pending[topic]
    for stream_topic, other in joins:
        if counts[stream_topic] != counts[other]:
            raise StreamsError(
                f"{stream_topic!r} ({counts[stream_topic]} partitions) joins "
                f"{other!r} ({counts[other]}): co-partitioned topics must have as many "
                "partitions (repartition the stream with partitions=)"
            )
    for spec in stores:
        if spec.source_backed:
            continue
        admin.create_topic(
            spec.changelog,
            counts[spec.topic],
            configs={"cleanup.policy": "compact"},
            if_not_exists=True,
        )
        have = partitions_of_created(admin, spec.changelog)
        if have != counts[spec.topic]:
            raise StreamsError(
                f"changelog {spec.changelog!r} has {have} partitions, its input "
                f"{spec.topic!r} {counts[spec.topic]}: they must match"
            )
    admin.create_topic(dead_letters, 1, if_not_exists=True)
