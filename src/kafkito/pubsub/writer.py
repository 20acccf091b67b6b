"""Writer and TopicWriter on Pub/Sub: every write returns only once Pub/Sub confirmed it.

The same shapes as `kafkito.client.writer`: `write(value, headers=None, key=None)`,
`write_value`, `write_with_key`, `write_many`, `flush`, `close`, `with`. What maps to what:

    Kafka record            Pub/Sub message
    value                   data (bytes; str is UTF-8 encoded)
    headers                 attributes (str to str: bytes values must be UTF-8)
    key                     ordering_key (messages with one key keep their order)
    Delivery(topic, partition, offset)      Delivery(topic, message_id)

google-cloud-pubsub batches messages per (topic, ordering key) and sends a batch when it holds
`count_threshold` messages or `byte_threshold` bytes or is `delay_threshold` old; each
`publish()` returns a future. `write()` publishes and then commits that batch at once (the
client would otherwise wait the delay for company, as the Kafka Writer's flush avoids
linger.ms), then waits for the future: the message id is Pub/Sub's confirmation that the
message is stored. `write_many()` publishes everything, lets the batches fill, and waits for
every future: one failed message fails the call, naming how many failed.

Ordering keys: the publisher runs with message ordering on (config `message_ordering`), as
Pub/Sub requires for keys. After a failed publish the google client pauses that key, failing
every later message with it, so ordering is never silently broken; kafkito reports the
failure and resumes the key, as the Kafka Writer lets the next write of a key go through.

Attribute names that are also parameters of google's `publish()` (`data`, `topic`,
`ordering_key`, `retry`, `timeout`) cannot be sent through it and are refused with a clear
error instead of a TypeError from deep inside the client.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Self

from kafkito.pubsub import _google
from kafkito.pubsub.config import WriterConfig
from kafkito.pubsub.errors import ClientError, ConfigError, DeliveryError, from_google_error

log = logging.getLogger(__name__)

__all__ = ["Delivery", "Headers", "Record", "TopicWriter", "Value", "Writer"]

Value = bytes | str | None
Headers = Mapping[str, bytes | str | None] | Sequence[tuple[str, bytes | str | None]]

RESERVED_ATTRIBUTES = frozenset({"data", "topic", "ordering_key", "retry", "timeout"})
"""Names google's publish() takes as parameters, so they cannot be attribute names."""


class Delivery(NamedTuple):
    """Where Pub/Sub put a message: its topic and the message id it assigned."""

    topic: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Record:
    """One message for `write_many`: data, ordering key, attributes."""

    value: Value
    key: Value = None
    headers: Headers | None = None


def _data(value: Value) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"values must be bytes, str or None, not {type(value).__name__}")


def _ordering_key(key: Value) -> str:
    if key is None:
        return ""
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        try:
            return key.decode()
        except UnicodeDecodeError:
            raise ValueError(
                "a Pub/Sub ordering key is text: this bytes key is not UTF-8"
            ) from None
    raise TypeError(f"keys must be bytes, str or None, not {type(key).__name__}")


def attributes(headers: Headers | None) -> dict[str, str]:
    """Headers as Pub/Sub attributes (str to str); raises ValueError naming a bad one."""
    if not headers:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in RESERVED_ATTRIBUTES:
            raise ValueError(
                f"attribute name {name!r} cannot be published: google-cloud-pubsub takes it as "
                f"a parameter of publish() (reserved: {', '.join(sorted(RESERVED_ATTRIBUTES))})"
            )
        if value is None:
            out[name] = ""
        elif isinstance(value, bytes):
            try:
                out[name] = value.decode()
            except UnicodeDecodeError:
                raise ValueError(
                    f"attribute {name!r} is not UTF-8: Pub/Sub attributes are text"
                ) from None
        else:
            out[name] = value
    return out


def _as_record(item: Record | Value) -> Record:
    return item if isinstance(item, Record) else Record(item)


def build_writer_config(
    config: WriterConfig | Mapping[str, Any] | None,
    *,
    topic: str | None = None,
    project_id: str | None = None,
) -> WriterConfig:
    """A WriterConfig from an object or a dict, with keyword overrides applied."""
    base = config if isinstance(config, WriterConfig) else WriterConfig.from_dict(config or {})
    merged = base.merged(topic_id=topic)
    if project_id is not None:
        merged = merged.merged(client={**merged.client.model_dump(), "project_id": project_id})
    return merged


class Pending(NamedTuple):
    """One published message awaiting confirmation."""

    future: Any
    topic: str
    key: str
    size_bytes: int


