"""The quixstreams side of bench/bench_streams.py, run in quixstreams' own virtual environment
(it pins an older confluent-kafka than kafkito): the same windowed count as kafkito.streams.

    QUIX_VENV/bin/python bench/quixstreams_windowed.py BOOTSTRAP TOPIC GROUP STATE_DIR

A 10-second tumbling window count per key over the JSON events' "ts", final results (on
close) to TOPIC-quix-out; the parent measures progress by the group's committed offsets, as
it does for kafkito.streams, and stops this process when it is done. Standalone on purpose:
it cannot import kafkito.
"""

from __future__ import annotations

import sys

from quixstreams import Application


def main() -> None:
    bootstrap, topic, group, state_dir = sys.argv[1:5]
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        commit_interval=1.0,  # as kafkito.streams at-least-once
        loglevel="WARNING",
    )
    source = app.topic(
        topic,
        value_deserializer="json",
        timestamp_extractor=lambda value, _headers, _ts, _type: value["ts"],
    )
    out = app.topic(f"{topic}-quix-out", value_serializer="json")
    sdf = app.dataframe(source)
    sdf = sdf.tumbling_window(duration_ms=10_000).count().final()
    sdf.to_topic(out)
    app.run()


if __name__ == "__main__":
    main()
