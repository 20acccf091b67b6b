"""An exactly-once flow application run as a child process by the kill -9 tests.

    python eos_app.py BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP [--sleep-ms N]

One output per input ("<partition>:<offset>:<id>", eoskit.transform), written with the offsets
in one transaction per commit. Its transactional.id is the flow's default (group, host, name),
the same at every start: a restart fences the killed instance and aborts what it left open.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from typing import Any

from eoskit import transform

from kafkito.flow import Flow, Out, Record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("in_topic")
    parser.add_argument("out_topic")
    parser.add_argument("group")
    parser.add_argument("--sleep-ms", type=float, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    handle = transform(args.out_topic)

    def slow(record: Record[dict[str, Any]]) -> Out:
        if args.sleep_ms:
            time.sleep(args.sleep_ms / 1000)
        return handle(record)

    flow = Flow(
        args.in_topic,
        slow,
        group_id=args.group,
        brokers=args.bootstrap,
        exactly_once=True,
        commit_interval_s=0.2,
        name="eos-app",
        concurrency=2,  # slow enough that each kill lands mid-stream
        settings={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    )
    print(json.dumps({"ready": os.getpid()}), flush=True)
    flow.run()


if __name__ == "__main__":
    main()
