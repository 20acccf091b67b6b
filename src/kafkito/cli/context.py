"""What every command shares: where the brokers are, how to print, how errors end the process.

Connection, in order: `--brokers`, then `KAFKITO_BROKERS`, then `--config FILE` (the client
library's keys, security included), then the local embedded broker (the library's rule).

Exit codes (documented in docs/cli.md):
    0 success · 1 an unexpected error · 2 bad arguments or config · 3 broker unreachable
    4 unknown topic or group · 5 authentication failed · 130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from kafkito.errors import KafkitoError

if TYPE_CHECKING:
    from kafkito.client.admin import Admin
    from kafkito.client.raw_consumer import RawConsumer
    from kafkito.client.raw_producer import RawProducer

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_NOT_FOUND = 4
EXIT_AUTH = 5
EXIT_DENIED = 6
EXIT_INTERRUPTED = 130

ADMIN_TIMEOUT_S = 15.0
"""How long an admin request of a command waits for the brokers."""

DEFAULT_TIMEOUT_S = 8.0
"""How long a command waits for the brokers before it reports them unreachable (--timeout,
$KAFKITO_TIMEOUT): a mistake (no broker, wrong password, missing topic) ends within it, and
the whole command, start-up included, within 10 s."""

KNOWN_VARIABLES = ("KAFKITO_BROKERS", "KAFKITO_CONFIG", "KAFKITO_DATA_DIR", "KAFKITO_TIMEOUT")
"""The environment variables the CLI reads itself (the client library's config keys,
KAFKITO_CLIENT__..., are read by its loader)."""


class CliError(click.ClickException, KafkitoError):
    """A user-facing error: one line, a documented exit code, no traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it to exit

    def show(self, file: Any = None) -> None:
        click.echo(f"kafkito: error: {self.format_message()}", err=True)


@dataclass
class CliContext:
    """Options of the top-level group, and lazily resolved connection settings."""

    brokers: str | None = None
    config_path: str | None = None
    json_output: bool = False
    debug: bool = False
    timeout_s: float | None = None
    _settings: dict[str, Any] | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def console(self) -> Console:
        return Console(stderr=False, highlight=False, soft_wrap=True)

    @property
    def err_console(self) -> Console:
        return Console(stderr=True, highlight=False)

    def librdkafka(self, **extra: Any) -> dict[str, Any]:
        """librdkafka settings for the resolved cluster, plus `extra`."""
        if self._settings is None:
            self._settings = self._resolve()
        # Looking at a topic must not create it; `produce` turns creation back on.
        return {"allow.auto.create.topics": False, **self._settings, **extra}

    @property
    def wait_s(self) -> float:
        """--timeout, else $KAFKITO_TIMEOUT, else DEFAULT_TIMEOUT_S."""
        if self.timeout_s is not None:
            return self.timeout_s
        raw = os.environ.get("KAFKITO_TIMEOUT")
        if raw is None:
            return DEFAULT_TIMEOUT_S
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise CliError(f"KAFKITO_TIMEOUT={raw!r} is not a positive number of seconds", 2)
        return value

    def _resolve(self) -> dict[str, Any]:
        check_environment()
        brokers = self.brokers or os.environ.get("KAFKITO_BROKERS")
        config_path = self.config_path or os.environ.get("KAFKITO_CONFIG")
        # librdkafka's own log lines (connection retries...) only with --debug: every failure
        # reaches the user as one clear line through handle_errors.
        settings: dict[str, Any] = {} if self.debug else {"log_level": 0}
        if config_path:
            settings.update(_settings_from_config_file(config_path))
        # A mistake ends within --timeout: connection attempts, metadata and deliveries are
        # bounded by it instead of librdkafka's 30-60 s defaults.
        wait_ms = int(self.wait_s * 1000)
        settings.setdefault("socket.connection.setup.timeout.ms", max(1000, wait_ms))
        settings.setdefault("message.timeout.ms", max(1000, wait_ms))
        if brokers:
            settings["bootstrap.servers"] = brokers
        if "bootstrap.servers" not in settings:
            bootstrap, close = local_broker()
            # Stop it at exit, after the command's clients are gone (else librdkafka logs
            # disconnects from a broker that went away under it).
            atexit.register(close)
            settings["bootstrap.servers"] = bootstrap
        return settings

    # -- clients: kafkito.client's Admin and cores, closed when the command ends -------------

    def admin(self, timeout_s: float = ADMIN_TIMEOUT_S) -> Admin:
        """An Admin for the resolved cluster (connect check included: exit 3 if unreachable)."""
        from kafkito.client.admin import Admin

        client = Admin(settings=self.librdkafka(), timeout_s=min(timeout_s, self.wait_s))
        self._closers.append(client.close)
        return client

    def consumer(self, **extra: Any) -> RawConsumer:
        """A RawConsumer for the resolved cluster with `extra` librdkafka settings."""
        from kafkito.client.raw_consumer import RawConsumer

        return RawConsumer(settings=self.librdkafka(**extra))

    def producer(self, **extra: Any) -> RawProducer:
        """A RawProducer for the resolved cluster with `extra` librdkafka settings."""
        from kafkito.client.raw_producer import RawProducer

        return RawProducer(settings=self.librdkafka(**extra))

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()

    # -- output ----------------------------------------------------------------------------

    def emit(
        self, rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None
    ) -> None:
        """Rows as a rich table on a terminal, JSON lines with --json."""
        if self.json_output:
            for row in rows:
                click.echo(json.dumps(row, default=str))
            return
        table = Table(title=title, show_edge=False, header_style="bold")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
        self.console.print(table)

    def emit_object(self, obj: dict[str, Any]) -> None:
        if self.json_output:
            click.echo(json.dumps(obj, default=str))
        else:
            for key, value in obj.items():
                self.console.print(f"[bold]{key}[/bold]: {value}")


