"""The asyncio Admin (`kafkito.aio.Admin`): the sync Admin's calls, awaited.

Every method has the sync one's name, arguments, results and errors; each runs on a worker
thread (`asyncio.to_thread`) because librdkafka's admin calls block until the brokers answer,
and the loop must not. Construction does no I/O: the connect check runs in `connect()`, which
`async with` and the first call do.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from kafkito.client.admin import (
    Admin as SyncAdmin,
)
from kafkito.client.admin import (
    ClusterInfo,
    ConfigValue,
    GroupDescription,
    GroupListing,
    OffsetAt,
    PartitionLag,
    TopicDescription,
)
from kafkito.client.config import _Common
from kafkito.client.txn_admin import (
    ProducerState,
    TransactionDescription,
    TransactionListing,
)

__all__ = ["Admin"]

T = TypeVar("T")


class Admin:
    """Administers a Kafka cluster from asyncio code; see `kafkito.client.Admin`."""

    def __init__(
        self,
        config: _Common | Mapping[str, Any] | None = None,
        *,
        brokers: Sequence[str] | str | None = None,
        settings: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self._make = functools.partial(
            SyncAdmin, config, brokers=brokers, settings=settings, timeout_s=timeout_s
        )
        self._sync: SyncAdmin | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        """Build the client and check that the brokers answer (with client.retry delays)."""
        async with self._lock:
            if self._sync is None:
                self._sync = await asyncio.to_thread(self._make)

    async def _run(self, call: Callable[[SyncAdmin], T]) -> T:
        if self._sync is None:
            await self.connect()
        admin = self._sync
        assert admin is not None
        return await asyncio.to_thread(call, admin)

    @property
    def bootstrap(self) -> str | None:
        """The brokers, once connected."""
        return None if self._sync is None else self._sync.bootstrap

    async def describe_cluster(self) -> ClusterInfo:
        return await self._run(lambda a: a.describe_cluster())

    async def list_topics(self, *, internal: bool = False) -> list[TopicDescription]:
        return await self._run(lambda a: a.list_topics(internal=internal))

    async def describe_topic(self, topic: str) -> TopicDescription:
        return await self._run(lambda a: a.describe_topic(topic))

    async def partitions(self, topic: str) -> list[int]:
        return await self._run(lambda a: a.partitions(topic))

    async def create_topic(
        self,
        topic: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        configs: Mapping[str, str] | None = None,
        *,
        if_not_exists: bool = False,
    ) -> bool:
        return await self._run(
            lambda a: a.create_topic(
                topic, partitions, replication_factor, configs, if_not_exists=if_not_exists
            )
        )

    async def create_topics(
        self,
        topics: Iterable[str],
        partitions: int = 1,
        replication_factor: int | None = None,
        configs: Mapping[str, str] | None = None,
        *,
        if_not_exists: bool = False,
    ) -> list[str]:
        names = list(topics)
        return await self._run(
            lambda a: a.create_topics(
                names, partitions, replication_factor, configs, if_not_exists=if_not_exists
            )
        )

    async def delete_topics(self, *topics: str) -> None:
        await self._run(lambda a: a.delete_topics(*topics))

    async def create_partitions(self, topic: str, total: int) -> None:
        await self._run(lambda a: a.create_partitions(topic, total))

    async def describe_configs(self, topic: str) -> dict[str, ConfigValue]:
        return await self._run(lambda a: a.describe_configs(topic))

    async def alter_configs(
        self, topic: str, set: Mapping[str, str] | None = None, delete: Iterable[str] = ()
    ) -> None:
        deleted = list(delete)
        await self._run(lambda a: a.alter_configs(topic, set, deleted))

    async def list_offsets(
        self, topic: str, at: OffsetAt = "latest", partitions: Iterable[int] | None = None
    ) -> dict[int, int | None]:
        wanted = None if partitions is None else list(partitions)
        return await self._run(lambda a: a.list_offsets(topic, at, wanted))

    async def list_offsets_many(
        self, partitions: Iterable[tuple[str, int]], at: OffsetAt = "latest"
    ) -> dict[tuple[str, int], int | None]:
        wanted = list(partitions)
        return await self._run(lambda a: a.list_offsets_many(wanted, at))

    async def watermarks(
        self, partitions: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[int, int]]:
        wanted = list(partitions)
        return await self._run(lambda a: a.watermarks(wanted))

    async def delete_records(self, topic: str, before: Mapping[int, int]) -> dict[int, int]:
        return await self._run(lambda a: a.delete_records(topic, before))

    async def list_groups(self) -> list[GroupListing]:
        return await self._run(lambda a: a.list_groups())

    async def describe_group(self, group: str) -> GroupDescription:
        return await self._run(lambda a: a.describe_group(group))

    async def group_offsets(self, group: str) -> dict[tuple[str, int], int]:
        return await self._run(lambda a: a.group_offsets(group))

    async def group_lag(self, group: str) -> list[PartitionLag]:
        return await self._run(lambda a: a.group_lag(group))

    async def alter_group_offsets(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        await self._run(lambda a: a.alter_group_offsets(group, offsets))

    async def delete_groups(self, *groups: str) -> None:
        await self._run(lambda a: a.delete_groups(*groups))

    async def list_transactions(
        self,
        *,
        states: Iterable[str] = (),
        producer_ids: Iterable[int] = (),
        min_duration_ms: int | None = None,
    ) -> list[TransactionListing]:
        wanted_states, wanted_pids = list(states), list(producer_ids)
        return await self._run(
            lambda a: a.list_transactions(
                states=wanted_states, producer_ids=wanted_pids, min_duration_ms=min_duration_ms
            )
        )

    async def describe_transactions(self, *transactional_ids: str) -> list[TransactionDescription]:
        return await self._run(lambda a: a.describe_transactions(*transactional_ids))

    async def describe_producers(
        self, topic: str, partitions: Iterable[int] | None = None
    ) -> list[ProducerState]:
        wanted = None if partitions is None else list(partitions)
        return await self._run(lambda a: a.describe_producers(topic, wanted))

    async def close(self) -> None:
        """Release the client. Idempotent."""
        if self._sync is not None:
            self._sync.close()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Admin(bootstrap={self.bootstrap!r})"
