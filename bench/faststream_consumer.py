"""FastStream's side of bench_flow.py: read a topic through a FastStream subscriber, print msgs/s.

    <faststream venv>/bin/python bench/faststream_consumer.py BACKEND BOOTSTRAP TOPIC COUNT
        HANDLER WORKERS

Runs in FastStream's own virtual environment (never the project's: `bench_flow.py
--setup-faststream` makes it), BACKEND "confluent" (faststream.confluent, on confluent-kafka)
or "aiokafka" (faststream.kafka). HANDLER "noop" or "sleep10" (an async handler that awaits
10 ms); the body is decoded the FastStream way (JSON, its default for a JSON body).
WORKERS: 1 is FastStream's default (one record at a time per subscriber); more is its
`max_workers`, which FastStream allows only with its default AckPolicy.ACK_FIRST.

Both run on FastStream's defaults: AckPolicy.ACK_FIRST, i.e. the client's auto-commit
(enable.auto.commit every 5 s of what was *consumed*, before the handler ran): a crash loses
the records in flight (at most once), and with several workers the records of a key run in
parallel, in no set order. The flow commits only what was handled and keeps each key's order.
Prints one line: the msgs/s from the first record handled to the last.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid


async def main(backend: str, bootstrap: str, topic: str, count: int, handler: str, workers: int):  # type: ignore[no-untyped-def]
    if backend == "confluent":
        from faststream.confluent import KafkaBroker
    else:
        from faststream.kafka import KafkaBroker

    broker = KafkaBroker(bootstrap, logger=None)
    seen = [0]
    first: list[float] = []
    finished = asyncio.Event()
    options = {"max_workers": workers} if workers > 1 else {}

    @broker.subscriber(  # type: ignore[misc]
        topic, group_id=f"fs-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest", **options
    )
    async def handle(body):  # type: ignore[no-untyped-def]  # untyped: FastStream casts nothing
        if not first:
            first.append(time.perf_counter())
        if handler == "sleep10":
            await asyncio.sleep(0.010)
        seen[0] += 1
        if seen[0] >= count:
            finished.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(finished.wait(), 600)
        elapsed = time.perf_counter() - first[0]
    print(f"{count / elapsed:.1f}")


if __name__ == "__main__":
    backend, bootstrap, topic, count, handler, workers = sys.argv[1:7]
    asyncio.run(main(backend, bootstrap, topic, int(count), handler, int(workers)))
