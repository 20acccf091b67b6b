"""A streams app in a child process, for kill -9 tests (tests/streams/test_streams_eos.py).

    python streams_child.py BOOTSTRAP TOPIC APP STATE_DIR [SLOW_S]

A tumbling 1-second window sum per key with 200 ms grace, exactly once, results to
TOPIC-out and late records to TOPIC-late. SLOW_S sleeps per record so that a test can
kill the process mid-window.
"""

from __future__ import annotations

import logging
import sys
import time

from kafkito.streams import StreamsApp, Tumbling


def main() -> None:
    bootstrap, topic, name, state_dir = sys.argv[1:5]
    slow_s = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(message)s")
    app = StreamsApp(
        name,
        brokers=bootstrap,
        state_dir=state_dir,
        exactly_once=True,
        consumer_settings={"session.timeout.ms": 6_000},
    )
    stream = app.stream(topic, timestamp=lambda v: v["ts"])
    if slow_s:
        stream = stream.peek(lambda _v: time.sleep(slow_s))
    windowed = stream.group_by().window(Tumbling(1_000), grace_ms=200)
    windowed.sum(lambda v: v["n"], name="sums").to(f"{topic}-out")
    windowed.late.to(f"{topic}-late")
    app.run()


if __name__ == "__main__":
    main()
