"""The local builder (:class:`arbx.devnet.builder.LocalBuilder`) in a thread of its own.

The devnet's market simulator and ``arbx run`` are synchronous; the builder is an aiohttp
server. :class:`BuilderThread` runs it in a dedicated thread with its own asyncio event loop:
``start`` returns once it serves, ``stop`` ends the loop (the builder gives anvil's mining back as
it found it) and joins the thread. With ``mine_every`` it builds a block every so many seconds
(the devnet's block time); without, blocks are built only on ``evm_mine`` sent to its URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from arbx.devnet.builder import LocalBuilder
from arbx.domain.errors import ArbxError, ConfigError
from arbx.errors import TransientError

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class BuilderThread:
    """A :class:`LocalBuilder` serving from a thread and asyncio loop of its own."""

    def __init__(
        self,
        anvil_url: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mine_every: float | None = None,
        hold: threading.Lock | None = None,
    ) -> None:
        self.anvil_url = anvil_url
        self.hold = hold  # the market's lock, taken by devnet_hold (LocalBuilder)
        self.host = host  # 0.0.0.0: other hosts (containers) send bundles to it too
        self.port = port
        self.interval = mine_every  # None: blocks only on `evm_mine` (or build_block)
        self.error: BaseException | None = None  # why it could not start, or the last failure
        self.failures = 0  # blocks `mine_every` could not build (it goes on)
        self._builder: LocalBuilder | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="arbx-builder", daemon=True)

    @classmethod
    @contextlib.contextmanager
    def serving(
        cls,
        anvil_url: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mine_every: float | None = None,
        hold: threading.Lock | None = None,
    ) -> Iterator[BuilderThread]:
        """Start the builder, yield it once it serves; stop it and join its thread on exit."""
        running = cls(anvil_url, host=host, port=port, mine_every=mine_every, hold=hold)
        running.start()
        try:
            yield running
        finally:
            running.stop()

    @property
    def builder(self) -> LocalBuilder:
        """The builder (its ``stats``, ``last_block``), once started."""
        if self._builder is None:
            raise RuntimeError("the local builder has not started")
        return self._builder

    @property
    def url(self) -> str:
        """The builder's JSON-RPC endpoint."""
        return self.builder.url

    def start(self) -> None:
        """Start the thread; return once the builder serves, or raise why it could not."""
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            self.stop()
            raise TransientError(f"the local builder did not start within {START_TIMEOUT:g}s")
        if self._builder is None:
            self._thread.join(STOP_TIMEOUT)
            raise ConfigError(f"the local builder did not start: {self.error}") from self.error

    def stop(self) -> None:
        """Stop serving (anvil's mining is restored as the builder found it); join the thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # kept for the owner (start() raises it)
            self.error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with LocalBuilder(
            self.anvil_url, host=self.host, port=self.port, hold=self.hold
        ) as builder:
            self._builder = builder
            self._ready.set()
            while not self._stop.is_set():
                if self.interval is None:
                    await self._stop.wait()
                    continue
                try:
                    await builder.mine_every(self.interval, self._stop)
                except (ArbxError, OSError, ValueError, KeyError) as exc:
                    self.failures += 1
                    self.error = exc
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), self.interval)
