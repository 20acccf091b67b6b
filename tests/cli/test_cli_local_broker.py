"""CLI commands on the local embedded broker end cleanly (issue #17, item 1).

With no broker configured, a command starts the local broker in its own process and stops it
at exit. That stop runs while the interpreter shuts down, when thread pools refuse new work;
it used to fail there ("cannot schedule new futures after shutdown"), print a traceback from
the broker thread and leave no clean-shutdown marker, so the next start recovered the log.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kafkito.storage.recovery import CLEAN_SHUTDOWN_MARKER


def kafkito_cli(data_dir: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKITO_BROKERS", "KAFKITO_CONFIG")}
    env["KAFKITO_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "kafkito", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "stdin"),
    [(("produce", "greetings"), b"hello\n"), (("topics", "list"), b""), (("health",), b"")],
)
def test_a_command_on_the_local_broker_stops_it_cleanly(
    tmp_path: Path, args: tuple[str, ...], stdin: bytes
) -> None:
    data_dir = tmp_path / "data"
    done = kafkito_cli(data_dir, *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert (data_dir / CLEAN_SHUTDOWN_MARKER).exists(), done.stderr


def test_what_one_command_wrote_the_next_reads_after_a_clean_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    wrote = kafkito_cli(data_dir, "produce", "greetings", stdin=b"hello\n")
    assert wrote.returncode == 0, wrote.stderr
    read = kafkito_cli(data_dir, "consume", "greetings", "--from", "beginning", "-n", "1")
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "hello"
    assert "Traceback" not in read.stderr, read.stderr
    assert (data_dir / CLEAN_SHUTDOWN_MARKER).exists()
