"""streams.topics.partitions_of_created: a topic just created may be unknown for a moment to
the broker asked about it (Apache Kafka with several brokers); it is asked again."""

from __future__ import annotations

from typing import Any, cast

import pytest

from kafkito.client import Admin
from kafkito.client.errors import UnknownTopicError
from kafkito.streams import topics


class Lagging:
    """An Admin whose broker learns of the topic after `unknown_for` answers."""

    def __init__(self, unknown_for: int) -> None:
        self.unknown_for = unknown_for
        self.asked = 0

    def partitions(self, topic: str) -> list[int]:
        self.asked += 1
        if self.asked <= self.unknown_for:
            raise UnknownTopicError(f"topic {topic!r} does not exist", topic=topic)
        return [0, 1, 2]


def admin(lagging: Lagging) -> Admin:
    return cast(Admin, cast(Any, lagging))


def test_a_topic_unknown_for_a_moment_is_asked_again() -> None:
    lagging = Lagging(unknown_for=3)
    assert topics.partitions_of_created(admin(lagging), "t-changelog") == 3
    assert lagging.asked == 4


def test_a_topic_that_stays_unknown_still_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topics, "VISIBLE_WITHIN_S", 0.3)
    with pytest.raises(UnknownTopicError):
        topics.partitions_of_created(admin(Lagging(unknown_for=10**9)), "t-changelog")
