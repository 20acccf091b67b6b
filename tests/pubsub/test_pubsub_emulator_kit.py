"""The emulator launcher: found, answering, and a one-line error when it is not installed."""

from __future__ import annotations

import pytest

from kafkito.testing.pubsub_emulator import (
    EMULATOR_ENV,
    PubSubEmulator,
    PubSubEmulatorError,
    find_emulator,
)


def test_session_emulator_answers_real_requests(pubsub_emulator: PubSubEmulator) -> None:
    assert pubsub_emulator.running
    assert pubsub_emulator.answers()
    assert pubsub_emulator.host.startswith("127.0.0.1:")
    assert "(no emulator log)" not in pubsub_emulator.logs()


def test_missing_emulator_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EMULATOR_ENV, "/nonexistent/cloud-pubsub-emulator")
    with pytest.raises(PubSubEmulatorError) as info:
        PubSubEmulator().start()
    message = str(info.value)
    assert "\n" not in message
    assert EMULATOR_ENV in message and "not a file" in message
    monkeypatch.delenv(EMULATOR_ENV)
    assert find_emulator().name == "cloud-pubsub-emulator"
