"""`kafkito.Broker`: the broker in-process, on its own thread or inside a running loop.

with Broker(port=0, data_dir=tmp) as bootstrap:      # "127.0.0.1:54321"
    Producer({"bootstrap.servers": bootstrap}) ...

async with Broker(port=0) as bootstrap:               # inside an asyncio program
    ...
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from kafkito.broker.assembly import build_core
from kafkito.broker.core import BrokerCore
from kafkito.broker.local import DataDirInUse, default_data_dir, read_address
from kafkito.broker.settings import BrokerSettings
from kafkito.storage.fs import FileSystem

__all__ = ["Broker", "attach_or_start"]


class Broker:
    """An embedded kafkito broker: a context manager (sync or async) yielding its bootstrap."""

    def __init__(
        self,
        settings: BrokerSettings | None = None,
        *,
        fs: FileSystem | None = None,
        **overrides: Any,
    ) -> None:
        base = settings or BrokerSettings()
        for key, value in overrides.items():
            if not hasattr(base, key):
                raise TypeError(f"unknown broker setting {key!r}")
            setattr(base, key, value)
        base.validate()
        self.settings = base
        self._fs = fs
        self.core: BrokerCore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def bootstrap(self) -> str:
        """'host:port' that clients should use."""
        if self.core is None:
            raise RuntimeError("the broker is not running")
        return f"{self.core.host}:{self.core.port}"

    @property
    def port(self) -> int:
        if self.core is None:
            raise RuntimeError("the broker is not running")
        return self.core.port

    # -- inside a running loop -------------------------------------------------------------

    async def start_async(self) -> str:
        self.core = build_core(self.settings, self._fs)
        await self.core.start()
        return self.bootstrap

    async def stop_async(self) -> None:
        if self.core is not None:
            await self.core.stop()

    async def __aenter__(self) -> str:
        return await self.start_async()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_async()

    # -- on a background thread --------------------------------------------------------------

    def start(self) -> str:
        """Start on a daemon thread with its own loop; returns the bootstrap address."""
        started: Future[str] = Future()

        def run() -> None:
            # asyncio.run, not a bare loop: at the end it cancels and awaits every task still
            # pending (a connection winding down) before closing the loop.
            asyncio.run(self._run_until_stopped(started))

        self._thread = threading.Thread(target=run, name="kafkito-broker", daemon=True)
        self._thread.start()
        return started.result()

    async def _run_until_stopped(self, started: Future[str]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        try:
            bootstrap = await self.start_async()
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(bootstrap)
        assert self._stopped is not None
        await self._stopped.wait()
        await self.stop_async()

    def stop(self) -> None:
        """Stop the background broker and wait for a clean shutdown."""
        if self._loop is None or self._thread is None:
            return
        stopped = self._stopped
        assert stopped is not None
        self._loop.call_soon_threadsafe(stopped.set)
        self._thread.join()
        self._thread = None
        self._loop = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _reachable(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except (OSError, ValueError):
        return False


def attach_or_start(
    data_dir: str | None = None, *, wait_s: float = 10.0
) -> tuple[str, Callable[[], None]]:
    """(bootstrap, close) of the local broker, starting it in-process if none runs."""
    directory = os.path.abspath(data_dir) if data_dir else default_data_dir()
    deadline = time.monotonic() + wait_s
    while True:
        address = read_address(directory)
        if address and _reachable(address):
            return address, lambda: None
        broker = Broker(port=0, data_dir=directory)
        try:
            bootstrap = broker.start()
        except DataDirInUse:
            # Another process is starting one right now: wait for its address.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        return bootstrap, broker.stop
