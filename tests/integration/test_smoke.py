"""The data path end to end with confluent-kafka: produce, then read back by assignment."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition


def test_produce_then_fetch_round_trips_keys_values_headers(broker: str, topic_name: str) -> None:
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 5})
    delivered: list[int] = []
    for i in range(20):
        producer.produce(
            topic_name,
            key=f"k{i}".encode(),
            value=f"v{i}".encode(),
            headers={"n": str(i)},
            on_delivery=lambda err, msg: delivered.append(-1 if err else msg.offset()),
        )
    assert producer.flush(10) == 0
    assert sorted(delivered) == list(range(20))

    consumer = Consumer(
        {"bootstrap.servers": broker, "group.id": "smoke", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic_name, 0, 0)])
    seen = []
    while len(seen) < 20:
        msg = consumer.poll(10)
        assert msg is not None, f"timed out after {len(seen)} messages"
        assert msg.error() is None, msg.error()
        seen.append((msg.offset(), msg.key(), msg.value(), msg.headers()))
    consumer.close()
    assert seen == [
        (i, f"k{i}".encode(), f"v{i}".encode(), [("n", str(i).encode())]) for i in range(20)
    ]
