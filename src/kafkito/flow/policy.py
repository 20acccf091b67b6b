"""Retry policies as data: how often, how long between attempts, which failures, and where.

Two shapes, both loadable from the same YAML/env/dict config as the rest of kafkito:

* a list of delays, as core-go's `retry: {1: 5, 2: 10, 3: 20}` (seconds; attempt n waits the
  n-th delay, and the list's length is the number of retries);
* exponential backoff: `initial_s * multiplier**(n-1)` capped at `max_s`, with full jitter from
  an injected `random.Random`, and `max_attempts`.

`mode` is `blocking` (retry in place: the record's key waits, other keys go on, polling never
stops) or `topics` (non-blocking: the record moves to `<topic>.retry.<n>` and is consumed again
when due; ordering per key is lost for retried records, as in Spring's retry topics).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kafkito.errors import KafkitoError

RetryMode = Literal["blocking", "topics"]


class PolicyError(KafkitoError):
    """A retry policy that cannot work, with the key that is wrong."""


def _seconds(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise PolicyError(f"{key}: expected seconds, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        units = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
        for suffix, scale in units:
            if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
                seconds = float(text[: -len(suffix)]) * scale
                break
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise PolicyError(f"{key}: {value!r} is not a duration") from None
    else:
        raise PolicyError(f"{key}: expected seconds, got {type(value).__name__}")
    if seconds < 0:
        raise PolicyError(f"{key}: a delay cannot be negative")
    return seconds


@dataclass(frozen=True)
class RetryPolicy:
    """How a transient failure is retried; frozen, build with the classmethods or from_config."""

    delays_s: tuple[float, ...] = ()
    """Explicit delays, one per retry (core-go style). Empty: use the exponential fields."""
    initial_s: float = 1.0
    multiplier: float = 2.0
    max_s: float = 60.0
    max_attempts: int = 4
    """Attempts in all, the first one included (ignored when `delays_s` is given)."""
    jitter: bool = True
    mode: RetryMode = "blocking"
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    """Exceptions (besides RetryLater) that are transient; anything else is permanent."""
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("blocking", "topics"):
            raise PolicyError(f"mode: {self.mode!r} is not 'blocking' or 'topics'")
        if not self.delays_s and self.max_attempts < 1:
            raise PolicyError("max_attempts: must be at least 1")
        if self.multiplier < 1:
            raise PolicyError("multiplier: must be at least 1")
        if self.initial_s < 0 or self.max_s < 0:
            raise PolicyError("initial_s / max_s: cannot be negative")

    @classmethod
    def delays(cls, delays_s: Sequence[float], **kw: Any) -> RetryPolicy:
        """Retry once per delay in `delays_s` (seconds), then give up."""
        return cls(delays_s=tuple(float(d) for d in delays_s), **kw)

    @classmethod
    def exponential(
        cls,
        *,
        initial_s: float = 1.0,
        multiplier: float = 2.0,
        max_s: float = 60.0,
        max_attempts: int = 4,
        **kw: Any,
    ) -> RetryPolicy:
        return cls(
            initial_s=initial_s, multiplier=multiplier, max_s=max_s, max_attempts=max_attempts, **kw
        )

    @classmethod
    def none(cls) -> RetryPolicy:
        """No retries: the first transient failure goes to the dead-letter topic."""
        return cls(max_attempts=1)

    @classmethod
    def from_config(cls, data: Mapping[str | int, Any] | Sequence[Any]) -> RetryPolicy:
        """From config data: core-go's `{1: 5, 2: 10}` map, a list of delays, or named fields.

        Named fields: delays, initial, multiplier, max, max_attempts, jitter, mode.
        """
        if isinstance(data, Sequence) and not isinstance(data, str | bytes):
            return cls.delays([_seconds(v, f"retry[{i}]") for i, v in enumerate(data)])
        if not isinstance(data, Mapping):
            raise PolicyError(f"retry: expected a mapping or a list, got {type(data).__name__}")
        if data and all(str(k).isdigit() for k in data):
            ordered = sorted(data.items(), key=lambda kv: int(kv[0]))
            numbers = [int(k) for k, _ in ordered]
            if numbers != list(range(1, len(numbers) + 1)):
                raise PolicyError(f"retry: keys must be 1..n without gaps, got {numbers}")
            return cls.delays([_seconds(v, f"retry.{k}") for k, v in ordered])
        known = {"delays", "initial", "multiplier", "max", "max_attempts", "jitter", "mode"}
        for key in data:
            if key not in known:
                raise PolicyError(f"retry.{key}: unknown key (known: {', '.join(sorted(known))})")
        kw: dict[str, Any] = {}
        if "delays" in data:
            kw["delays_s"] = tuple(
                _seconds(v, f"retry.delays[{i}]") for i, v in enumerate(data["delays"])
            )
        if "initial" in data:
            kw["initial_s"] = _seconds(data["initial"], "retry.initial")
        if "max" in data:
            kw["max_s"] = _seconds(data["max"], "retry.max")
        if "multiplier" in data:
            kw["multiplier"] = float(data["multiplier"])
        if "max_attempts" in data:
            kw["max_attempts"] = int(data["max_attempts"])
        if "jitter" in data:
            kw["jitter"] = bool(data["jitter"])
        if "mode" in data:
            kw["mode"] = data["mode"]
        return cls(**kw)

    @property
    def attempts(self) -> int:
        """Attempts in all, the first one included."""
        return len(self.delays_s) + 1 if self.delays_s else self.max_attempts

    def is_transient(self, exc: BaseException) -> bool:
        from kafkito.flow.outcomes import Reject, RetryLater

        if isinstance(exc, Reject):
            return False
        return isinstance(exc, (RetryLater, self.retry_on))

    def delay_s(self, attempt: int) -> float:
        """The wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed."""
        if self.delays_s:
            return self.delays_s[min(attempt, len(self.delays_s)) - 1]
        ceiling = min(self.max_s, self.initial_s * self.multiplier ** (attempt - 1))
        return self.rng.uniform(0, ceiling) if self.jitter else ceiling
