"""Helpers for the Pub/Sub tests: admin calls through the google client, a bounded reader run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from google.cloud import pubsub_v1

from kafkito.pubsub import Reader


def make_topic(project: str, topic: str, *, subscription: str | None = None, **sub: Any) -> None:
    """Create a topic (and a subscription on it, with the given fields) with google's client."""
    publisher = pubsub_v1.PublisherClient()
    topic_path = f"projects/{project}/topics/{topic}"
    publisher.create_topic(name=topic_path)
    publisher.stop()
    if subscription is not None:
        with pubsub_v1.SubscriberClient() as subscriber:
            subscriber.create_subscription(
                request={
                    "name": f"projects/{project}/subscriptions/{subscription}",
                    "topic": topic_path,
                    **sub,
                }
            )


def make_topic_subscription(project: str, topic: str, subscription: str, **sub: Any) -> None:
    """Create one more subscription on an existing topic."""
    with pubsub_v1.SubscriberClient() as subscriber:
        subscriber.create_subscription(
            request={
                "name": f"projects/{project}/subscriptions/{subscription}",
                "topic": f"projects/{project}/topics/{topic}",
                **sub,
            }
        )


def read_for(
    reader: Reader,
    seconds: float,
    handler: Callable[[bytes, dict[str, str]], object] | None = None,
) -> list[bytes]:
    """Run reader.read for `seconds` (stopped by a timer), returning the values handled."""
    got: list[bytes] = []

    def handle(value: bytes, headers: dict[str, str]) -> None:
        if handler is not None:
            handler(value, headers)
        got.append(value)

    timer = threading.Timer(seconds, reader.stop)
    timer.start()
    try:
        reader.read(handle, handle_signals=False)
    finally:
        timer.cancel()
    return got


def read_until(
    reader: Reader,
    count: int,
    *,
    timeout_s: float = 30.0,
    handler: Callable[[bytes, dict[str, str]], object] | None = None,
) -> list[tuple[bytes, dict[str, str]]]:
    """Read until `count` messages were handled, or fail after `timeout_s` (a hang guard)."""
    got: list[tuple[bytes, dict[str, str]]] = []
    deadline = time.monotonic() + timeout_s

    def handle(value: bytes, headers: dict[str, str]) -> None:
        if handler is not None:
            handler(value, headers)
        got.append((value, headers))

    timer = threading.Timer(timeout_s, reader.stop)
    timer.start()
    try:
        reader.read(handle, limit=count, handle_signals=False)
    finally:
        timer.cancel()
    assert len(got) == count, (
        f"read {len(got)} of {count} messages in {timeout_s:.0f}s "
        f"(left {deadline - time.monotonic():.1f}s)"
    )
    return got


def run_flow(
    flow: Any, until: Callable[[], bool], *, timeout_s: float = 30.0, fail_on_timeout: bool = True
) -> None:
    """Run a kafkito.pubsub.Flow in a thread until `until()` holds (or fail after timeout_s;
    just stop then, with fail_on_timeout=False), then stop it and wait for it; the flow's own
    exception, if any, is raised here."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            flow.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not until():
            if not thread.is_alive():
                break
            if time.monotonic() >= deadline:
                assert not fail_on_timeout, f"flow condition not met in {timeout_s:.0f}s"
                break
            time.sleep(0.05)
    finally:
        flow.stop()
        thread.join(60)
    assert not thread.is_alive(), "the flow did not stop within 60s"
    if errors:
        raise errors[0]


def pull_until(project: str, subscription: str, wanted: set[str], *, timeout_s: float) -> set[str]:
    """Unary pulls (google's client, acknowledging what comes) until every value of `wanted`
    was seen or `timeout_s` passed; returns the values seen."""
    seen: set[str] = set()
    path = f"projects/{project}/subscriptions/{subscription}"
    deadline = time.monotonic() + timeout_s
    with pubsub_v1.SubscriberClient() as subscriber:
        while not wanted <= seen and time.monotonic() < deadline:
            answer = subscriber.pull(request={"subscription": path, "max_messages": 100}, timeout=5)
            seen.update(m.message.data.decode() for m in answer.received_messages)
            if answer.received_messages:
                subscriber.acknowledge(
                    request={
                        "subscription": path,
                        "ack_ids": [m.ack_id for m in answer.received_messages],
                    }
                )
            time.sleep(0.5)
    return seen


class Running:
    """A kafkito.pubsub.Flow running in a thread for the length of a `with` block."""

    def __init__(self, flow: Any) -> None:
        self.flow = flow
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.flow.run()
        except BaseException as exc:
            self.errors.append(exc)

    def wait(self, condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert not self.errors, f"the flow failed: {self.errors[0]!r}"
            assert time.monotonic() < deadline, f"not within {timeout_s:.0f}s: {what}"
            time.sleep(0.05)

    def __enter__(self) -> Running:
        self.thread.start()
        self.wait(lambda: bool(self.flow.health()["live"]), what="the flow is live")
        return self

    def __exit__(self, *exc: object) -> None:
        self.flow.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the flow did not stop within 60s"
