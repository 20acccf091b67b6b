"""A consume-flow application run as a child process by the tests (SIGTERM, kill -9, chaos).

Each processed id is appended (and flushed) to --out as "pid id unix-time" before the handler
returns, so the file is what the handler did even if the process is killed right after; each
rebalance the flow sees is written as "pid assigned|revoked|lost unix-time".

    python flow_app.py BOOTSTRAP TOPIC GROUP OUT [--sleep-ms N] [--fail-rate P] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time

from kafkito.flow import Flow, Reject, RetryLater, RetryPolicy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("out")
    parser.add_argument("--sleep-ms", type=float, default=0)
    parser.add_argument("--fail-rate", type=float, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grace-s", type=float, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rng = random.Random(args.seed + os.getpid())
    out = open(args.out, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def handle(value: dict[str, object]) -> None:
        if value.get("poison"):
            raise Reject("poison pill")
        if args.sleep_ms:
            time.sleep(args.sleep_ms / 1000)
        if rng.random() < args.fail_rate:
            raise RetryLater("random failure", delay_s=0.01)
        out.write(f"{os.getpid()} {value['id']} {time.time():.6f}\n")
        out.flush()

    def on_rebalance(kind: str, partitions: list[tuple[str, int]]) -> None:
        out.write(f"{os.getpid()} {kind} {time.time():.6f}\n")
        out.flush()

    flow = Flow(
        args.topic,
        handle,
        on_rebalance=on_rebalance,
        group_id=args.group,
        brokers=args.bootstrap,
        retry=RetryPolicy.delays([0.01] * 20),
        commit_interval_s=0.2,
        shutdown_grace_s=args.grace_s,
        settings={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    )
    print(json.dumps({"ready": os.getpid()}), flush=True)
    flow.run()


if __name__ == "__main__":
    main()
