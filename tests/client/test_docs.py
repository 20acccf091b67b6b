"""Every python example in the client docs runs, so the docs cannot rot.

Plain blocks run as scripts in a fresh working directory per page with no KAFKITO_* variables,
so they use the embedded broker exactly as a new user would; blocks of one page run in order
and share that directory. A block whose first line is `# test_<name>.py` is a test module:
it is run by pytest, with the kafkito plugin providing its fixtures.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ["client.md", "config.md", "security.md", "embedded.md", "testing.md", "flow.md"]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: str) -> list[str]:
    return FENCE.findall((DOCS / page).read_text())


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKITO_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_every_page_has_examples() -> None:
    for page in PAGES:
        assert blocks(page), f"docs/{page} has no python example"


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page: str, tmp_path: Path) -> None:
    for number, code in enumerate(blocks(page), start=1):
        first_line = code.splitlines()[0]
        if first_line.startswith("# test_"):
            path = tmp_path / first_line[2:].strip()
            path.write_text(code)
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
        else:
            argv = [sys.executable, "-c", code]
        done = subprocess.run(
            argv, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (
            f"docs/{page} example {number} failed:\n{code}\n{done.stdout}\n{done.stderr}"
        )
