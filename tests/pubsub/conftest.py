"""Pub/Sub fixtures: the real emulator of the Google Cloud SDK (session-wide), a project per test.

The emulator accepts any project id, so every test gets its own (`project`): topics and
subscriptions of one test never meet another's, and nothing needs deleting.
"""

from __future__ import annotations

import uuid

import pytest

from kafkito.testing.pubsub_emulator import PubSubEmulator


@pytest.fixture
def project(pubsub_emulator: PubSubEmulator) -> str:
    """A project id unique to this test, on the session's emulator."""
    return f"p-{uuid.uuid4().hex[:10]}"
