"""`kafkito`: the command-line entry point (click)."""

from __future__ import annotations

import asyncio
import logging
import signal

import click

from kafkito import __version__
from kafkito.broker.settings import BrokerSettings
from kafkito.cli.context import EXIT_USAGE, CliContext, CliError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kafkito")
@click.option(
    "--brokers",
    "-b",
    default=None,
    metavar="HOST:PORT[,...]",
    help="Kafka bootstrap servers (else $KAFKITO_BROKERS, --config, or the local embedded broker).",
)
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="A kafkito config file (YAML) with brokers and security settings.",
)
@click.option("--json", "json_output", is_flag=True, help="Machine-readable output (JSON lines).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(
    ctx: click.Context, brokers: str | None, config_path: str | None, json_output: bool, debug: bool
) -> None:
    """kafkito: Kafka made simple. Run a broker, produce, consume, inspect.

    \b
    Examples:
      kafkito broker --port 9092
      echo hello | kafkito produce greetings
      kafkito consume greetings --from beginning
    """
    ctx.obj = CliContext(
        brokers=brokers, config_path=config_path, json_output=json_output, debug=debug
    )
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not debug:
        # The client library logs connection trouble as it happens; a command reports every
        # failure as one line through handle_errors instead (--debug shows both).
        logging.getLogger("kafkito.client").setLevel(logging.ERROR)


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback unless told otherwise).",
)
@click.option(
    "--port", default=9092, show_default=True, type=int, help="TCP port; 0 picks a free one."
)
@click.option(
    "--data-dir",
    default="./.kafkito/data",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where logs and metadata live.",
)
@click.option("--advertised-host", default=None, help="Host name given to clients in Metadata.")
@click.option(
    "--partitions",
    "num_partitions",
    default=1,
    show_default=True,
    type=int,
    help="Partitions of auto-created topics.",
)
@click.option("--no-auto-create", is_flag=True, help="Do not create topics on first use.")
@click.option(
    "--durability",
    type=click.Choice(["always", "interval"]),
    default="always",
    show_default=True,
    help="always: ack after fsync; interval: fsync periodically.",
)
@click.option(
    "--flush-interval-ms",
    default=1000,
    show_default=True,
    type=int,
    help="fsync period with --durability interval.",
)
@click.option("--message-max-bytes", default=1048588, show_default=True, type=int)
@click.option(
    "--security-protocol",
    type=click.Choice(["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"]),
    default="PLAINTEXT",
    show_default=True,
    help="Listener security, as Kafka's: SASL for logins, SSL for TLS.",
)
@click.option(
    "--sasl-users-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="SCRAM user store (mode 0600); manage it with `kafkito users`.",
)
@click.option(
    "--sasl-mechanisms",
    default="SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
    show_default=True,
    help="Comma-separated SASL mechanisms offered.",
)
@click.option("--ssl-certfile", type=click.Path(dir_okay=False), help="PEM certificate chain.")
@click.option("--ssl-keyfile", type=click.Path(dir_okay=False), help="PEM private key.")
@click.option(
    "--ssl-cafile",
    type=click.Path(dir_okay=False),
    help="PEM CA bundle; when given, clients must present a certificate it signed.",
)
@click.option("--max-connections", default=10_000, show_default=True, type=int)
@click.option("--max-connections-per-ip", default=1_000, show_default=True, type=int)
@click.option(
    "--idle-timeout-ms",
    default=600_000,
    show_default=True,
    type=int,
    help="Close connections without a request for this long.",
)
@click.option(
    "--group-initial-rebalance-delay-ms",
    default=300,
    show_default=True,
    type=int,
    help="How long a new consumer group waits for more members before its first "
    "assignment (Kafka uses 3000).",
)
@click.option(
    "--offsets-retention-ms",
    default=7 * 24 * 3600 * 1000,
    show_default=True,
    type=int,
    help="Committed offsets of an empty group expire after this long.",
)
@click.option(
    "--log-cleaner-backoff-ms",
    default=15_000,
    show_default=True,
    type=int,
    help="Compaction: pause between looks for a log to clean when none was due.",
)
@click.option(
    "--log-cleaner-io-max-bytes-per-second",
    default=float("inf"),
    type=float,
    help="Compaction: cleaner reads plus writes per second (default unthrottled).",
)
def broker(
    log_cleaner_backoff_ms: int,
    log_cleaner_io_max_bytes_per_second: float,
    group_initial_rebalance_delay_ms: int,
    offsets_retention_ms: int,
    host: str,
    port: int,
    data_dir: str,
    advertised_host: str | None,
    num_partitions: int,
    no_auto_create: bool,
    durability: str,
    flush_interval_ms: int,
    message_max_bytes: int,
    security_protocol: str,
    sasl_users_file: str | None,
    sasl_mechanisms: str,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    ssl_cafile: str | None,
    max_connections: int,
    max_connections_per_ip: int,
    idle_timeout_ms: int,
) -> None:
    """Run the embedded Kafka-compatible broker until Ctrl-C.

    \b
    Example:
      kafkito broker --port 0 --data-dir /tmp/kafkito
    """
    from kafkito.broker.embedded import _build_core
    from kafkito.broker.local import DataDirInUse
    from kafkito.errors import KafkitoError

    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        logging.getLogger("kafkito").setLevel(logging.INFO)  # a server reports what it does
    settings = BrokerSettings(
        host=host,
        port=port,
        data_dir=data_dir,
        advertised_host=advertised_host,
        num_partitions=num_partitions,
        auto_create_topics=not no_auto_create,
        durability=durability,  # type: ignore[arg-type]
        flush_interval_ms=flush_interval_ms,
        message_max_bytes=message_max_bytes,
        security_protocol=security_protocol,  # type: ignore[arg-type]
        sasl_users_file=sasl_users_file,
        sasl_mechanisms=tuple(m.strip() for m in sasl_mechanisms.split(",") if m.strip()),
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        ssl_cafile=ssl_cafile,
        max_connections=max_connections,
        max_connections_per_ip=max_connections_per_ip,
        idle_timeout_ms=idle_timeout_ms,
        group_initial_rebalance_delay_ms=group_initial_rebalance_delay_ms,
        offsets_retention_ms=offsets_retention_ms,
        log_cleaner_backoff_ms=log_cleaner_backoff_ms,
        log_cleaner_io_max_bytes_per_second=log_cleaner_io_max_bytes_per_second,
    )
    try:
        settings.validate()
    except KafkitoError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if not settings.is_loopback() and not settings.sasl_enabled:
        logging.getLogger("kafkito").warning(
            "listening on %s: reachable from other machines, without authentication", host
        )
    elif not settings.is_loopback() and not settings.tls_enabled:
        logging.getLogger("kafkito").warning(
            "listening on %s without TLS: SASL passwords (PLAIN) and data cross the network "
            "in the clear; use --security-protocol SASL_SSL",
            host,
        )

    async def run() -> None:
        core = _build_core(settings, None)
        bound_host, bound_port = await core.start()
        click.echo(
            f"kafkito broker ready: bootstrap {bound_host}:{bound_port} "
            f"(data in {settings.data_path})",
            err=False,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        click.echo("stopping broker...", err=True)
        await core.stop()

    try:
        asyncio.run(run())
    except DataDirInUse as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _register_commands() -> None:
    from kafkito.cli.bench import bench
    from kafkito.cli.consume import consume
    from kafkito.cli.demo import demo
    from kafkito.cli.groups import groups
    from kafkito.cli.health import health
    from kafkito.cli.produce import produce
    from kafkito.cli.quotas import quotas
    from kafkito.cli.topics import topics

    for command in (produce, consume, topics, groups, health, bench, demo, quotas):
        cli.add_command(command)
    from kafkito.broker.auth.cli import users

    cli.add_command(users, name="users")


_register_commands()


def main() -> None:
    cli(prog_name="kafkito")


if __name__ == "__main__":
    main()
