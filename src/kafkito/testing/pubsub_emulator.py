"""The Google Cloud SDK's Pub/Sub emulator on loopback: a real Pub/Sub server for tests.

    with PubSubEmulator() as emulator:              # a JVM on a free port of 127.0.0.1
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        Writer("clicks", project_id=emulator.project_id).write(b"hi")

Theory of operation
-------------------
*Finding it.* The emulator is a Java program that ships with the Google Cloud SDK
(`platform/pubsub-emulator/bin/cloud-pubsub-emulator`). It is looked up in
`KAFKITO_PUBSUB_EMULATOR` (a path to that script), then under the SDK root that `gcloud` on
PATH belongs to, then in the usual install places. When none is there, `start()` raises
`PubSubEmulatorError` with a one-line message that says what to install; nothing is skipped
silently. `java` must be on PATH as well.

*Starting it.* The script is run directly (not `gcloud beta emulators pubsub start`, which adds
a Python process and a second JVM-wrapper layer between us and the server) with
`--host=127.0.0.1 --port=<free port>`, in its own session so a Ctrl-C in the terminal reaches
the test run and not the JVM, its output in `emulator.log` in the data directory. The JVM gets
a small heap, the serial collector and tier-1 JIT, as `ApacheKafka` does: half the CPU time
to start on a 2-core machine.

*Readiness.* Up means a real request answered: the emulator serves Pub/Sub's REST API beside
gRPC on the same port, so `GET /v1/projects/<project>/topics` must return HTTP 200. The
google client is not needed for that, so the launcher works without `kafkito[pubsub]`.

*Stopping.* SIGTERM to the JVM's process group, SIGKILL after `timeout_s`. The emulator keeps
everything in memory: a stop loses every topic and message, as the real service never would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from kafkito.errors import KafkitoError
from kafkito.testing.brokers import free_port

__all__ = ["PubSubEmulator", "PubSubEmulatorError", "find_emulator"]

EMULATOR_ENV = "KAFKITO_PUBSUB_EMULATOR"
"""Environment variable naming the cloud-pubsub-emulator script, when not found by itself."""
DEFAULT_PROJECT = "kafkito-test"
_RELATIVE = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
_SDK_ROOTS = (
    Path("/usr/lib/google-cloud-sdk"),
    Path("/usr/share/google-cloud-sdk"),
    Path("/opt/google-cloud-sdk"),
    Path.home() / "google-cloud-sdk",
)
_JVM_OPTS = "-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k"
_LOG_TAIL_CHARS = 3000


class PubSubEmulatorError(KafkitoError):
    """The emulator is not installed, did not start, or stopped answering."""


def find_emulator() -> Path:
    """The cloud-pubsub-emulator script; raises PubSubEmulatorError (one line) if absent."""
    configured = os.environ.get(EMULATOR_ENV)
    if configured:
        path = Path(configured)
        if path.is_file():
            return path
        raise PubSubEmulatorError(f"{EMULATOR_ENV}={configured} is not a file")
    candidates: list[Path] = []
    gcloud = shutil.which("gcloud")
    if gcloud is not None:
        # .../google-cloud-sdk/bin/gcloud, possibly behind a symlink in /usr/bin
        candidates.append(Path(gcloud).resolve().parent.parent / _RELATIVE)
    candidates.extend(root / _RELATIVE for root in _SDK_ROOTS)
    for path in candidates:
        if path.is_file():
            return path
    raise PubSubEmulatorError(
        "the Pub/Sub emulator is not installed: install the Google Cloud SDK component "
        "(gcloud components install pubsub-emulator, or apt-get install "
        f"google-cloud-cli-pubsub-emulator) or set {EMULATOR_ENV} to cloud-pubsub-emulator"
    )


@dataclass
class PubSubEmulator:
    """A Pub/Sub emulator on 127.0.0.1 (context manager); `host` is for PUBSUB_EMULATOR_HOST.

    `port` fixes the port (a free one by default); `data_dir` keeps the log (a temporary
    directory, removed on stop, when not given). `project_id` is the project readiness asks
    about; the emulator accepts any project id.
    """

    port: int | None = None
    data_dir: Path | str | None = None
    project_id: str = DEFAULT_PROJECT
    start_timeout_s: float = 60.0
    jvm_opts: str = _JVM_OPTS
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    serving_after_s: float = field(default=0.0, init=False)
    """Seconds from spawning the JVM until the first request was answered."""
    _home: Path | None = field(default=None, init=False)
    _temp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    @property
    def host(self) -> str:
        """ "127.0.0.1:<port>", the value PUBSUB_EMULATOR_HOST takes."""
        if self.port is None:
            raise PubSubEmulatorError("the emulator has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        assert self._home is not None
        return self._home / "emulator.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The tail of the emulator's output, for failure messages."""
        if self._home is None or not self.log_path.exists():
            return "(no emulator log)"
        text = self.log_path.read_text(errors="replace")
        return text[-chars:]

    def __enter__(self) -> PubSubEmulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> PubSubEmulator:
        """Find the emulator, start it, and return once a real request is answered."""
        script = find_emulator()
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise PubSubEmulatorError("the Pub/Sub emulator needs java on PATH (or JAVA_HOME)")
        if self.data_dir is None:
            self._temp = tempfile.TemporaryDirectory(prefix="pubsub-emulator-")
            self._home = Path(self._temp.name)
        else:
            self._home = Path(self.data_dir)
            self._home.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        env = dict(os.environ)
        env["CLOUD_PUBSUB_EMULATOR_OPTS"] = self.jvm_opts
        spawned = time.monotonic()
        try:
            with open(self.log_path, "ab") as out:
                self.proc = subprocess.Popen(
                    [str(script), "--host=127.0.0.1", f"--port={self.port}"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.serving_after_s = time.monotonic() - spawned
        return self

    def answers(self, timeout_s: float = 2.0) -> bool:
        """Whether the emulator answers a topic listing with HTTP 200 right now."""
        url = f"http://{self.host}/v1/projects/{self.project_id}/topics"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                json.load(response)
                return int(response.status) == 200
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if not self.running:
                raise PubSubEmulatorError(
                    f"the Pub/Sub emulator exited during start:\n{self.logs()}"
                )
            if self.answers():
                return
            if time.monotonic() > deadline:
                raise PubSubEmulatorError(
                    f"the Pub/Sub emulator on {self.host} did not answer within "
                    f"{self.start_timeout_s:.0f} s:\n{self.logs()}"
                )
            time.sleep(0.2)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the emulator's process group, SIGKILL after `timeout_s`. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m kafkito.testing.pubsub_emulator`: run one until Ctrl-C, print its host."""
    del argv
    try:
        emulator = PubSubEmulator().start()
    except PubSubEmulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"PUBSUB_EMULATOR_HOST={emulator.host}  (started in {emulator.serving_after_s:.1f} s)")
    try:
        while emulator.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