def check_environment() -> None:
    """Refuse a misspelled KAFKITO_ variable (KAFKITO_BROKER): ignoring it would quietly
    start the local broker instead of the cluster the user named."""
    import difflib

    for name in sorted(os.environ):
        if not name.startswith("KAFKITO_") or name in KNOWN_VARIABLES or "__" in name:
            continue
        close = difflib.get_close_matches(name, KNOWN_VARIABLES, n=1, cutoff=0.8)
        if close:
            raise CliError(
                f"environment variable {name} is not read by kafkito; did you mean {close[0]}?",
                EXIT_USAGE,
            )


def _settings_from_config_file(path: str) -> dict[str, Any]:
    """librdkafka settings from a kafkito config file (the client library's keys)."""
    from kafkito.client import config as client_config

    # TODO(lead): wire to the client library's loader once its API settles.
    loader: Any = getattr(client_config, "load_client_settings", None)
    if loader is None:
        raise CliError(f"cannot read {path}: config files are not supported yet", EXIT_USAGE)
    try:
        loaded = loader(path)
    except Exception as exc:
        raise CliError(f"bad config file {path}: {exc}", EXIT_USAGE) from exc
    return dict(loaded)


def local_broker() -> tuple[str, Callable[[], None]]:
    """The local embedded broker: shared if one runs, else started in this process."""
    from kafkito.broker.embedded import attach_or_start

    return attach_or_start()


@contextlib.contextmanager
def handle_errors(ctx: CliContext) -> Iterator[None]:
    """Map exceptions to one line and an exit code; --debug re-raises with the traceback."""
    try:
        yield
    except CliError as exc:
        if ctx.debug and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        raise
    except (click.exceptions.Exit, click.Abort, click.UsageError):
        raise
    except KeyboardInterrupt:
        click.echo("", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        _silence_broken_pipe()
        sys.exit(0)
    except Exception as exc:
        if ctx.debug:
            raise
        raise classify(exc) from exc
    finally:
        ctx.close()


def classify(exc: BaseException) -> CliError:
    """A CliError with the right exit code for a client-library or librdkafka failure.

    The client library's typed errors decide first; the text is read only for the rest.
    """
    # Imported here: `kafkito --help` need not load librdkafka.
    from kafkito.client.errors import (
        AuthenticationError,
        AuthorizationError,
        BrokerUnreachableError,
        ConfigError,
        DeliveryError,
        GroupNotEmptyError,
        InvalidRequestError,
        MessageTooLargeError,
        TopicExistsError,
        UnknownGroupError,
        UnknownTopicError,
    )

    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, AuthenticationError):
        return CliError(f"authentication failed: {text}", EXIT_AUTH)
    if isinstance(exc, AuthorizationError):
        return CliError(f"not authorized: {text}", EXIT_DENIED)
    if isinstance(exc, UnknownTopicError | UnknownGroupError):
        return CliError(text, EXIT_NOT_FOUND)
    if isinstance(exc, BrokerUnreachableError):
        # The library's hint names its config key; on the command line the knob is --timeout.
        text = text.replace("raise client.timeout", "raise --timeout")
        return CliError(f"broker unreachable: {text}", EXIT_UNREACHABLE)
    if isinstance(
        exc,
        ConfigError
        | InvalidRequestError
        | TopicExistsError
        | GroupNotEmptyError
        | MessageTooLargeError,
    ):
        return CliError(text, EXIT_USAGE)
    if isinstance(exc, DeliveryError) and exc.reason in ("_MSG_TIMED_OUT", "_TIMED_OUT"):
        return CliError(f"broker unreachable: {text}", EXIT_UNREACHABLE)
    lowered = text.lower()
    if "authorization_failed" in lowered:
        return CliError(f"not authorized: {text}", EXIT_DENIED)
    if any(s in lowered for s in ("authentication", "sasl", "_authentication")):
        return CliError(f"authentication failed: {text}", EXIT_AUTH)
    if any(
        s in lowered
        for s in (
            "unknown_topic",
            "unknown topic",
            "unknown_topic_or_part",
            "group_id_not_found",
            "group id not found",
        )
    ):
        return CliError(text, EXIT_NOT_FOUND)
    if any(
        s in lowered
        for s in (
            "_transport",
            "all brokers are down",
            "timed out",
            "_timed_out",
            "connection refused",
            "unreachable",
        )
    ):
        return CliError(f"broker unreachable: {text}", EXIT_UNREACHABLE)
    return CliError(text, EXIT_ERROR)


