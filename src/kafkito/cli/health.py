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
    type=click.FloatRange(min=0, min_open=True),
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
    from kafkito.client.admin import Admin
    from kafkito.client.errors import BrokerUnreachableError

    with handle_errors(obj):
        settings = obj.librdkafka(**{"socket.connection.setup.timeout.ms": int(timeout_s * 1000)})
        started = time.perf_counter()
        try:
            # The connect check is the health check: one metadata round trip.
            with Admin(settings=settings, timeout_s=timeout_s) as admin:
                elapsed_ms = (time.perf_counter() - started) * 1000
                info = admin.describe_cluster()
                topics = admin.list_topics()
        except BrokerUnreachableError as exc:
            raise CliError(f"broker unreachable: {exc}", EXIT_UNREACHABLE) from exc
        report: dict[str, Any] = {
            "status": "UP",
            "cluster_id": info.cluster_id,
            "brokers": [f"{b.host}:{b.port}" for b in info.brokers],
            "topics": len(topics),
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
