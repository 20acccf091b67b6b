"""The console's ACL page and JSON API against a broker with the ACL authorizer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from kafkito import Broker
from kafkito.broker.auth import UserStore
from kafkito.console.app import create_app

PASSWORDS = {"admin": "admin-pw-console", "alice": "alice-pw-console"}


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


def settings(bootstrap: str, user: str) -> dict[str, str]:
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": PASSWORDS[user],
    }


def test_acl_page_and_api(secured: str) -> None:
    client = TestClient(create_app(settings(secured, "admin")))
    assert client.get("/api/acls").json() == []
    grant = {"resource_type": "topic", "name": "clicks", "principal": "User:alice",
             "operation": "read"}  # fmt: skip
    created = client.post("/api/acls", json=grant)
    assert created.status_code == 200, created.text
    deny = {"resource_type": "GROUP", "name": "team-", "pattern_type": "PREFIXED",
            "principal": "User:*", "operation": "READ", "permission": "DENY"}  # fmt: skip
    assert client.post("/api/acls", json=deny).status_code == 200
    listed = client.get("/api/acls").json()
    assert [(r["resource_type"], r["name"], r["permission"]) for r in listed] == [
        ("GROUP", "team-", "DENY"),
        ("TOPIC", "clicks", "ALLOW"),
    ]
    page = client.get("/console/acls")
    assert page.status_code == 200 and "User:alice" in page.text and "team-" in page.text
    assert 'href="/console/acls"' in page.text
    bad = client.post("/api/acls", json={"resource_type": "TOPIC", "name": "x"})
    assert bad.status_code == 400 and "principal" in bad.json()["error"]
    gone = client.request("DELETE", "/api/acls", json=grant)
    assert gone.status_code == 200 and len(gone.json()["deleted"]) == 1
    assert len(client.get("/api/acls").json()) == 1
    # read-only consoles change nothing
    read_only = TestClient(create_app(settings(secured, "admin"), read_only=True))
    assert read_only.post("/api/acls", json=grant).status_code == 403
    # a principal without DESCRIBE on the cluster is told so, not shown an empty table
    alice = TestClient(create_app(settings(secured, "alice")))
    refused = alice.get("/api/acls")
    assert refused.status_code == 403 and "CLUSTER_AUTHORIZATION_FAILED" in refused.text
    assert "cannot list ACLs" in alice.get("/console/acls").text
