"""The broker's topics and partition logs, and their persistence in the metadata log.

One owner: all mutation happens on the broker's event loop. Topic ids are random, non-zero,
persisted and stable; a re-created topic gets a new id (KAFKA-NOTES §6 P5). The leader epoch is
constant (0) and persisted implicitly, so it never goes backwards (P6).

Dynamic broker configs (configs.py) live here too, because what they change is the topic
defaults every partition log acts on: a `broker_configs` record holds the whole map of one
scope (cluster-wide, or one node id), the last record of a scope wins, and a change reaches
every open log at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kafkito.broker.configs import DynamicBrokerConfigs, log_config_for, topic_default_values
from kafkito.broker.settings import BrokerSettings
from kafkito.errors import BrokerError, ErrorCode
from kafkito.storage.fs import FileSystem, off_loop
from kafkito.storage.log import LogConfig, PartitionLog
from kafkito.storage.metalog import MetadataLog
from kafkito.storage.recovery import RecoveryPlan

log = logging.getLogger(__name__)

LEADER_EPOCH = 0
_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_TOPIC_NAME = 249
MAX_FILE_NAME = 255
"""Bytes in one file name on Linux file systems (topic names are ASCII)."""


def topic_name_error(name: str) -> str | None:
    """Why `name` is not a valid topic name, or None (Kafka's Topic.validate)."""
    if not name:
        return "topic name is empty"
    if name in (".", ".."):
        return f"topic name cannot be {name!r}"
    if len(name) > MAX_TOPIC_NAME:
        return f"topic name is longer than {MAX_TOPIC_NAME} characters"
    if not _TOPIC_NAME.match(name):
        return f"topic name {name!r} has characters other than ASCII letters, digits, '.', '_', '-'"
    return None


@dataclass(slots=True)
class Topic:
    name: str
    topic_id: uuid.UUID
    configs: dict[str, str]
    partitions: list[PartitionLog] = field(default_factory=list)
    internal: bool = False


class TopicRegistry:
    """Topics by name and id, their logs, and the metadata records that persist them."""

    def __init__(self, settings: BrokerSettings, fs: FileSystem, metalog: MetadataLog) -> None:
        self.settings = settings
        self.fs = fs
        self.metalog = metalog
        self.by_name: dict[str, Topic] = {}
        self.by_id: dict[uuid.UUID, Topic] = {}
        self.log_dir = os.path.join(settings.data_path, "logs")
        self.dynamic = DynamicBrokerConfigs()
        """Broker keys set over the wire (AlterConfigs on a BROKER resource)."""
        self.recovery: RecoveryPlan | None = None
        """Set by BrokerCore.load: clean or unclean start, recovery points (storage.recovery)."""
        self._log_starts: list[dict[str, Any]] = []
        """Log starts moved by retention in this loop pass, not yet written."""
        self._writes: set[asyncio.Task[None]] = set()
        self.admin_lock = asyncio.Lock()
        """Admin operations one at a time: each checks, waits for its metadata record's fsync
        (off the event loop), then applies, so a check must not race another's apply."""

    # -- persistence ---------------------------------------------------------------------

    def replay(self, record: dict[str, Any]) -> bool:
        """Apply one metadata record at start-up; False if it is not a topic record."""
        kind = record.get("type")
        if kind == "topic":
            self.by_name[record["name"]] = Topic(
                record["name"],
                uuid.UUID(record["id"]),
                dict(record.get("configs", {})),
            )
            self.by_name[record["name"]].partitions = [None] * int(record["partitions"])  # type: ignore[list-item]
        elif kind == "topic_deleted":
            self.by_name.pop(record["name"], None)
            # A re-created topic must not inherit the deleted one's log start offsets.
            self._pending_log_starts.pop(record["name"], None)
        elif kind == "broker_configs":
            node = record.get("node")
            if node is None:
                self.dynamic.cluster = dict(record["configs"])
            elif int(node) == self.settings.node_id:
                self.dynamic.node = dict(record["configs"])
            # another node id: this data dir once ran under another id; not ours any more
        elif kind == "log_start":
            pending = self._pending_log_starts.setdefault(record["name"], {})
            pending[int(record["partition"])] = int(record["offset"])
        else:
            return False
        return True

    _pending_log_starts: dict[str, dict[int, int]]

    def begin_replay(self) -> None:
        self._pending_log_starts = {}

    def finish_replay(self) -> None:
        """Open every partition log named by the replayed records."""
        for topic in self.by_name.values():
            starts = self._pending_log_starts.get(topic.name, {})
            count = len(topic.partitions)
            config = self._log_config(topic)  # one per topic: every partition shares it
            topic.partitions = [
                self._open_log(topic, p, log_start_offset=starts.get(p, 0), config=config)
                for p in range(count)
            ]
            self.by_id[topic.topic_id] = topic
        self._pending_log_starts = {}

    def live_records(self) -> Iterator[dict[str, Any]]:
        """The records that recreate the current topics (for metadata log compaction)."""
        if self.dynamic.cluster:
            yield self._broker_configs_record(None)
        if self.dynamic.node:
            yield self._broker_configs_record(self.settings.node_id)
        for topic in self.by_name.values():
            yield self._topic_record(topic)
            for p in topic.partitions:
                if p.log_start_offset > 0:
                    yield {
                        "type": "log_start",
                        "name": topic.name,
                        "partition": p.partition,
                        "offset": p.log_start_offset,
                    }

    @staticmethod
    def _topic_record(topic: Topic) -> dict[str, Any]:
        return {
            "type": "topic",
            "name": topic.name,
            "id": str(topic.topic_id),
            "partitions": len(topic.partitions),
            "configs": topic.configs,
        }

    def _broker_configs_record(self, node: int | None) -> dict[str, Any]:
        configs = self.dynamic.cluster if node is None else self.dynamic.node
        return {"type": "broker_configs", "node": node, "configs": configs}

    def _log_config(self, topic: Topic) -> LogConfig:
        return log_config_for(topic.configs, topic_default_values(self.settings, self.dynamic))

    def _partition_dir(self, topic: Topic, partition: int) -> str:
        # The topic id in the directory name keeps a re-created topic's files apart. It makes
        # the name longer than Kafka's "<topic>-<partition>", so a long topic name (Kafka
        # allows 249 characters) is cut to fit a file name: the id keeps it unique.
        suffix = f"-{partition}.{topic.topic_id.hex}"
        return os.path.join(self.log_dir, topic.name[: MAX_FILE_NAME - len(suffix)] + suffix)

    def _open_log(
        self,
        topic: Topic,
        partition: int,
        *,
        log_start_offset: int = 0,
        config: LogConfig | None = None,
    ) -> PartitionLog:
        plog = PartitionLog.open(
            self.fs,
            self._partition_dir(topic, partition),
            topic.name,
            partition,
            config or self._log_config(topic),
            leader_epoch=LEADER_EPOCH,
            log_start_offset=log_start_offset,
            recovery=self.recovery,
        )
        plog.hw_is_durable = self.settings.durability == "always"
        return plog

    def _open_logs(self, topic: Topic, first: int, end: int) -> list[PartitionLog]:
        """Open (create) partitions `first` to `end` - 1 of `topic`, in a worker thread.

        Creating a partition is a directory and three files (no fsync: the first sync of
        each log does the directory), ~1 ms of system calls each: 10 s for 1,000 partitions
        when it ran on the event loop, with every client stalled meanwhile. The logs are
        not reachable from the loop until the caller publishes them.
        """
        opened: list[PartitionLog] = []
        config = self._log_config(topic)
        try:
            for p in range(first, end):
                opened.append(self._open_log(topic, p, config=config))
        except BaseException:
            _close_all(opened)
            raise
        return opened

    # -- queries ---------------------------------------------------------------------------

    def get(self, name: str) -> Topic | None:
        return self.by_name.get(name)

    def partition(self, name: str, index: int) -> PartitionLog | None:
        topic = self.by_name.get(name)
        if topic is None or not 0 <= index < len(topic.partitions):
            return None
        return topic.partitions[index]

    def max_message_bytes(self, topic: Topic) -> int:
        return self._log_config(topic).max_message_bytes

    # -- changes -----------------------------------------------------------------------------

    async def create(
        self,
        name: str,
        num_partitions: int,
        configs: dict[str, str] | None = None,
        *,
        validate_only: bool = False,
    ) -> Topic:
        """Create a topic; raises BrokerError with Kafka's code on a bad request.

        The topic is visible once its record is durable (fsynced off the loop).
        """
        async with self.admin_lock:
            return await self._create(name, num_partitions, configs, validate_only=validate_only)

    async def _create(
        self,
        name: str,
        num_partitions: int,
        configs: dict[str, str] | None,
        *,
        validate_only: bool,
    ) -> Topic:
        if (reason := topic_name_error(name)) is not None:
            raise BrokerError(ErrorCode.invalid_topic_exception, reason)
        if name in self.by_name:
            raise BrokerError(ErrorCode.topic_already_exists, f"topic {name!r} already exists")
        if num_partitions < 1:
            raise BrokerError(
                ErrorCode.invalid_partitions,
                f"number of partitions must be at least 1, got {num_partitions}",
            )
        topic = Topic(name, _new_topic_id(self.by_id), dict(configs or {}))
        if validate_only:
            return topic
        topic.partitions = await off_loop(self._open_logs, topic, 0, num_partitions)
        try:
            await self.metalog.append_durable([self._topic_record(topic)])
        except BaseException:
            _close_all(topic.partitions)
            raise
        self.by_name[name] = topic
        self.by_id[topic.topic_id] = topic
        log.info("created topic %s with %d partitions", name, num_partitions)
        return topic

    async def delete(self, name: str) -> Topic:
        """Delete a topic once its tombstone is durable; BrokerError if unknown."""
        async with self.admin_lock:
            return await self._delete(name)

    async def _delete(self, name: str) -> Topic:
        topic = self.by_name.get(name)
        if topic is None:
            raise BrokerError(ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
        await self.metalog.append_durable([{"type": "topic_deleted", "name": name}])
        del self.by_name[name]
        self.by_id.pop(topic.topic_id, None)
        for p in topic.partitions:
            p.close()
            shutil.rmtree(p.directory, ignore_errors=True)
        log.info("deleted topic %s", name)
        return topic

    async def add_partitions(self, name: str, total: int, *, validate_only: bool = False) -> None:
        """Grow a topic to `total` partitions; the new ones serve once the record is durable."""
        async with self.admin_lock:
            await self._add_partitions(name, total, validate_only=validate_only)

    async def _add_partitions(self, name: str, total: int, *, validate_only: bool) -> None:
        topic = self.by_name.get(name)
        if topic is None:
            raise BrokerError(ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
        current = len(topic.partitions)
        if total <= current:
            raise BrokerError(
                ErrorCode.invalid_partitions,
                f"topic {name!r} has {current} partitions; {total} would not add any",
            )
        if validate_only:
            return
        added = await off_loop(self._open_logs, topic, current, total)
        record = self._topic_record(topic)
        record["partitions"] = total
        try:
            await self.metalog.append_durable([record])
        except BaseException:
            _close_all(added)
            raise
        topic.partitions.extend(added)

    async def set_configs(self, name: str, configs: dict[str, str]) -> None:
        """Make `configs` the topic's overrides once their record is durable."""
        async with self.admin_lock:
            await self.set_configs_locked(name, configs)

    async def set_configs_locked(self, name: str, configs: dict[str, str]) -> None:
        """`set_configs` for a caller holding `admin_lock` (a read-modify-write of the configs
        must read them under the same lock, or two concurrent alters lose one's change)."""
        assert self.admin_lock.locked()
        topic = self.by_name[name]
        record = self._topic_record(topic)
        record["configs"] = dict(configs)
        await self.metalog.append_durable([record])
        topic.configs = dict(configs)
        self._apply_log_config(topic)

    def _apply_log_config(self, topic: Topic) -> None:
        new = self._log_config(topic)
        for p in topic.partitions:
            p.config = new

    async def set_broker_configs(self, node: int | None, configs: dict[str, str]) -> None:
        """Make `configs` the dynamic broker configs of one scope (None: cluster-wide), persist
        them, and give every partition log its new effective config at once."""
        async with self.admin_lock:
            await self.set_broker_configs_locked(node, configs)

    async def set_broker_configs_locked(self, node: int | None, configs: dict[str, str]) -> None:
        """`set_broker_configs` for a caller holding `admin_lock`."""
        assert node is None or node == self.settings.node_id
        assert self.admin_lock.locked()
        # persisted first: a failed append (OSError) leaves the old configs in force
        record = {"type": "broker_configs", "node": node, "configs": dict(configs)}
        await self.metalog.append_durable([record])
        self._apply_broker_configs(node, configs)

    def _apply_broker_configs(self, node: int | None, configs: dict[str, str]) -> None:
        if node is None:
            self.dynamic.cluster = dict(configs)
        else:
            self.dynamic.node = dict(configs)
        defaults = topic_default_values(self.settings, self.dynamic)
        for topic in self.by_name.values():
            new = log_config_for(topic.configs, defaults)
            for p in topic.partitions:
                p.config = new

    def record_log_start(self, name: str, partition: int, offset: int) -> None:
        """Persist a log start moved by retention, fsynced off the event loop.

        Called by the housekeeping on the loop. The record is appended at the end of this
        loop pass together with every other one of the pass (one write, one fsync in a worker
        thread, `MetadataLog.append_durable`), and nothing waits for it: retention moves the
        start only to the base offset of the first segment it keeps, which is what a start
        derives from the segment files anyway (`PartitionLog.open`), so a record lost to a
        power cut loses nothing. DeleteRecords, whose start may lie inside a segment, waits
        for its record (`persist_log_start`). Records keep the order they were made in, so a
        later DeleteRecords record still wins at replay. Without a running loop (tests, tools)
        the record is written and fsynced at once.
        """
        record = _log_start_record(name, partition, offset)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.metalog.append([record])
            return
        self._log_starts.append(record)
        if len(self._log_starts) == 1:
            loop.call_soon(self._write_log_starts)

    def _write_log_starts(self) -> None:
        records, self._log_starts = self._log_starts, []
        task = asyncio.ensure_future(self.metalog.append_durable(records))
        self._writes.add(task)
        task.add_done_callback(self._log_start_written)

    def _log_start_written(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # the files say the same (see record_log_start): the next start derives it
            log.error("could not persist log start offsets moved by retention: %s", exc)

    async def settle(self) -> None:
        """Wait for the background log-start writes (before the metadata log closes)."""
        if self._log_starts:
            self._write_log_starts()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def persist_log_start(self, name: str, partition: int, offset: int) -> None:
        """Persist a log start moved by DeleteRecords; returns once durable (fsync off loop)."""
        await self.metalog.append_durable([_log_start_record(name, partition, offset)])

    def close(self) -> None:
        for topic in self.by_name.values():
            for p in topic.partitions:
                p.close()


def _close_all(logs: list[PartitionLog]) -> None:
    """Close logs that were opened for a change that did not happen (their files stay)."""
    for plog in logs:
        plog.close()


def _new_topic_id(taken: dict[uuid.UUID, Topic]) -> uuid.UUID:
    while True:
        candidate = uuid.uuid4()
        if candidate.int != 0 and candidate not in taken:
            return candidate


def _log_start_record(name: str, partition: int, offset: int) -> dict[str, Any]:
    return {"type": "log_start", "name": name, "partition": partition, "offset": offset}
