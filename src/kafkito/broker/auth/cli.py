"""`python -m kafkito.broker.auth`: manage the broker's SASL user store.

    python -m kafkito.broker.auth add --file users.json alice      # prompts for the password
    python -m kafkito.broker.auth remove --file users.json alice
    python -m kafkito.broker.auth list --file users.json

The password is read from a prompt (never echoed) or, for scripts, from the environment variable
named by --password-env; it is never accepted on the command line, where `ps` would show it.
A running broker picks the change up at the next login.
"""

from __future__ import annotations

import os

import click

from kafkito.broker.auth.scram import DIGESTS, MIN_ITERATIONS
from kafkito.broker.auth.store import DEFAULT_ITERATIONS, UserStore, UserStoreError

_FILE = click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The user store (created with mode 0600).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def users() -> None:
    """Manage SASL users (SCRAM-SHA-256/512 credentials; PLAIN is checked against them).

    \b
    Example:
      kafkito users add --file users.json alice      # prompts for the password
      kafkito broker --security-protocol SASL_PLAINTEXT --sasl-users-file users.json
    """


@users.command()
@_FILE
@click.argument("name")
@click.option(
    "--password-env",
    default=None,
    help="Read the password from this environment variable instead of a prompt.",
)
@click.option(
    "--iterations",
    default=DEFAULT_ITERATIONS,
    show_default=True,
    type=click.IntRange(MIN_ITERATIONS),
)
def add(path: str, name: str, password_env: str | None, iterations: int) -> None:
    """Add NAME, or set a new password for it."""
    if password_env:
        password = os.environ.get(password_env, "")
        if not password:
            raise click.UsageError(f"environment variable {password_env} is empty or unset")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        store = UserStore.load(path, missing_ok=True)
        store.set_password(name, password, mechanisms=tuple(DIGESTS), iterations=iterations)
        store.save()
    except UserStoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {name!r} saved in {path}")


@users.command()
@_FILE
@click.argument("name")
def remove(path: str, name: str) -> None:
    """Remove NAME."""
    try:
        store = UserStore.load(path)
        if not store.remove(name):
            raise click.ClickException(f"no user {name!r} in {path}")
        store.save()
    except UserStoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {name!r} removed from {path}")


@users.command(name="list")
@_FILE
def list_users(path: str) -> None:
    """List users and their mechanisms."""
    try:
        store = UserStore.load(path)
    except UserStoreError as exc:
        raise click.ClickException(str(exc)) from None
    for name, credentials in sorted(store.users.items()):
        click.echo(f"{name}\t{','.join(sorted(credentials))}")
