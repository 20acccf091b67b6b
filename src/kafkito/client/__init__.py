"""kafkito's client library on confluent-kafka: Writer, TopicWriter, Reader, HealthChecker, Admin.

`RawProducer` and `RawConsumer` (kafkito.client.raw_producer / raw_consumer) are the
lower-level cores for tools that steer librdkafka themselves (the flow, the CLI, the console);
`kafkito.client` and `kafkito.aio` are the only modules that import confluent_kafka.

Sync here; the asyncio flavour has the same names and semantics in `kafkito.aio`.
`Producer` and `Consumer` are the seed's other names for Writer and Reader.
"""

from kafkito.client.admin import (
    Admin,
    AdminConfig,
    ClusterInfo,
    ConfigValue,
    GroupDescription,
    GroupListing,
    GroupMember,
    PartitionLag,
    TopicDescription,
)
from kafkito.client.config import ClientConfig, ReaderConfig, TLSConfig, WriterConfig
from kafkito.client.errors import (
    AdminError,
    AuthenticationError,
    AuthorizationError,
    BrokerUnreachableError,
    ClientError,
    ConfigError,
    DeliveryError,
    GroupNotEmptyError,
    InvalidRequestError,
    MessageTooLargeError,
    ProducerFencedError,
    TopicExistsError,
    TransactionError,
    UnknownGroupError,
    UnknownTopicError,
)
from kafkito.client.health import HealthChecker, serve_health
from kafkito.client.raw_consumer import RawConsumer
from kafkito.client.raw_producer import RawProducer
from kafkito.client.reader import Message, Reader, current_message, message_key
from kafkito.client.txn_admin import (
    ProducerState,
    TransactionDescription,
    TransactionListing,
    UnknownTransactionError,
)
from kafkito.client.writer import Delivery, Record, TopicWriter, Writer

Producer = Writer
Consumer = Reader

__all__ = [
    "Admin",
    "AdminConfig",
    "AdminError",
    "AuthenticationError",
    "AuthorizationError",
    "BrokerUnreachableError",
    "ClientConfig",
    "ClientError",
    "ClusterInfo",
    "ConfigError",
    "ConfigValue",
    "Consumer",
    "Delivery",
    "DeliveryError",
    "GroupDescription",
    "GroupListing",
    "GroupMember",
    "GroupNotEmptyError",
    "HealthChecker",
    "InvalidRequestError",
    "Message",
    "MessageTooLargeError",
    "PartitionLag",
    "Producer",
    "ProducerFencedError",
    "ProducerState",
    "RawConsumer",
    "RawProducer",
    "Reader",
    "ReaderConfig",
    "Record",
    "TLSConfig",
    "TopicDescription",
    "TopicExistsError",
    "TopicWriter",
    "TransactionDescription",
    "TransactionError",
    "TransactionListing",
    "UnknownGroupError",
    "UnknownTopicError",
    "UnknownTransactionError",
    "Writer",
    "WriterConfig",
    "current_message",
    "message_key",
    "serve_health",
]
