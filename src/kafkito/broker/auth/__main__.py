"""Entry point of `python -m kafkito.broker.auth` (see kafkito.broker.auth.cli)."""

from kafkito.broker.auth.cli import users

users(prog_name="python -m kafkito.broker.auth")
