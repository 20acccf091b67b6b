"""The README's python examples run as a new user would run them (no KAFKITO_* variables)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_readme_examples_run(tmp_path: Path) -> None:
    blocks = FENCE.findall(README.read_text())
    assert len(blocks) >= 2
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKITO_")}
    for number, code in enumerate(blocks, start=1):
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"README example {number} failed:\n{done.stderr}"
        # issue #17: no librdkafka log lines ("%3|...|FAIL|rdkafka#producer-1| ...") leak
        assert "rdkafka#" not in done.stderr, f"README example {number}:\n{done.stderr}"
    assert (
        "clicked:"
        in subprocess.run(
            [sys.executable, "-c", blocks[0]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    )
