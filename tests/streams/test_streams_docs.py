"""docs/streams.md's first example runs as written, against the session broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kafkito

DOC = Path(__file__).parents[2] / "docs" / "streams.md"


def test_the_first_example_runs(kafkito_bootstrap: str, tmp_path: Path) -> None:
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]
    script = tmp_path / "example.py"
    script.write_text(code)
    src = str(Path(kafkito.__file__).parents[1])  # this checkout's kafkito, from any cwd
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "KAFKITO_BROKERS": kafkito_bootstrap, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, timeout=120
    )
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    results = re.findall(
        r"WindowResult\(key='([^']+)', start_ms=\d+, end_ms=\d+, value=(\d+)\)", out
    )
    assert sorted(results) == [("/", "3"), ("/docs", "1"), ("/pricing", "1")], out


@pytest.mark.parametrize(
    ("marker", "topics"),
    [
        ("typed-example", ["clicks", "frames", "labels"]),
        ("views-and-clicks", ["ad-clicks", "page-views"]),
        ("trades-with-quotes", ["quotes", "trades"]),
    ],
)
def test_an_example_builds(marker: str, topics: list[str]) -> None:
    """The decoding and join examples build their apps (nothing runs: no broker)."""
    code = next(
        block
        for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
        if f'"{marker}"' in block
    )
    namespace: dict[str, object] = {"__name__": marker}
    exec(compile(code, marker, "exec"), namespace)
    app = namespace["app"]
    assert sorted(app._sources) == topics  # type: ignore[attr-defined]
