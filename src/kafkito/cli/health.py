"""`kafkito health`: is the cluster reachable, and how fast does it answer?"""

from __future__ import annotations

import time
from typing import Any

import click

from kafkito.cli.context import EXIT_UNREACHABLE, CliContext, CliError, handle_errors


@click.command()
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds to wait for the cluster.",
)
@click.pass_obj
def health(obj: CliContext, timeout_s: float) -> None:
    """Check that the brokers answer; exit 0 if healthy, 3 if unreachable.

    \b
    Example:
      kafkito --brokers kafka:9092 health --timeout 2 && echo up
    """
    from confluent_kafka.admin import AdminClient

    with handle_errors(obj):
        client = AdminClient(
            obj.librdkafka(**{"socket.connection.setup.timeout.ms": int(timeout_s * 1000)})
        )
        started = time.perf_counter()
        try:
            metadata = client.list_topics(timeout=timeout_s)
        except Exception as exc:
            raise CliError(f"broker unreachable: {exc}", EXIT_UNREACHABLE) from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        report: dict[str, Any] = {
            "status": "UP",
            "cluster_id": metadata.cluster_id,
            "brokers": [f"{b.host}:{b.port}" for b in metadata.brokers.values()],
            "topics": len([t for t in metadata.topics if not t.startswith("__")]),
            "latency_ms": round(elapsed_ms, 1),
        }
        if obj.json_output:
            obj.emit_object(report)
        else:
            click.echo(
                f"UP: {len(report['brokers'])} broker(s) "
                f"({', '.join(report['brokers'])}), {report['topics']} topics, "
                f"answered in {report['latency_ms']} ms"
            )
