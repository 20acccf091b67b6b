"""DescribeLogDirs (key 35), v1-4: the log directory, its partitions' sizes, and its disk.

v1: as v0 (gone from Kafka 4, as here). v2: flexible. v3: a top-level error_code. v4:
total_bytes and usable_bytes of the directory's file system (KIP-827). kafka-python's
`describe_log_dirs` and `kafka-log-dirs.sh --describe` send it; monitors read partition sizes
from it.

kafkito has one log directory (the broker's data directory, as an absolute path). The answer
follows ReplicaManager.describeLogDirs:

* null topics means every partition; otherwise the partitions asked for that exist (others
  are left out silently, with no error);
* a topic none of whose partitions was asked for is left out, as Kafka 4.1 does.
* partition_size is the bytes of the partition's segments; offset_lag is 0 (Kafka's is
  high watermark minus log end offset for a leader, never below 0; no future replicas here).
"""

from __future__ import annotations

import os
from typing import Any

from kafkito.broker.auth.checks import DESCRIBE, cluster_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    DescribeLogDirsPartition,
    DescribeLogDirsResponse,
    DescribeLogDirsTopic,
)


def _disk_bytes(path: str) -> tuple[int, int]:
    """(total, usable) bytes of the file system holding `path`, as Java's FileStore reports
    getTotalSpace and getUsableSpace (blocks available to an unprivileged user); -1 each if
    the directory cannot be examined (Kafka's "unknown")."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return -1, -1
    return stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize


@handler(35, versions=range(1, 5))
async def describe_log_dirs(request: Any, ctx: RequestContext) -> DescribeLogDirsResponse:
    registry = ctx.broker.topics
    if denied := cluster_denied(ctx, DESCRIBE):
        return {"throttle_time": 0, "error_code": denied, "results": []}
    wanted: set[tuple[str, int]] | None = None
    if request.topics is not None:
        wanted = {(t.topic, int(p)) for t in request.topics for p in t.partitions}
    topics: list[DescribeLogDirsTopic] = []
    for name, topic in registry.by_name.items():
        partitions: list[DescribeLogDirsPartition] = [
            {
                "partition_index": index,
                "partition_size": plog.size_bytes,
                "offset_lag": 0,
                "is_future_key": False,
            }
            for index, plog in enumerate(topic.partitions)
            if wanted is None or (name, index) in wanted
        ]
        if partitions:
            topics.append({"name": name, "partitions": partitions})
    total, usable = _disk_bytes(registry.log_dir)
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
        "results": [
            {
                "error_code": ErrorCode.none,
                "log_dir": registry.log_dir,  # under settings.data_path, already absolute
                "topics": topics,
                "total_bytes": total,
                "usable_bytes": usable,
            }
        ],
    }
