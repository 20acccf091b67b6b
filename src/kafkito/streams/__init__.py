"""kafkito.streams: stream processing in Python on any Kafka, exactly once if asked.

    from kafkito.streams import StreamsApp, Tumbling

    app = StreamsApp("page-counts", brokers="localhost:9092", exactly_once=True)
    views = app.stream("page-views", timestamp=lambda v: v["ts"])
    counts = views.group_by(lambda v: v["page"]).window(Tumbling(10_000), grace_ms=2_000)
    counts.count().to("page-counts")
    counts.late.to("page-views-late")
    app.run()

docs/streams.md is the guide; app.py explains the loop and commits, state.py the stores and
their changelogs, windows.py the window rules.
"""

from kafkito.streams.app import StreamsApp, StreamsError
from kafkito.streams.joins import Table
from kafkito.streams.records import Record, WindowResult
from kafkito.streams.restore import RestoreError, RestoreProgress
from kafkito.streams.state import PartitionStore, StateError
from kafkito.streams.topology import Aggregator, Grouped, KeyState, Stream
from kafkito.streams.windows import Hopping, Session, Sliding, Tumbling, Windowed, WindowSpec

__all__ = [
    "Aggregator",
    "Grouped",
    "Hopping",
    "KeyState",
    "PartitionStore",
    "Record",
    "RestoreError",
    "RestoreProgress",
    "Session",
    "Sliding",
    "StateError",
    "Stream",
    "StreamsApp",
    "StreamsError",
    "Table",
    "Tumbling",
    "WindowResult",
    "WindowSpec",
    "Windowed",
]
