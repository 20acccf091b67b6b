"""`kafkito demo`: the main job, run by the README's first command."""

from __future__ import annotations

import logging

import click

from kafkito.cli.context import EXIT_USAGE, CliContext, CliError, check_port_free, handle_errors

DEMO_MODULES = {
    "pyarrow": "demo",
    "duckdb": "demo",
    "lmdb": "streams",
    "starlette": "console",
    "uvicorn": "console",
}
"""Modules the demo needs beyond kafkito's core, with the extra that installs each."""


def check_demo_extra() -> None:
    """One line naming the extra to install, instead of a ModuleNotFoundError traceback."""
    import importlib.util

    missing = [name for name in DEMO_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise CliError(
            f"the demo needs {', '.join(missing)}, which are not installed; "
            "install them with: pip install 'kafkito[demo]'",
            EXIT_USAGE,
        )


@click.command()
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=200.0,
    show_default=True,
    help="Simulated events per second.",
)
@click.option(
    "--users", type=click.IntRange(min=1), default=300, show_default=True, help="Simulated users."
)
@click.option(
    "--malformed",
    "malformed_share",
    type=click.FloatRange(0, 1),
    default=0.02,
    show_default=True,
    help="Share of deliberately malformed events (they go to the dead-letter topics).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Dashboard address.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Dashboard port (0: any free port).",
)
@click.option(
    "--lake-dir",
    default="./.kafkito/lake",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the Parquet data lake goes.",
)
@click.option(
    "--data-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Data directory of the embedded broker (default: a temporary one).",
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--pubsub",
    is_flag=True,
    help="Run over Google Pub/Sub: PUBSUB_EMULATOR_HOST's emulator, --pubsub-project's "
    "project, or else an emulator the demo starts (docs/pubsub.md).",
)
@click.option("--pubsub-project", default=None, help="The Pub/Sub project (implies --pubsub).")
@click.pass_obj
def demo(
    obj: CliContext,
    duration: float | None,
    rate: float,
    users: int,
    malformed_share: float,
    host: str,
    port: int,
    lake_dir: str,
    data_dir: str | None,
    seed: int,
    pubsub: bool = False,
    pubsub_project: str | None = None,
) -> None:
    """Real-time user activity tracking, end to end, with a live dashboard.

    Simulated web and mobile users send page views and clicks; an analytics consumer group
    keeps sliding-window counts, top pages, click-through rates and flags traffic spikes; a
    storage group writes a Parquet data lake; malformed events land in dead-letter topics.
    Uses the embedded broker unless --brokers is given.

    \b
    Example:
      kafkito demo                    # then open http://127.0.0.1:8080/
      kafkito demo --duration 30 --rate 500
      kafkito demo --pubsub           # over Pub/Sub (an emulator is started if none is named)
    """
    import os

    check_demo_extra()
    check_port_free(host, port, what="the dashboard", option="--port")
    from kafkito.demo import DemoOptions, run_demo

    brokers = obj.brokers or os.environ.get("KAFKITO_BROKERS")
    client_settings: dict[str, object] = {}
    if pubsub or pubsub_project:
        brokers = None  # Kafka's settings are not used on Pub/Sub
    elif brokers or obj.config_path or os.environ.get("KAFKITO_CONFIG"):
        # a real cluster: its address and security come from the usual places (see cli.md)
        resolved = obj.librdkafka()
        brokers = str(resolved.pop("bootstrap.servers"))
        resolved.pop("allow.auto.create.topics", None)
        client_settings = resolved
    options = DemoOptions(
        brokers=brokers,
        duration_s=duration,
        rate=rate,
        users=users,
        malformed_share=malformed_share,
        seed=seed,
        host=host,
        port=port,
        data_dir=data_dir,
        lake_dir=lake_dir,
        client_settings=client_settings,
        pubsub=pubsub or pubsub_project is not None,
        pubsub_project=pubsub_project,
    )
    if not obj.debug:  # the dashboard shows dead letters; the terminal need not list each one
        logging.getLogger("kafkito.flow").setLevel(logging.ERROR)
        logging.getLogger("kafkito.pubsub.flow").setLevel(logging.ERROR)
    with handle_errors(obj):
        report = run_demo(options, say=click.echo)
    if not report.drained:
        click.echo("warning: the consumers had not caught up when the demo stopped", err=True)
