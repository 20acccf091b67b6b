"""kafkito.loops (which event loop the broker and Flow.run start) and kafkito.broker.loop
(the broker's GIL switch interval and malloc thresholds)."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from kafkito import loops
from kafkito.broker import loop as broker_loop


def test_asyncio_is_the_default_and_unknown_names_fall_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKITO_LOOP", raising=False)
    assert loops.loop_factory()[0] == "asyncio"
    assert loops.loop_factory("fastest")[0] == "asyncio"


def test_uvloop_is_used_when_asked_and_installed() -> None:
    pytest.importorskip("uvloop")
    name, factory = loops.loop_factory("uvloop")
    loop = factory()
    try:
        assert name == "uvloop" and type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_uvloop_missing_falls_back_to_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    name, factory = loops.loop_factory("uvloop")
    loop = factory()
    try:
        assert name == "asyncio" and isinstance(loop, asyncio.BaseEventLoop)
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("raw", "seconds"), [(None, 0.0005), ("2", 0.002), ("0", 0.00005), ("x", 0.0005)]
)
def test_switch_interval(monkeypatch: pytest.MonkeyPatch, raw: str | None, seconds: float) -> None:
    if raw is None:
        monkeypatch.delenv("KAFKITO_SWITCH_INTERVAL_MS", raising=False)
    else:
        monkeypatch.setenv("KAFKITO_SWITCH_INTERVAL_MS", raw)
    assert broker_loop.switch_interval_s() == pytest.approx(seconds)


def test_run_sets_the_interval_and_returns_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    before = sys.getswitchinterval()
    monkeypatch.setenv("KAFKITO_SWITCH_INTERVAL_MS", "1")

    async def main() -> float:
        await asyncio.sleep(0)
        return sys.getswitchinterval()

    try:
        assert broker_loop.run(main()) == pytest.approx(0.001)
    finally:
        sys.setswitchinterval(before)


def test_the_broker_variables_are_no_client_config_error() -> None:
    from kafkito.client.config import ConfigError, ReaderConfig

    env = {"KAFKITO_LOOP": "uvloop", "KAFKITO_SWITCH_INTERVAL_MS": "1"}
    ReaderConfig.from_env(environ=env)
    with pytest.raises(ConfigError):  # other unknown names under the prefix still are
        ReaderConfig.from_env(environ={**env, "KAFKITO_LOOPS": "uvloop"})


def test_malloc_thresholds_are_set_in_the_broker_process_unless_the_environment_sets_them() -> None:
    """`kafkito broker` moves glibc's mmap and trim thresholds (broker/loop.py); a user's own
    MALLOC_* settings win. In child processes: mallopt changes the whole process."""
    import platform
    import subprocess
    import sys

    probe = "from kafkito.broker.loop import tune_malloc\nprint(tune_malloc())\n"

    def tuned(**env: str) -> str:
        base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        return subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={**base, **env},
        ).stdout.strip()

    glibc = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"
    assert tuned() == str(glibc)
    assert tuned(MALLOC_TRIM_THRESHOLD_="131072") == "False"
    assert tuned(MALLOC_MMAP_THRESHOLD_="131072") == "False"
