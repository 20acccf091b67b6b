"""kafkito: Kafka made simple for Python.

An embedded Kafka-compatible broker (`Broker`), and a client library on confluent-kafka.
"""

from kafkito.broker.embedded import Broker
from kafkito.broker.settings import BrokerSettings
from kafkito.errors import KafkitoError

__version__ = "0.1.0"

__all__ = ["Broker", "BrokerSettings", "KafkitoError", "__version__"]
