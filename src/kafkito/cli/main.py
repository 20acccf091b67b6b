"""`kafkito`: the command-line entry point (click)."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import sys

import click

from kafkito import __version__
from kafkito.broker.settings import BrokerSettings
from kafkito.cli.context import (
    DEFAULT_TIMEOUT_S,
    EXIT_USAGE,
    CliContext,
    CliError,
    check_port_free,
)


def _set_brokers(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _context(ctx).brokers = value


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _context(ctx).config_path = value


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        _context(ctx).json_output = True


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        _context(ctx).debug = True
        configure_logging(debug=True)


def _set_timeout(ctx: click.Context, _param: click.Parameter, value: float | None) -> None:
    if value is not None:
        _context(ctx).timeout_s = value


def _context(ctx: click.Context) -> CliContext:
    """The one CliContext of this run, made by whichever option is parsed first."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliContext):
        root.obj = CliContext()
    return root.obj


def _shared_options() -> list[click.Option]:
    """The global options, accepted before the command and after it (`kafkito topics list
    --json` as well as `kafkito --json topics list`): each is set on the run's CliContext by
    a callback, so a value given anywhere reaches the command."""
    return [
        click.Option(
            ["--brokers", "-b"],
            default=None,
            metavar="HOST:PORT[,...]",
            expose_value=False,
            callback=_set_brokers,
            help="Kafka bootstrap servers (else $KAFKITO_BROKERS, --config, or the local "
            "embedded broker).",
        ),
        click.Option(
            ["--config", "--config-file", "config_path"],
            default=None,
            type=click.Path(dir_okay=False),
            expose_value=False,
            callback=_set_config,
            help="A kafkito config file (YAML) with brokers and security settings.",
        ),
        click.Option(
            ["--json", "json_output"],
            is_flag=True,
            expose_value=False,
            callback=_set_json,
            help="Machine-readable output (JSON lines).",
        ),
        click.Option(
            ["--debug"],
            is_flag=True,
            expose_value=False,
            callback=_set_debug,
            help="Show tracebacks, debug logs and librdkafka's own logs.",
        ),
        click.Option(
            ["--timeout", "timeout_s"],
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            expose_value=False,
            callback=_set_timeout,
            help=f"Seconds to wait for the brokers before giving up (else $KAFKITO_TIMEOUT, "
            f"else {DEFAULT_TIMEOUT_S:g}).",
        ),
    ]


def add_shared_options(command: click.Command) -> None:
    """Give `command` (and every command under it) the global options it lacks a name for.

    A command's own option of the same name wins (`topics create --config NAME=VALUE` is a
    topic config, `health --timeout`); there the config file goes by `--config-file`.
    """
    taken = {name for param in command.params for name in getattr(param, "opts", [])}
    for option in _shared_options():
        if command.name == "broker" and option.name not in ("json_output", "debug"):
            continue  # the broker is the cluster: no brokers, client config or client timeout
        free = [name for name in option.opts if name not in taken]
        if not free:
            continue
        if len(free) != len(option.opts):
            option.opts = free
        command.params.append(option)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            if name != "users":  # the broker's user store: a file, no cluster, own entry point
                add_shared_options(sub)


def configure_logging(*, debug: bool) -> None:
    """Quiet by default (each failure is one line through handle_errors); --debug shows the
    client library's and librdkafka's logs."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=debug,
    )
    # The client library logs connection trouble as it happens; a command reports every
    # failure as one line through handle_errors instead (--debug shows both).
    logging.getLogger("kafkito.client").setLevel(logging.DEBUG if debug else logging.ERROR)
    logging.getLogger("kafkito.client.librdkafka").setLevel(
        logging.DEBUG if debug else logging.CRITICAL
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kafkito")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """kafkito: Kafka made simple. Run a broker, produce, consume, inspect.

    \b
    Examples:
      kafkito broker --port 9092
      echo hello | kafkito produce greetings
      kafkito consume greetings --from beginning
      kafkito topics list --json --brokers localhost:9092
    """
    obj = _context(ctx)
    if not obj.debug:
        configure_logging(debug=False)


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback unless told otherwise).",
)
@click.option(
    "--port",
    default=9092,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port; 0 picks a free one.",
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
@click.option(
    "--authorizer",
    type=click.Choice(["none", "acl"]),
    default="none",
    show_default=True,
    help="acl: check every request against ACLs (`kafkito acls`), as Kafka's StandardAuthorizer.",
)
@click.option(
    "--super-user",
    "super_users",
    multiple=True,
    metavar="PRINCIPAL",
    help="A principal allowed everything, e.g. User:admin (repeatable).",
)
@click.option(
    "--allow-everyone-if-no-acl-found",
    is_flag=True,
    help="With --authorizer acl: a resource no ACL applies to is open to everyone.",
)
@click.option(
    "--connections-max-reauth-ms",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="SASL sessions last this long; clients re-authenticate (KIP-368). 0: forever.",
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
    authorizer: str,
    connections_max_reauth_ms: int,
    super_users: tuple[str, ...],
    allow_everyone_if_no_acl_found: bool,
    max_connections: int,
    max_connections_per_ip: int,
    idle_timeout_ms: int,
) -> None:
    """Run the embedded Kafka-compatible broker until Ctrl-C.

    \b
    Example:
      kafkito broker --port 0 --data-dir /tmp/kafkito
    """
    from kafkito.broker.assembly import build_core
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
        authorizer=authorizer,  # type: ignore[arg-type]
        connections_max_reauth_ms=connections_max_reauth_ms,
        super_users=tuple(super_users),
        allow_everyone_if_no_acl_found=allow_everyone_if_no_acl_found,
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
    # Without authentication the broker itself warns, loudly, as it starts (broker/auth).
    if settings.sasl_enabled and not settings.is_loopback() and not settings.tls_enabled:
        logging.getLogger("kafkito").warning(
            "listening on %s without TLS: SASL passwords (PLAIN) and data cross the network "
            "in the clear; use --security-protocol SASL_SSL",
            host,
        )

    # Before the broker opens its data directory: a busy port is one line, nothing touched.
    check_port_free(host, port, what="the broker", option="--port")

    async def run() -> None:
        core = build_core(settings, None)
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
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise CliError(
                f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port "
                "(or --port 0 for any free one)",
                EXIT_USAGE,
            ) from None
        raise


def _register_commands() -> None:
    from kafkito.cli.acls import acls
    from kafkito.cli.bench import bench
    from kafkito.cli.console import console
    from kafkito.cli.consume import consume
    from kafkito.cli.demo import demo
    from kafkito.cli.groups import groups
    from kafkito.cli.health import health
    from kafkito.cli.produce import produce
    from kafkito.cli.quotas import quotas
    from kafkito.cli.topics import topics

    for command in (produce, consume, topics, groups, health, bench, console, demo, quotas, acls):
        cli.add_command(command)
    from kafkito.broker.auth.cli import users

    cli.add_command(users, name="users")
    add_shared_options(cli)


_register_commands()


def main() -> None:
    """Run the CLI; a usage mistake is one line too (click prints three: usage, a hint, the
    error), naming the command's --help."""
    try:
        result = cli.main(prog_name="kafkito", standalone_mode=False)
    except click.UsageError as exc:
        no_args = getattr(click.exceptions, "NoArgsIsHelpError", ())
        if no_args and isinstance(exc, no_args):  # `kafkito` alone: the help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        where = exc.ctx.command_path if exc.ctx is not None else "kafkito"
        click.echo(
            f"kafkito: error: {exc.format_message().rstrip('.')} (see '{where} --help')",
            err=True,
        )
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("", err=True)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