class PublisherCore:
    """The google publisher, topic checks and error mapping; shared by sync and async writers."""

    def __init__(self, config: WriterConfig) -> None:
        g = _google.pubsub()
        self.config = config
        self.project_id = config.client.resolved_project_id()
        batch = g.types.BatchSettings(
            max_bytes=config.topic.byte_threshold,
            max_latency=config.topic.delay_threshold,
            max_messages=config.topic.count_threshold,
        )
        options = g.types.PublisherOptions(enable_message_ordering=config.message_ordering)
        self.publisher = g.PublisherClient(
            batch_settings=batch,
            publisher_options=options,
            credentials=_google.credentials(config.client),
        )
        self.known_topics: set[str] = set()
        self.closed = False
        self._paths: dict[str, str] = {}
        self._wait_errors: tuple[type[BaseException], ...] = (
            concurrent.futures.TimeoutError,
            *_google.google_exceptions(),
        )

    def path(self, topic: str) -> str:
        """The topic's full name; a name already of the form projects/*/topics/* is kept."""
        path = self._paths.get(topic)
        if path is None:
            path = (
                topic
                if topic.startswith("projects/")
                else f"projects/{self.project_id}/topics/{topic}"
            )
            self._paths[topic] = path
        return path

    def ensure_topic(self, topic: str) -> None:
        """Check the topic exists (creating it when create_if_missing), once per topic."""
        if topic in self.known_topics:
            return
        path = self.path(topic)
        timeout = self.config.client.timeout
        delays = self.config.retry_delays_s

        def get_or_create() -> None:
            try:
                self.publisher.get_topic(topic=path, timeout=timeout, retry=None)
            except Exception as exc:
                if not (_google.is_not_found(exc) and self.config.create_if_missing):
                    raise
                try:
                    self.publisher.create_topic(name=path, timeout=timeout, retry=None)
                    log.info("created Pub/Sub topic %s", path)
                except Exception as created:
                    if not _google.is_already_exists(created):  # a racing writer made it
                        raise

        _google.call_with_retry(get_or_create, delays_s=delays, topic=topic)
        self.known_topics.add(topic)

    def publish(self, topic: str, value: Value, key: Value, headers: Headers | None) -> Pending:
        """Hand one message to the google batcher; raises at once for bad input."""
        if self.closed:
            raise ClientError("the writer is closed")
        data = _data(value)
        attrs = attributes(headers)
        ordering_key = _ordering_key(key)
        if not data and not attrs:
            raise ValueError("a Pub/Sub message needs data or at least one attribute")
        if ordering_key and not self.config.message_ordering:
            raise ConfigError(
                "a key (ordering key) needs message_ordering: true", key="message_ordering"
            )
        try:
            future = self.publisher.publish(
                self.path(topic), data, ordering_key=ordering_key, **attrs
            )
        except _google.google_exceptions() as exc:
            raise from_google_error(exc, topic=topic, size_bytes=len(data)) from None
        return Pending(future, topic, ordering_key, len(data))

    def send_now(self, pending: Pending) -> None:
        """Commit the batch holding `pending` now instead of after delay_threshold.

        Uses the client's sequencer (not public API; it has not changed in the 2.x line). If it
        is missing, the batch still goes after delay_threshold: only latency differs.
        """
        lock = getattr(self.publisher, "_batch_lock", None)
        sequencers = getattr(self.publisher, "_sequencers", None)
        if lock is None or sequencers is None:
            return
        with lock:
            sequencer = sequencers.get((self.path(pending.topic), pending.key))
            if sequencer is not None:
                sequencer.commit()

    def failure(self, exc: BaseException, pending: Pending) -> ClientError:
        """The typed error for a failed publish; resumes a paused ordering key."""
        if isinstance(exc, concurrent.futures.TimeoutError | TimeoutError):
            error: ClientError = DeliveryError(
                f"no confirmation from Pub/Sub for topic {pending.topic!r} within "
                f"{self.config.client.timeout:g}s; it may still arrive: raise client.timeout "
                "or check PUBSUB_EMULATOR_HOST / the network",
                reason="DEADLINE_EXCEEDED",
                topic=pending.topic,
                retriable=True,
            )
        else:
            error = from_google_error(exc, topic=pending.topic, size_bytes=pending.size_bytes)
        if pending.key:
            # RuntimeError: the publisher is stopped; ValueError: the key was never paused
            with contextlib.suppress(RuntimeError, ValueError):
                self.publisher.resume_publish(self.path(pending.topic), pending.key)
        return error

    def confirmed(self, pending: Pending, message_id: object) -> Delivery:
        return Delivery(pending.topic, str(message_id))

    def wait(self, pending: Pending, timeout_s: float | None = None) -> Delivery:
        """Block until the message is confirmed; raises the typed error otherwise."""
        wait_s = self.config.client.timeout if timeout_s is None else timeout_s
        try:
            message_id = pending.future.result(timeout=wait_s)
        except self._wait_errors as exc:
            raise self.failure(exc, pending) from None
        return Delivery(pending.topic, str(message_id))

    def flush(self, timeout_s: float | None = None) -> None:
        """Send every open batch now. The google client confirms each future on its own."""
        lock = getattr(self.publisher, "_batch_lock", None)
        sequencers = getattr(self.publisher, "_sequencers", None)
        if lock is None or sequencers is None:
            return
        with lock:
            for sequencer in list(sequencers.values()):
                sequencer.commit()

    def release(self) -> None:
        """Send what is batched, wait for it, and stop the publisher. Idempotent."""
        if not self.closed:
            self.closed = True
            self.publisher.stop()


