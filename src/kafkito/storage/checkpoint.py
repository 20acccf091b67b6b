"""The recovery-point checkpoint: per data directory, how far each partition log is fsynced.

File `logs/recovery-point-offset-checkpoint`, text, Kafka's layout with the partition directory
name as the key (it already holds topic, partition and topic id):

    0                          format version
    2                          number of entries
    orders-0.<topic id> 1200   directory name, recovery point (offsets below it are fsynced)
    orders-1.<topic id> 0

It is written atomically (temporary file, fsync, rename, fsync of the directory) so that after a
crash it is the old one or the new one, never torn. Every offset below a partition's recovery
point was fsynced, and so were its index entries, before the file was written. A file that does
not parse is ignored with a warning: that only costs a longer recovery (everything is scanned).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from kafkito.storage.fs import FileSystem, off_loop
from kafkito.storage.log import PartitionLog
from kafkito.storage.segment import Segment

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "recovery-point-offset-checkpoint"
_VERSION = 0


def encode_checkpoint(points: dict[str, int]) -> bytes:
    lines = [str(_VERSION), str(len(points))]
    lines += [f"{name} {offset}" for name, offset in sorted(points.items())]
    return ("\n".join(lines) + "\n").encode()


def decode_checkpoint(data: bytes) -> dict[str, int]:
    """Parse a checkpoint; raises ValueError on anything unexpected."""
    lines = data.decode().splitlines()
    if len(lines) < 2 or int(lines[0]) != _VERSION:
        raise ValueError("bad header")
    count = int(lines[1])
    if count != len(lines) - 2:
        raise ValueError(f"{count} entries announced, {len(lines) - 2} present")
    points: dict[str, int] = {}
    for line in lines[2:]:
        name, offset = line.rsplit(" ", 1)
        if not name or "/" in name or int(offset) < 0:
            raise ValueError(f"bad entry {line!r}")
        points[name] = int(offset)
    return points


def read_checkpoint(fs: FileSystem, log_dir: str) -> dict[str, int]:
    """Recovery points by partition directory name; empty if there is no usable file."""
    path = os.path.join(log_dir, CHECKPOINT_NAME)
    if not fs.exists(path):
        return {}
    try:
        return decode_checkpoint(fs.read_file(path))
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning("ignoring unreadable %s (%s): every log will be scanned", path, exc)
        return {}


def write_checkpoint(fs: FileSystem, log_dir: str, points: dict[str, int]) -> None:
    fs.makedirs(log_dir)
    fs.write_file_atomic(os.path.join(log_dir, CHECKPOINT_NAME), encode_checkpoint(points))


async def checkpoint_logs(
    fs: FileSystem,
    log_dir: str,
    logs: Iterable[PartitionLog],
    previous: dict[str, int] | None = None,
) -> dict[str, int]:
    """Fsync pending index entries, then checkpoint every log's durable offset.

    Index entries are written on the loop, fsyncs and the file write run in a worker thread.
    A log whose indexes cannot be synced is left out (recovery then scans it whole). Nothing is
    written when the points equal `previous` (the last result): an idle broker does no I/O.
    Returns the points written.
    """
    points: dict[str, int] = {}
    to_sync: list[tuple[str, Segment]] = []
    for plog in logs:
        name = os.path.basename(plog.directory)
        try:
            point, segment = plog.prepare_checkpoint()
        except OSError as exc:
            log.error("%s: cannot write index entries: %s", name, exc)
            continue
        points[name] = point
        if segment.index_dirty:
            to_sync.append((name, segment))

    if points == previous and not to_sync:
        return points

    def work() -> None:
        for name, segment in to_sync:
            try:
                segment.sync_indexes()
            except OSError as exc:
                log.error("%s: index fsync failed, leaving it out of the checkpoint: %s", name, exc)
                points.pop(name, None)
        write_checkpoint(fs, log_dir, points)

    await off_loop(work)
    return points
