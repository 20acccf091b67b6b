"""Public test kit: real brokers for tests (kafkito's embedded one, Apache Kafka itself as the
reference, and Tansu for comparison)."""

from typing import TYPE_CHECKING, Any

from kafkito.testing.brokers import BrokerProcess, free_port, start_tansu, tansu_binary

if TYPE_CHECKING:
    from kafkito.testing.apache_kafka import ApacheKafka, ApacheKafkaError

__all__ = [
    "ApacheKafka",
    "ApacheKafkaError",
    "BrokerProcess",
    "free_port",
    "start_tansu",
    "tansu_binary",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that `python -m kafkito.testing.apache_kafka` runs the module
    # as __main__ without a second copy already imported.
    if name in ("ApacheKafka", "ApacheKafkaError"):
        from kafkito.testing import apache_kafka

        return getattr(apache_kafka, name)
    raise AttributeError(f"module 'kafkito.testing' has no attribute {name!r}")