def topic_partitions(
    client: Any, topic: str, wait_s: float, *, creating_grace_s: float = 0.0
) -> set[int]:
    """The partitions of `topic`, asked of a RawProducer or RawConsumer (a producer allowed to
    create topics creates it when the broker auto-creates topics).

    Raises BrokerUnreachableError, AuthenticationError (the broker refused the credentials:
    librdkafka reports that through its error callback, then only a timeout) or
    UnknownTopicError, all within `wait_s`. `creating_grace_s`: how long an unknown topic is
    asked for again, for a client that lets the broker create topics: Apache Kafka answers the
    metadata request that creates a topic with UNKNOWN_TOPIC_OR_PARTITION and lists the topic
    about 100 ms later (kafkito lists it at once).
    """
    from kafkito.client.admin import metadata_in_slices
    from kafkito.client.errors import (
        AuthenticationError,
        BrokerUnreachableError,
        UnknownTopicError,
    )

    deadline = time.monotonic() + wait_s
    grace_until = time.monotonic() + creating_grace_s
    while True:
        try:
            metadata = metadata_in_slices(
                lambda slice_s: client.list_topics(topic, timeout_s=slice_s),
                timeout_s=max(0.5, deadline - time.monotonic()),
                errors=client.errors,
                serve=lambda: client.poll(0),
            )
        except BrokerUnreachableError:
            failure = client.errors.auth_failure()
            if failure is not None:
                raise AuthenticationError(
                    f"the brokers at {client.bootstrap} refused our credentials "
                    f"({failure.name()}: {failure.str()}); check the username, password and "
                    "mechanism in --config"
                ) from None
            raise
        tmeta = metadata.topics.get(topic)
        error = getattr(tmeta, "error", None)
        if tmeta is not None and tmeta.partitions and error is None:
            return set(tmeta.partitions)
        name = str(error.name()) if error is not None else "no partitions"
        # A topic being auto-created answers LEADER_NOT_AVAILABLE for a moment (Kafka), and
        # first UNKNOWN_TOPIC_OR_PART when this very request created it.
        creating = name == "UNKNOWN_TOPIC_OR_PART" and time.monotonic() < grace_until
        retriable = error is not None and error.retriable() and name != "UNKNOWN_TOPIC_OR_PART"
        if not (retriable or creating) or time.monotonic() >= deadline:
            raise UnknownTopicError(
                f"topic {topic!r} does not exist and the broker did not create it ({name}); "
                "create it first (kafkito topics create) or enable auto-creation on the broker",
                reason=name,
                topic=topic,
            )
        time.sleep(0.1)


def check_port_free(host: str, port: int, *, what: str, option: str) -> None:
    """Fail in one line, with the option that fixes it, when `port` is taken."""
    import errno
    import socket

    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc})"
            raise CliError(
                f"port {port} on {host} {why}: give {what} another one with {option} "
                f"(e.g. {option} {port + 1}, or {option} 0 for any free port)",
                EXIT_USAGE,
            ) from None


def _silence_broken_pipe() -> None:
    """After `| head` closed stdout: point stdout at devnull so the interpreter exits quietly."""
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
