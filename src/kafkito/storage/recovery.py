"""Opening a partition's segments after a clean or an unclean stop (RELIABILITY B3-B7).

The broker writes `.kafkito_cleanshutdown` only after every log and index is fsynced, and
deletes it as it starts. With the marker present every segment is *loaded* (indexes read, the
log not scanned). Without it, the recovery-point checkpoint says how far each log was fsynced:

    segments wholly below the recovery point     loaded from their indexes (fsynced at roll)
    the segment holding the recovery point,      scanned with CRCs from the last index entry
    and every later one                          below the point, indexes rebuilt

What a scan finds decides the outcome, as Kafka's LogLoader and redis' aof.c do:

* damage at or above the recovery point is a torn write: the segment is cut at the last good
  batch, later segments are deleted, and the cut is logged with its size and reason;
* damage below the recovery point, or a log that ends before it, is not a torn write: those
  bytes were fsynced. We refuse to start with CorruptLog, naming the file, the byte position
  and what to do, rather than silently drop acknowledged data.

Leftovers of interrupted operations are resolved the same way every time (B6): `*.tmp` (an
atomic write that did not reach its rename; the target is intact) and `*.deleted` (a segment
retention had started to delete) are removed, and so are index files without their `.log`.

Leftovers of an interrupted cleaning pass (storage.cleaner) are resolved as Kafka's LogLoader
does, before anything else: `*.log.cleaned` files (a cleaned segment not yet complete) are
deleted, and so is any `*.log.swap` at or above the lowest of them (Kafka's rule: such a swap
belongs to the same unfinished pass). Every other `*.log.swap` was fsynced whole before it got
that name, so the swap is completed: the old segments whose base offsets fall inside the swap's
offset range are deleted with their indexes, then the swap is renamed to `.log` (its indexes are
rebuilt when it is loaded). A swap never ends before the segment after its range begins: the
cleaner keeps the last batch of every cleaned group (see storage.cleaner), so the range read
from the file is the range it replaced.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from kafkito.errors import CorruptLog
from kafkito.protocol.records import batch_crc, iter_batch_headers
from kafkito.storage.fs import FileSystem
from kafkito.storage.segment import Segment, corrupt_log_error, index_paths

log = logging.getLogger(__name__)

CLEAN_SHUTDOWN_MARKER = ".kafkito_cleanshutdown"


@dataclass(slots=True)
class RecoveryPlan:
    """How the logs of one data directory are to be opened at start-up."""

    clean: bool
    points: dict[str, int] = field(default_factory=dict)
    """Recovery point by partition directory name (from the checkpoint)."""

    def point_for(self, directory: str) -> int | None:
        """None after a clean stop (trust everything), else the fsynced offset (0 if unknown)."""
        if self.clean:
            return None
        return self.points.get(os.path.basename(directory.rstrip("/")), 0)


def _leftovers(names: list[str]) -> list[str]:
    """The names among a directory's `names` that remove_leftovers deletes.

    Plain suffix tests, not os.path.splitext: a start runs this for every partition.
    """
    logs = {n[:-4] for n in names if n.endswith(".log")}
    found = []
    for name in names:
        if name.endswith((".tmp", ".deleted")):
            found.append(name)
        elif name.endswith(".index"):
            if name[:-6] not in logs:
                found.append(name)
        elif name.endswith(".timeindex") and name[:-10] not in logs:
            found.append(name)
    return sorted(found)


def remove_leftovers(fs: FileSystem, directory: str) -> None:
    """Delete what interrupted writes, rolls and deletions left behind in `directory`."""
    for name in _leftovers(fs.listdir(directory)):
        log.info("removing leftover %s", os.path.join(directory, name))
        fs.remove(os.path.join(directory, name))


CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"


def _swap_end(fs: FileSystem, path: str) -> int:
    """The offset after the last batch of a `.swap` file; CorruptLog if it is damaged."""
    fd = fs.open(path, create=False)
    try:
        size = fs.size(fd)
        data = fs.pread(fd, size, 0)
    finally:
        fs.close(fd)
    good, end = 0, -1
    for pos, header in iter_batch_headers(data):
        if header.magic != 2 or batch_crc(data, pos, header.size) != header.crc:
            break
        end, good = header.next_offset, pos + header.size
    if end < 0 or good != size:
        raise CorruptLog(
            f"{path}: a cleaned segment that was fsynced before it was renamed is damaged at "
            f"byte position {good}; restore the partition directory from a backup"
        )
    return end


def complete_swaps(fs: FileSystem, directory: str, label: str) -> None:
    """Finish or discard what an interrupted cleaning pass left (see the module docstring)."""
    names = fs.listdir(directory)
    cleaned = [n for n in names if n.endswith(CLEANED_SUFFIX)]
    bases = [int(n.split(".")[0]) for n in cleaned if n.split(".")[0].isdigit()]
    min_cleaned = min(bases, default=None)
    for name in cleaned:
        log.info("%s: removing unfinished cleaned segment %s", label, name)
        fs.remove(os.path.join(directory, name))
    swaps = sorted(n for n in names if n.endswith(".log" + SWAP_SUFFIX))
    changed = bool(cleaned)
    for name in swaps:
        path = os.path.join(directory, name)
        base = int(name.split(".")[0])
        if min_cleaned is not None and base >= min_cleaned:
            log.info("%s: removing swap %s of an unfinished cleaning pass", label, name)
            fs.remove(path)
            changed = True
            continue
        end = _swap_end(fs, path)
        for old in segment_bases(fs, directory):
            if base <= old < end:
                _delete_segment_files(fs, os.path.join(directory, f"{old:020d}.log"))
        fs.rename(path, os.path.join(directory, f"{base:020d}.log"))
        log.info("%s: completed the swap of %s (offsets %d..%d)", label, name, base, end)
        changed = True
    if changed:
        fs.fsync_dir(directory)


def segment_bases(fs: FileSystem, directory: str) -> list[int]:
    return _bases(fs.listdir(directory))


def _bases(names: list[str]) -> list[int]:
    bases = []
    for name in names:
        if name.endswith(".log") and name[:-4].isdigit():
            bases.append(int(name[:-4]))
    return sorted(bases)


def _delete_segment_files(fs: FileSystem, log_path: str) -> None:
    for path in (log_path, *index_paths(log_path)):
        if fs.exists(path):
            fs.remove(path)


def open_segments(
    fs: FileSystem,
    directory: str,
    label: str,
    recovery_point: int | None,
    now_ms: int,
) -> list[Segment]:
    """Open every segment in `directory` (see the module docstring); may be empty.

    `recovery_point` None means a clean stop. `label` names the partition in logs.
    Raises CorruptLog for damage below the recovery point.
    """
    # One listing when there is nothing to resolve (the usual start): at 10,000 partitions
    # each listing of a partition directory costs ~0.1 ms, and there were three.
    names = fs.listdir(directory)
    if any(n.endswith((CLEANED_SUFFIX, ".log" + SWAP_SUFFIX)) for n in names):
        complete_swaps(fs, directory, label)
        names = fs.listdir(directory)
    if _leftovers(names):
        remove_leftovers(fs, directory)
        names = fs.listdir(directory)
    bases = _bases(names)
    segments: list[Segment] = []
    try:
        for i, base in enumerate(bases):
            path = os.path.join(directory, f"{base:020d}.log")
            next_base = bases[i + 1] if i + 1 < len(bases) else None
            if recovery_point is None or (next_base is not None and next_base <= recovery_point):
                segment = Segment.load(fs, path, base, now_ms)
                segments.append(segment)
                if next_base is not None and segment.next_offset != next_base:
                    raise CorruptLog(
                        f"{path}: ends at offset {segment.next_offset} but the next segment "
                        f"starts at {next_base}; restore the partition directory from a backup"
                    )
                continue
            assert recovery_point is not None
            segment, result = Segment.recover(fs, path, base, now_ms, from_offset=recovery_point)
            segments.append(segment)
            if result.batches:
                # Recovered from the page cache, maybe never fsynced: make it durable before
                # it counts as durable (it becomes readable below the high watermark).
                segment.flush()
            cut = result.torn_bytes > 0
            if not cut and next_base is not None and segment.next_offset != next_base:
                cut, result.reason = True, f"next segment starts at {next_base}"
            if not cut:
                continue
            if result.next_offset < recovery_point:
                raise corrupt_log_error(path, result)
            if result.torn_bytes:
                log.warning(
                    "%s: cutting %d bytes of torn tail from %s at byte position %d, offset %d (%s)",
                    label,
                    result.torn_bytes,
                    path,
                    result.valid_bytes,
                    result.next_offset,
                    result.reason,
                )
                segment.truncate_to(result.valid_bytes)
                segment.flush()
            for later in bases[i + 1 :]:
                later_path = os.path.join(directory, f"{later:020d}.log")
                log.warning("%s: deleting %s, which follows a torn tail", label, later_path)
                _delete_segment_files(fs, later_path)
            fs.fsync_dir(directory)
            break
        end = segments[-1].next_offset if segments else None
        if recovery_point and (end is None or end < recovery_point):
            raise CorruptLog(
                f"{directory}: the log ends at offset {end if end is not None else 'none'} but "
                f"offsets up to {recovery_point} were fsynced before the crash; files are "
                "missing or were truncated: restore the partition directory from a backup"
            )
    except BaseException:
        for segment in segments:
            segment.close()
        raise
    return segments
