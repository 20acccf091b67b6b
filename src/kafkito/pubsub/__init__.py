"""kafkito on Google Pub/Sub: Writer, TopicWriter, Reader, HealthChecker, as in `kafkito.client`.

    from kafkito.pubsub import Writer, Reader          # instead of: from kafkito import ...
    from kafkito.pubsub.aio import Writer, Reader      # the asyncio flavour
    from kafkito.pubsub import Flow                    # the consume flow (kafkito.flow's)

The same names, arguments and guarantees as the Kafka client library (publish confirmed before
return; ack only after the handler returns), over google-cloud-pubsub (`pip install
'kafkito[pubsub]'`). That library is imported when the first Writer/Reader is built, not by
`import kafkito.pubsub`. docs/pubsub.md maps every Kafka notion to its Pub/Sub counterpart.
"""

from typing import TYPE_CHECKING

from kafkito.pubsub.config import (
    ClientConfig,
    ReaderConfig,
    SubscriptionSettings,
    TopicSettings,
    WriterConfig,
)
from kafkito.pubsub.errors import (
    AuthenticationError,
    BrokerUnreachableError,
    ClientError,
    ConfigError,
    DeliveryError,
    MessageTooLargeError,
    UnknownSubscriptionError,
    UnknownTopicError,
)
from kafkito.pubsub.health import HealthChecker
from kafkito.pubsub.reader import Message, Reader, current_message, message_key
from kafkito.pubsub.writer import Delivery, Record, TopicWriter, Writer

if TYPE_CHECKING:
    from kafkito.pubsub.flow import Flow, FlowError

Producer = Writer
Consumer = Reader


def __getattr__(name: str) -> object:
    """`Flow` is imported when first asked for: it brings the consume flow's machinery
    (prometheus-client, the Kafka flow's decoders), which plain readers and writers do not need."""
    if name in ("Flow", "FlowError"):
        from kafkito.pubsub import flow

        return getattr(flow, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AuthenticationError",
    "BrokerUnreachableError",
    "ClientConfig",
    "ClientError",
    "ConfigError",
    "Consumer",
    "Delivery",
    "DeliveryError",
    "Flow",
    "FlowError",
    "HealthChecker",
    "Message",
    "MessageTooLargeError",
    "Producer",
    "Reader",
    "ReaderConfig",
    "Record",
    "SubscriptionSettings",
    "TopicSettings",
    "TopicWriter",
    "UnknownSubscriptionError",
    "UnknownTopicError",
    "Writer",
    "WriterConfig",
    "current_message",
    "message_key",
]
