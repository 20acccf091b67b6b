"""The Pub/Sub flow in operation: health while dead-letter writes fail (nothing lost),
trace context from attributes, the HealthChecker on a flow, and a flow from the seed's config."""

from __future__ import annotations

import json

from google.cloud import pubsub_v1
from pskit import Running, make_topic, make_topic_subscription, read_until

from kafkito.flow import Record, Reject, RetryPolicy
from kafkito.pubsub import Flow, HealthChecker, Reader, Writer


def test_a_failing_dead_letter_write_keeps_the_message_and_turns_health_red(
    project: str,
) -> None:
    make_topic(project, "pay", subscription="pay-sub")
    make_topic(project, "pay.dlq")

    def handle(value: str) -> None:
        raise Reject(f"refused {value}")

    flow = Flow("pay-sub", handle, project_id=project, create_topics=False)
    with Running(flow) as running:
        assert flow.health()["ready"] is True
        publisher = pubsub_v1.PublisherClient()
        publisher.delete_topic(topic=f"projects/{project}/topics/pay.dlq")
        with Writer("pay", project_id=project) as writer:
            writer.write("invoice-9", {"id": "9"})
        running.wait(lambda: flow.health()["dead_letter_failing"] == 1, what="write failing")
        health = flow.health()
        assert health["ready"] is False and health["live"] is True
        assert "pay.dlq" in health["write_error"] and health["degraded"]
        assert flow.dead_lettered == 0
        # the topic is back: the held message goes out, health turns green again
        publisher.create_topic(name=f"projects/{project}/topics/pay.dlq")
        publisher.stop()
        make_topic_subscription(project, "pay.dlq", "pay-dlq-watch")
        running.wait(lambda: flow.dead_lettered == 1, timeout_s=40, what="the dead letter")
        assert flow.health()["ready"] is True and flow.health()["write_error"] is None
    with Reader("pay-dlq-watch", project_id=project) as watcher:
        [(value, headers)] = read_until(watcher, 1)
    assert value == b"invoice-9" and headers["id"] == "9"
    assert headers["x-kafkito-exception-message"] == "refused invoice-9"


def test_trace_context_from_attributes_reaches_the_handler_and_the_dead_letter(
    project: str,
) -> None:
    from opentelemetry import trace

    make_topic(project, "traced", subscription="traced-sub")
    make_topic(project, "traced.dlq", subscription="traced-dlq")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with Writer("traced", project_id=project) as writer:
        writer.write(b'{"id": 1}', {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    seen: list[str] = []

    def handle(record: Record[dict[str, int]]) -> None:
        seen.append(f"{trace.get_current_span().get_span_context().trace_id:032x}")
        raise ValueError("to the dead-letter topic")

    flow = Flow("traced-sub", handle, project_id=project, retry=RetryPolicy.none())
    with Running(flow) as running:
        running.wait(lambda: flow.dead_lettered == 1)
    assert seen == [trace_id]
    with Reader("traced-dlq", project_id=project) as watcher:
        [(_, headers)] = read_until(watcher, 1)
    assert trace_id in headers["traceparent"]


def test_health_checker_on_a_flow_and_a_flow_from_config(project: str) -> None:
    make_topic(project, "conf", subscription="conf-sub")
    config = f"""
client: {{project_id: {project}}}
subscription_id: conf-sub
subscription: {{ack_deadline: 20s}}
flow:
  retry: {{1: 0.05, 2: 0.05}}
  concurrency: 4
  max_in_flight: 50
  ordering: none
"""
    got: list[int] = []
    flow = Flow.from_config(lambda value: got.append(value["n"]), config)
    assert (flow.concurrency, flow.max_in_flight, flow.ordering) == (4, 50, "none")
    assert flow.config.subscription.ack_deadline == 20
    assert isinstance(flow.retry, RetryPolicy) and flow.retry.attempts == 3
    with Running(flow) as running:
        checker = HealthChecker(reader=flow)
        document = checker.health()
        checker.close()
        assert document["status"] == "UP", document
        with Writer("conf", project_id=project) as writer:
            writer.write_many([json.dumps({"n": n}) for n in range(5)])
        running.wait(lambda: len(got) == 5)
    assert sorted(got) == list(range(5))
