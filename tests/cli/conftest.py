"""Run the real `kafkito` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kafkito(tmp_path: Path) -> Run:
    """kafkito(*args, input=None, brokers=None, env=None) -> CompletedProcess (text)."""

    def run(
        *args: str,
        input: str | None = None,
        brokers: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "KAFKITO_DATA_DIR": str(tmp_path / "local"), **(env or {})}
        full_env.pop("KAFKITO_BROKERS", None)
        argv = [sys.executable, "-m", "kafkito"]
        if brokers:
            argv += ["--brokers", brokers]
        return subprocess.run(
            [*argv, *args],
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            cwd=tmp_path,
        )

    return run