def settle_all(core: PublisherCore, pendings: list[Pending]) -> list[Delivery]:
    """Wait for every pending message; raise the first failure, naming how many failed."""
    deliveries: list[Delivery] = []
    failures: list[ClientError] = []
    for pending in pendings:
        try:
            deliveries.append(core.wait(pending))
        except ClientError as exc:
            failures.append(exc)
    if failures:
        first = failures[0]
        first.args = (f"{len(failures)} of {len(pendings)} messages failed; first: {first}",)
        raise first
    return deliveries


def publish_many(core: PublisherCore, topic: str, items: Iterable[Record | Value]) -> list[Pending]:
    """Publish every record; on bad input, settle those already published and raise."""
    pendings: list[Pending] = []
    for item in items:
        record = _as_record(item)
        try:
            pendings.append(core.publish(topic, record.value, record.key, record.headers))
        except BaseException:
            core.flush()
            for pending in pendings:  # their fate is decided; do not leave futures dangling
                pending.future.exception(timeout=core.config.client.timeout)
            raise
    core.flush()
    return pendings


class _SyncWriting:
    """What Writer and TopicWriter share: the publisher, the confirmation wait, close and with."""

    def __init__(self, config: WriterConfig) -> None:
        self._core = PublisherCore(config)

    @property
    def config(self) -> WriterConfig:
        return self._core.config

    @property
    def project_id(self) -> str:
        return self._core.project_id

    def _write(self, topic: str, value: Value, headers: Headers | None, key: Value) -> Delivery:
        if self.config.create_if_missing:
            self._core.ensure_topic(topic)
        pending = self._core.publish(topic, value, key, headers)
        self._core.send_now(pending)
        return self._core.wait(pending)

    def _write_many(self, topic: str, records: Iterable[Record | Value]) -> list[Delivery]:
        if self.config.create_if_missing:
            self._core.ensure_topic(topic)
        return settle_all(self._core, publish_many(self._core, topic, records))

    def flush(self, timeout_s: float | None = None) -> None:
        """Send every batched message now (writes already wait for their own confirmation)."""
        self._core.flush(timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """Send what is batched, then stop the publisher. Idempotent."""
        self._core.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(project_id={self.project_id!r}, topic={self.config.topic_id!r})"
        )


class Writer(_SyncWriting):
    """Publishes to one topic; each call returns once Pub/Sub confirmed the message.

    `config` is a WriterConfig or a dict of the seed's pubsub keys; `topic` and `project_id`
    override it. The topic is checked on construction (created when `create_if_missing`):
    a missing topic raises UnknownTopicError here, not on the first write.
    """

    def __init__(
        self,
        topic: str | None = None,
        config: WriterConfig | Mapping[str, Any] | None = None,
        *,
        project_id: str | None = None,
    ) -> None:
        merged = build_writer_config(config, topic=topic, project_id=project_id)
        if not merged.topic_id:
            raise ConfigError("a Writer needs a topic_id (or use TopicWriter)", key="topic_id")
        self.topic: str = merged.topic_id
        super().__init__(merged)
        try:
            self._core.ensure_topic(self.topic)
        except BaseException:
            self._core.release()
            raise

    def write(self, value: Value, headers: Headers | None = None, key: Value = None) -> Delivery:
        """Publish one message and wait for Pub/Sub's confirmation.

        `headers` become attributes, `key` the ordering key. Raises UnknownTopicError,
        MessageTooLargeError, AuthenticationError or DeliveryError; ValueError for bad input.
        """
        return self._write(self.topic, value, headers, key)

    def write_value(self, value: Value) -> Delivery:
        """Publish data with no attributes and no ordering key."""
        return self._write(self.topic, value, None, None)

    def write_with_key(self, value: Value, key: Value, headers: Headers | None = None) -> Delivery:
        """Publish with an ordering key (messages with one key keep their order)."""
        return self._write(self.topic, value, headers, key)

    def write_many(self, records: Iterable[Record | Value]) -> list[Delivery]:
        """Publish a batch; returns once every message is confirmed, raises if any failed.

        The result holds one Delivery per record, in input order.
        """
        return self._write_many(self.topic, records)


class TopicWriter(_SyncWriting):
    """One publisher, the topic chosen per call."""

    def __init__(
        self,
        config: WriterConfig | Mapping[str, Any] | None = None,
        *,
        project_id: str | None = None,
    ) -> None:
        super().__init__(build_writer_config(config, project_id=project_id))

    def write(
        self, topic: str, value: Value, headers: Headers | None = None, key: Value = None
    ) -> Delivery:
        """Publish one message to `topic` and wait for Pub/Sub's confirmation."""
        return self._write(topic, value, headers, key)

    def write_value(self, topic: str, value: Value) -> Delivery:
        return self._write(topic, value, None, None)

    def write_with_key(
        self, topic: str, value: Value, key: Value, headers: Headers | None = None
    ) -> Delivery:
        return self._write(topic, value, headers, key)

    def write_many(self, topic: str, records: Iterable[Record | Value]) -> list[Delivery]:
        return self._write_many(topic, records)
