"""A handler's outcomes besides returning: retry it later, or reject it for good.

    def handle(order: Order) -> None:
        if not inventory.reachable():
            raise RetryLater("inventory down", delay_s=30)   # transient: back off, try again
        if order.quantity <= 0:
            raise Reject("quantity must be positive")         # permanent: dead-letter now

A batch handler that fails for some records only raises `BatchFailed({index: exception})`; the
others count as done, and each failed record goes through the retry path on its own.

Any other exception is transient if the retry policy lists it in `retry_on` (by default every
`Exception`), permanent otherwise. Decoding and validation failures are always permanent.

A handler that produces records returns them as `Out` (one, or a list): the flow writes them
when the record's offset is committed, in the same transaction with `exactly_once=True`.

    def enrich(order: Order) -> Out:
        return Out("orders.enriched", order.model_dump_json(), key=order.customer)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kafkito.errors import KafkitoError

__all__ = ["BatchFailed", "Out", "Reject", "RetryLater"]


@dataclass(frozen=True, slots=True)
class Out:
    """A record the handler produces: written when the handled record's offset is committed
    (in the same transaction with `exactly_once=True`). str values and keys are UTF-8."""

    topic: str
    value: bytes | str | None
    key: bytes | str | None = None
    headers: Mapping[str, bytes | str | None] | Sequence[tuple[str, bytes | str | None]] | None = (
        None
    )


class RetryLater(KafkitoError):
    """Transient failure: retry this record after a delay (the policy's, or `delay_s`)."""

    def __init__(self, reason: str = "retry requested", *, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


class Reject(KafkitoError):
    """Permanent failure: send this record to the dead-letter topic without retrying."""


class BatchFailed(KafkitoError):
    """Some records of a batch failed: `failures` maps their index in the batch to the error."""

    def __init__(self, failures: Mapping[int, BaseException]) -> None:
        super().__init__(f"{len(failures)} record(s) of the batch failed")
        self.failures = dict(failures)
