"""The pytest plugin, as a user's project sees it: installed entry point, real broker fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

USER_TESTS = textwrap.dedent(
    """
    import os
    from kafkito import Reader, Writer

    def test_round_trip(kafkito_bootstrap, kafkito_topic):
        with Writer(kafkito_topic, brokers=kafkito_bootstrap) as writer:
            writer.write(b"hello")
        seen = []
        with Reader(kafkito_topic, brokers=kafkito_bootstrap) as reader:
            reader.read_value(seen.append, limit=1)
        assert seen == [b"hello"]

    def test_topics_are_per_test(kafkito_topic, kafkito_broker):
        assert kafkito_broker.bootstrap.startswith("127.0.0.1:")
        assert "per-test" in kafkito_topic

    def test_env_points_at_the_session_broker(kafkito_env, kafkito_topic):
        assert os.environ["KAFKITO_BROKERS"] == kafkito_env
        assert Writer(kafkito_topic).bootstrap == kafkito_env

    def test_user_fixture_named_broker_does_not_clash(broker):
        assert broker == "mine"
    """
)

USER_CONFTEST = textwrap.dedent(
    """
    import pytest

    @pytest.fixture
    def broker():
        return "mine"
    """
)


def test_plugin_fixtures_in_a_user_suite(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    (tmp_path / "conftest.py").write_text(USER_CONFTEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKITO_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout
    assert not (tmp_path / ".kafkito").exists()  # the session broker lives in pytest's tmp
