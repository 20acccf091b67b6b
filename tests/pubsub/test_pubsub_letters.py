"""Dead-letter attributes on Pub/Sub (pure functions: no emulator)."""

from __future__ import annotations

from kafkito.flow.outcomes import Reject
from kafkito.pubsub.letters import ATTRIBUTE_VALUE_MAX_BYTES, cut_utf8, dead_letter_attributes


def attributes(source: dict[str, str], exc: BaseException) -> dict[str, str]:
    return dead_letter_attributes(
        source,
        topic="orders",
        subscription="orders-sub",
        message_id="42",
        publish_time_ms=1_700_000_000_000,
        attempts=3,
        exc=exc,
    )


def test_origin_and_failure_beside_the_messages_own_attributes() -> None:
    out = attributes({"kind": "new"}, Reject("no stock"))
    assert out == {
        "kind": "new",
        "x-kafkito-original-topic": "orders",
        "x-kafkito-original-message-id": "42",
        "x-kafkito-original-timestamp": "1700000000000",
        "x-kafkito-group": "orders-sub",
        "x-kafkito-attempts": "3",
        "x-kafkito-exception-type": "kafkito.flow.outcomes.Reject",
        "x-kafkito-exception-message": "no stock",
    }


def test_a_message_back_from_a_dead_letter_topic_keeps_its_first_origin() -> None:
    first = attributes({"kind": "new"}, ValueError("boom"))
    again = dead_letter_attributes(
        first,
        topic="orders.dlq",
        subscription="replay",
        message_id="99",
        publish_time_ms=None,
        attempts=1,
        exc=KeyError("k"),
    )
    assert again["x-kafkito-original-topic"] == "orders"
    assert again["x-kafkito-original-message-id"] == "42"
    assert again["x-kafkito-group"] == "replay"
    assert again["x-kafkito-exception-type"] == "builtins.KeyError"


def test_long_exception_text_is_cut_to_the_attribute_limit_on_a_character_boundary() -> None:
    out = attributes({}, ValueError("é" * 2000))
    text = out["x-kafkito-exception-message"]
    assert len(text.encode()) <= ATTRIBUTE_VALUE_MAX_BYTES
    assert text.endswith("...[truncated]") and text.startswith("éé")
    assert cut_utf8("short") == "short"
