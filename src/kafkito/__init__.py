"""kafkito: Kafka made simple for Python.

An embedded Kafka-compatible broker (`Broker`), and a client library on confluent-kafka.
Names are imported on first use, so `import kafkito` stays cheap for code that only needs the
client (the broker pulls in the protocol schemas).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kafkito.broker.embedded import Broker
    from kafkito.broker.settings import BrokerSettings
    from kafkito.client import (
        AuthenticationError,
        AuthorizationError,
        BrokerUnreachableError,
        ClientConfig,
        ClientError,
        ConfigError,
        Consumer,
        Delivery,
        DeliveryError,
        HealthChecker,
        Message,
        MessageTooLargeError,
        Producer,
        Reader,
        ReaderConfig,
        Record,
        TLSConfig,
        TopicWriter,
        UnknownTopicError,
        Writer,
        WriterConfig,
        current_message,
        message_key,
        serve_health,
    )
    from kafkito.errors import KafkitoError

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "Broker": "kafkito.broker.embedded",
    "BrokerSettings": "kafkito.broker.settings",
    "KafkitoError": "kafkito.errors",
    "AuthenticationError": "kafkito.client",
    "AuthorizationError": "kafkito.client",
    "BrokerUnreachableError": "kafkito.client",
    "ClientConfig": "kafkito.client",
    "ClientError": "kafkito.client",
    "ConfigError": "kafkito.client",
    "Consumer": "kafkito.client",
    "Delivery": "kafkito.client",
    "DeliveryError": "kafkito.client",
    "HealthChecker": "kafkito.client",
    "Message": "kafkito.client",
    "MessageTooLargeError": "kafkito.client",
    "Producer": "kafkito.client",
    "Reader": "kafkito.client",
    "ReaderConfig": "kafkito.client",
    "Record": "kafkito.client",
    "TLSConfig": "kafkito.client",
    "TopicWriter": "kafkito.client",
    "UnknownTopicError": "kafkito.client",
    "Writer": "kafkito.client",
    "WriterConfig": "kafkito.client",
    "current_message": "kafkito.client",
    "message_key": "kafkito.client",
    "serve_health": "kafkito.client",
}

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "Broker",
    "BrokerSettings",
    "BrokerUnreachableError",
    "ClientConfig",
    "ClientError",
    "ConfigError",
    "Consumer",
    "Delivery",
    "DeliveryError",
    "HealthChecker",
    "KafkitoError",
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
    "__version__",
    "current_message",
    "message_key",
    "serve_health",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kafkito' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
