"""Apps started by a streams test are stopped at its end, even when it fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from streams_kit import Running

from kafkito.streams import StreamsApp


@pytest.fixture
def start_app() -> Iterator[Callable[[StreamsApp], Running]]:
    started: list[Running] = []

    def start(app: StreamsApp) -> Running:
        running = Running(app)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.app.stop()
            running.thread.join(60)
