"""The demo's stop waits for what its producers confirm after the stop.

A clean-clone CI run saw the Pub/Sub demo report `drained` while its lake lacked two valid
events: `stop()` took the set of produced events the moment it set the stop flag, while the
producers were still in their last tick, whose writes were confirmed (and recorded as
produced) after that. The drain then waited for a set without them.
"""

from __future__ import annotations

import time
from pathlib import Path

from kafkito.demo.runner import PRODUCERS_THREAD, Demo, DemoOptions, DemoReport


def test_an_event_confirmed_after_the_stop_is_waited_for(tmp_path: Path) -> None:
    demo = Demo(DemoOptions(drain_timeout_s=1.0))
    report = demo.report = DemoReport("test", "", tmp_path)
    report.produced[1] = "page_views"
    demo.analytics.counted_ids.add(1)
    report.lake_ids.add(1)

    def last_tick() -> None:  # the write in flight when the stop comes is confirmed later
        demo._stop.wait()
        time.sleep(0.2)
        report.produced[2] = "clicks"

    demo._spawn(last_tick, PRODUCERS_THREAD)
    stopped = demo.stop()
    assert stopped.produced.keys() == {1, 2}
    assert not stopped.drained, "event 2 was never counted nor stored: not drained"

    demo = Demo(DemoOptions(drain_timeout_s=5.0))  # and once it is handled, drained it is
    report = demo.report = DemoReport("test", "", tmp_path)

    def last_tick_handled() -> None:
        demo._stop.wait()
        time.sleep(0.2)
        report.produced[3] = "clicks"
        demo.analytics.counted_ids.add(3)
        report.lake_ids.add(3)

    demo._spawn(last_tick_handled, PRODUCERS_THREAD)
    assert demo.stop().drained
