"""`kafkito broker` with SASL from the command line, and the user-store command, as a user runs
them: child processes, a real client, the store file on disk."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from confluent_kafka import KafkaError, Producer

from kafkito.testing.brokers import kafkito_process


def users_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kafkito.broker.auth", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_users_command_then_sasl_broker_process_accepts_scram(tmp_path: Path) -> None:
    users = str(tmp_path / "users.json")
    added = users_cli("add", "--file", users, "--password-env", "PW", "carol", env={"PW": "c-pw"})
    assert added.returncode == 0, added.stderr
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600
    assert "c-pw" not in Path(users).read_text()
    listed = users_cli("list", "--file", users)
    assert listed.stdout.split() == ["carol", "SCRAM-SHA-256,SCRAM-SHA-512"]

    proc = kafkito_process(
        tmp_path / "data",
        extra_args=["--security-protocol", "SASL_PLAINTEXT", "--sasl-users-file", users],
    ).start()
    try:
        for password, ok in (("c-pw", True), ("nope", False)):
            errors: list[KafkaError] = []
            producer = Producer(
                {
                    "bootstrap.servers": proc.bootstrap,
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": "SCRAM-SHA-512",
                    "sasl.username": "carol",
                    "sasl.password": password,
                    "message.timeout.ms": 2000,
                    "error_cb": errors.append,
                }
            )
            delivered: list[object] = []
            producer.produce("cli-sasl", b"v", on_delivery=lambda e, m, d=delivered: d.append(e))
            producer.flush(10)
            if ok:
                assert delivered == [None]
            else:
                assert errors and errors[0].code() == KafkaError._AUTHENTICATION
    finally:
        proc.kill()
    log = proc.log_path.read_text()
    assert "authentication failed for 'carol'" in log
    assert "nope" not in log and "c-pw" not in log


def test_sasl_broker_without_a_user_store_is_a_usage_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "kafkito",
            "broker",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
            "--security-protocol",
            "SASL_SSL",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "needs sasl_users_file" in out.stderr
