"""Flows started by a test are stopped at its end, even when it fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from harness import Running

from kafkito.flow import Flow


@pytest.fixture
def start_flow() -> Iterator[Callable[[Flow], Running]]:
    started: list[Running] = []

    def start(flow: Flow) -> Running:
        running = Running(flow)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.flow.stop()
            running.thread.join(30)
