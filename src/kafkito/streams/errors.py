"""The streams app's own error (here so that every streams module can raise it without
importing app.py; `kafkito.streams` and `kafkito.streams.app` export it too)."""

from __future__ import annotations

from kafkito.errors import KafkitoError

__all__ = ["StreamsError"]


class StreamsError(KafkitoError):
    """The streams app cannot go on (a topic is missing, a commit failed for good), or
    cannot be built (a `value=`/`key=` type it cannot decode to)."""
