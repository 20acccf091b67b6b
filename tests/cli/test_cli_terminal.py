"""What a person sees: tables and colours on a terminal (a pty), plain text in a pipe."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

ANSI_ESCAPE = "\x1b["


def run_in_pty(argv: list[str], env: dict[str, str], timeout_s: float = 60) -> str:
    """Run argv with a pseudo-terminal as stdin/stdout/stderr; return all it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        argv, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(10)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_tables_on_a_terminal_plain_lines_in_a_pipe(
    broker: str, topic_name: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "COLUMNS": "100",
        "KAFKITO_DATA_DIR": str(tmp_path),
    }
    env.pop("NO_COLOR", None)
    base = [sys.executable, "-m", "kafkito", "--brokers", broker]
    subprocess.run(
        [*base, "topics", "create", topic_name, "--partitions", "2"],
        check=True,
        capture_output=True,
        env=env,
    )
    screen = run_in_pty([*base, "topics", "describe", topic_name], env)
    assert "partition" in screen and "end_offset" in screen
    assert "━" in screen, "a terminal gets a drawn table"
    assert ANSI_ESCAPE in screen, "and colours (bold headers)"

    piped = subprocess.run(
        [*base, "topics", "describe", topic_name],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert ANSI_ESCAPE not in piped.stdout, "no colour codes when stdout is not a terminal"
    assert "partition" in piped.stdout


def test_help_of_every_command_has_an_example(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kafkito.cli.main import cli

    runner = CliRunner()
    commands = [
        ["broker"],
        ["produce"],
        ["consume"],
        ["topics"],
        ["topics", "list"],
        ["topics", "create"],
        ["topics", "describe"],
        ["topics", "alter"],
        ["topics", "delete"],
        ["groups"],
        ["groups", "list"],
        ["groups", "describe"],
        ["groups", "lag"],
        ["groups", "reset-offsets"],
        ["groups", "delete"],
        ["health"],
        ["bench"],
        ["demo"],
    ]
    for path in commands:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example" in result.output, f"`kafkito {' '.join(path)} --help` has no example"
