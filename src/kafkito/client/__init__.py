"""kafkito's client library on confluent-kafka: Writer, TopicWriter, Reader, HealthChecker.

Sync here; the asyncio flavour has the same names and semantics in `kafkito.aio`.
`Producer` and `Consumer` are the seed's other names for Writer and Reader.
"""

from kafkito.client.config import ClientConfig, ReaderConfig, TLSConfig, WriterConfig
from kafkito.client.errors import (
    AuthenticationError,
    BrokerUnreachableError,
    ClientError,
    ConfigError,
    DeliveryError,
    MessageTooLargeError,
    UnknownTopicError,
)
from kafkito.client.health import HealthChecker, serve_health
from kafkito.client.reader import Message, Reader, current_message, message_key
from kafkito.client.writer import Delivery, Record, TopicWriter, Writer

Producer = Writer
Consumer = Reader

__all__ = [
    "AuthenticationError",
    "BrokerUnreachableError",
    "ClientConfig",
    "ClientError",
    "ConfigError",
    "Consumer",
    "Delivery",
    "DeliveryError",
    "HealthChecker",
    "Message",
    "MessageTooLargeError",
    "Producer",
    "Reader",
    "ReaderConfig",
    "Record",
    "TLSConfig",
    "TopicWriter",
    "UnknownTopicError",
    "Writer",
    "WriterConfig",
    "current_message",
    "message_key",
    "serve_health",
]
