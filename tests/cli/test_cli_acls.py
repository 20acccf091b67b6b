"""`kafkito acls` end to end: add, list, remove against a broker with the ACL authorizer, as
the super user; a user without ACLs is refused in one line; a broker without the authorizer
says so."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kafkito import Broker
from kafkito.broker.auth import UserStore

Run = Callable[..., subprocess.CompletedProcess[str]]
PASSWORDS = {"admin": "admin-pw-for-cli", "alice": "alice-pw-for-cli"}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[str]:
    users = str(tmp_path / "users.json")
    store = UserStore.load(users, missing_ok=True)
    for user, password in PASSWORDS.items():
        store.set_password(user, password)
    store.save()
    with Broker(
        port=0,
        data_dir=str(tmp_path / "data"),
        security_protocol="SASL_PLAINTEXT",
        sasl_users_file=users,
        authorizer="acl",
        super_users=("User:admin",),
    ) as bootstrap:
        yield bootstrap


def config(where: Path, bootstrap: str, user: str) -> str:
    """A client config file with the user's credentials (the CLI's --config)."""
    path = where / f"{user}.yaml"
    path.write_text(
        f"brokers: [{bootstrap}]\nclient:\n  username: {user}\n"
        f"  password: {PASSWORDS[user]}\n  algorithm: SCRAM-SHA-256\n"
    )
    return str(path)


def rows(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_add_list_remove(kafkito: Run, secured: str, tmp_path: Path) -> None:
    admin_config = config(tmp_path, secured, "admin")

    def as_admin(*args: str) -> subprocess.CompletedProcess[str]:
        return kafkito("--config", admin_config, *args)

    added = as_admin(
        "--json", "acls", "add", "--principal", "User:alice", "--operation", "read",
        "--operation", "WRITE", "--topic", "clicks",
    )  # fmt: skip
    assert [r["operation"] for r in rows(added)] == ["READ", "WRITE"]
    prefixed = as_admin(
        "--json", "acls", "add", "--principal", "User:*", "--operation", "READ", "--group",
        "team-", "--prefixed", "--deny",
    )  # fmt: skip
    assert rows(prefixed) == [
        {"permission": "DENY", "principal": "User:*", "host": "*", "operation": "READ",
         "resource": "GROUP", "pattern": "PREFIXED", "name": "team-"}
    ]  # fmt: skip
    listed = rows(as_admin("--json", "acls", "list"))
    assert len(listed) == 3
    match = rows(as_admin(
        "--json", "acls", "list", "--group", "team-a", "--match"))  # fmt: skip
    assert [r["name"] for r in match] == ["team-"]
    assert rows(as_admin(
        "--json", "acls", "list", "--group", "team-a")) == []  # fmt: skip
    # alice may not manage ACLs: one line, not a traceback
    refused = kafkito("acls", "list", "--config", config(tmp_path, secured, "alice"))
    assert refused.returncode == 6, refused.stderr  # not authorized (5 is for credentials)
    assert "CLUSTER_AUTHORIZATION_FAILED" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    removed = as_admin(
        "--json", "acls", "remove", "--principal", "User:alice", "--topic",
                      "clicks", "--operation", "READ")  # fmt: skip
    assert [r["operation"] for r in rows(removed)] == ["READ"]
    everything = rows(as_admin("--json", "acls", "remove", "--all"))
    assert len(everything) == 2
    assert rows(as_admin("--json", "acls", "list")) == []


def test_usage_errors_and_no_authorizer(kafkito: Run, broker: str) -> None:
    no_resource = kafkito("acls", "add", "--principal", "User:a", "--operation", "READ",
                          brokers=broker)  # fmt: skip
    assert no_resource.returncode == 2 and "name a resource" in no_resource.stderr
    two = kafkito("acls", "list", "--topic", "t", "--group", "g", brokers=broker)
    assert two.returncode == 2 and "name one resource" in two.stderr
    bare = kafkito("acls", "add", "--principal", "alice", "--operation", "READ", "--topic",
                   "t", brokers=broker)  # fmt: skip
    assert bare.returncode == 2 and "User:alice" in bare.stderr
    nothing = kafkito("acls", "remove", brokers=broker)
    assert nothing.returncode == 2 and "--all" in nothing.stderr
    disabled = kafkito("acls", "add", "--principal", "User:a", "--operation", "READ",
                       "--topic", "t", brokers=broker)  # fmt: skip
    assert disabled.returncode != 0 and "SECURITY_DISABLED" in disabled.stderr, disabled.stderr
