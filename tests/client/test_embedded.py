"""With no brokers configured, the library starts the local broker; other processes share it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

HOST_SCRIPT = textwrap.dedent(
    """
    import sys
    from kafkito.client import Writer
    writer = Writer(topic="clicks")
    writer.write(b"from-host")
    print(writer.bootstrap, flush=True)
    sys.stdin.readline()          # keep the broker alive until the test says so
    writer.close()
    """
)

GUEST_SCRIPT = textwrap.dedent(
    """
    from kafkito.client import Reader, Writer
    with Writer(topic="clicks") as writer:
        writer.write(b"from-guest")
    seen = []
    with Reader("clicks") as reader:
        reader.read_value(seen.append, limit=2)
    print(writer.bootstrap, sorted(v.decode() for v in seen), flush=True)
    """
)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKITO_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_fresh_machine_write_works_with_nothing_configured(tmp_path: Path) -> None:
    script = "from kafkito import Writer\nprint(Writer(topic='clicks').write(b'...').offset)\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
    assert (tmp_path / ".kafkito" / "data").is_dir()


def test_second_process_shares_the_first_ones_broker(tmp_path: Path) -> None:
    host = subprocess.Popen(
        [sys.executable, "-c", HOST_SCRIPT],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert host.stdout is not None and host.stdin is not None
        host_bootstrap = host.stdout.readline().strip()
        assert host_bootstrap.startswith("127.0.0.1:")
        guest = subprocess.run(
            [sys.executable, "-c", GUEST_SCRIPT],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert guest.returncode == 0, guest.stderr
        assert guest.stdout.strip() == f"{host_bootstrap} ['from-guest', 'from-host']"
        host.stdin.write("\n")
        host.stdin.flush()
        assert host.wait(30) == 0
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()


def test_kafkito_brokers_env_wins(tmp_path: Path, broker: str) -> None:
    script = "from kafkito import Writer\nprint(Writer(topic='clicks').bootstrap)\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**clean_env(), "KAFKITO_BROKERS": broker},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == broker
    assert not (tmp_path / ".kafkito").exists()
