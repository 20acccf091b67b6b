"""Every python example in docs/pubsub.md runs against the emulator, so the page cannot rot.

As tests/client/test_docs.py does for the Kafka pages, with one change for speed: the plain
blocks run in order in one fresh interpreter (each in a namespace of its own, as separate
scripts would), with PUBSUB_EMULATOR_HOST set to the session's emulator and
GOOGLE_CLOUD_PROJECT naming a project of their own. A block whose first line is
`# test_<name>.py` is run by pytest with the kafkito plugin (which starts its own emulator).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from kafkito.testing.pubsub_emulator import PubSubEmulator

PAGE = Path(__file__).resolve().parents[2] / "docs" / "pubsub.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
RUNNER = """
import sys
for number, path in enumerate(sys.argv[1:], start=1):
    print(f"--- example {number}", flush=True)
    with open(path) as source:
        exec(compile(source.read(), path, "exec"), {"__name__": "__main__"})
"""


def test_pubsub_page_examples_run(pubsub_emulator: PubSubEmulator, tmp_path: Path) -> None:
    blocks = FENCE.findall(PAGE.read_text())
    assert len(blocks) >= 5, "docs/pubsub.md lost its examples"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKITO_")}
    env.update(
        PUBSUB_EMULATOR_HOST=pubsub_emulator.host,
        GOOGLE_CLOUD_PROJECT=f"docs-{uuid.uuid4().hex[:8]}",
        PYTHONUNBUFFERED="1",
    )
    scripts: list[str] = []
    runs: list[tuple[list[str], dict[str, str], str]] = []
    for number, code in enumerate(blocks, start=1):
        first_line = code.splitlines()[0]
        if first_line.startswith("# test_"):
            path = tmp_path / first_line[2:].strip()
            path.write_text(code)
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
            alone = {k: v for k, v in env.items() if k != "PUBSUB_EMULATOR_HOST"}
            runs.append((argv, alone, code))
        else:
            path = tmp_path / f"example_{number}.py"
            path.write_text(code)
            scripts.append(str(path))
    runs.insert(0, ([sys.executable, "-c", RUNNER, *scripts], env, "the plain examples"))
    for argv, run_env, what in runs:
        done = subprocess.run(
            argv, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, f"docs/pubsub.md: {what} failed:\n{done.stdout}\n{done.stderr}"
