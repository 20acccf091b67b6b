"""Where a delivered record went, read from librdkafka's delivery report.

librdkafka reports a delivered record's offset as None where the broker did not say: an
idempotent producer's retried batch that the broker recognized as already written (after a
leader change, say). The writers keep offsets in int fields and arrays, where None does not
fit: an `array.append(None)` inside a delivery callback lost the report and broke the flush
(seen in the failover test), so every writer reads offsets through `offset_of`.
"""

from __future__ import annotations

from typing import Any

UNKNOWN_OFFSET = -1
"""The offset of a record delivered where the broker did not say where."""


def offset_of(message: Any) -> int:
    """A delivered message's offset, UNKNOWN_OFFSET where librdkafka has none."""
    offset = message.offset()
    return UNKNOWN_OFFSET if offset is None else int(offset)
