"""Loopback proxies the faults are injected through.

:class:`HttpProxy` sits in front of a JSON-RPC server (a node or a builder): it forwards each
POST unchanged unless its ``mode`` says otherwise (``down``: the port refuses connections;
``latency``: each answer waits ``delay`` seconds; ``drop``: one request in ``every`` loses its
connection with no answer; ``5xx``: 503; ``timeout``: no answer for ``hang`` seconds; ``garbage``:
200 with bytes that are no JSON). It records the bundles it forwarded (``sent``: method, params)
and calls ``on_request`` before forwarding (a fault can act at the exact moment a bundle leaves).

:class:`TcpProxy` passes raw TCP (PostgreSQL's protocol) and can ``cut`` every open connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from arbx.devnet.anvil import free_port

JSON = {"Content-Type": "application/json"}
MAX_BODY = 16 * 1024 * 1024


class LoopbackProxy:
    """An HTTP server on loopback in front of ``upstream`` whose port can be closed and opened
    again; subclasses answer each POST (``_handle``). Also the base of the test suite's
    misbehaving node (``tests/e2e/faulty_node.py``)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "ok"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.faults = 0  # answers altered
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        """Listen on ``url``."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await self.listen()

    async def listen(self) -> None:
        """Accept connections again (after ``stop_listening``)."""
        assert self._runner is not None
        if self._site is None:
            self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
            await self._site.start()
        self.mode = "ok"

    async def stop_listening(self) -> None:
        """Close the port and cut the open connections: everything fails until ``listen``."""
        self.mode = "down"
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def close(self) -> None:
        """Stop for good."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError


class HttpProxy(LoopbackProxy):
    """An HTTP JSON-RPC proxy to ``upstream`` whose faults are switched by ``mode``."""

    def __init__(self, upstream: str, name: str = "proxy") -> None:
        super().__init__(upstream)
        self.name = name
        self.delay = 0.0  # latency mode: seconds added to each answer
        self.every = 3  # drop mode: one request in ``every`` loses its connection
        self.hang = 30.0  # timeout mode: seconds before the (dropped) answer
        self.requests = 0
        self.sent: list[tuple[str, Any]] = []  # bundle methods forwarded upstream, in order
        self.senders: list[str] = []  # the relay signature's address of each, in order
        self.on_request: Callable[[str, Any], None] | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        mode = self.mode
        if mode in ("down", "drop") and (mode == "down" or self.requests % self.every == 0):
            self.faults += 1
            assert request.transport is not None
            request.transport.close()  # no answer at all: the connection ends
            return web.Response()
        body = await request.read()
        if mode == "5xx":
            self.faults += 1
            return web.Response(status=503, text="upstream unavailable")
        if mode == "timeout":
            self.faults += 1
            await asyncio.sleep(self.hang)
            return web.Response(status=504)
        if mode == "garbage":
            self.faults += 1
            return web.Response(status=200, body=b"\x00<html>not json", content_type="text/html")
        with contextlib.suppress(ValueError):
            signer = request.headers.get("X-Flashbots-Signature", "").split(":")[0].lower()
            self._note(json.loads(body), signer)
        if mode == "latency":
            self.faults += 1
            await asyncio.sleep(self.delay)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-")}
        async with self._session.post(self.upstream, data=body, headers=JSON | headers) as up:
            answer = await up.read()
            status = up.status
        return web.Response(status=status, body=answer, content_type="application/json")

    def _note(self, doc: Any, signer: str) -> None:
        for item in doc if isinstance(doc, list) else [doc]:
            if not isinstance(item, dict):
                continue
            method = item.get("method")
            if isinstance(method, str) and method.endswith("Bundle"):
                self.sent.append((method, item.get("params")))
                self.senders.append(signer)
                if self.on_request is not None:
                    self.on_request(method, item.get("params"))


class TcpProxy:
    """A TCP proxy to ``host:port`` that can cut every open connection, or refuse new ones."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.refuse = False
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen on 127.0.0.1:``port``."""
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def close(self) -> None:
        """Stop listening and cut everything."""
        if self._server is not None:
            self._server.close()
        self.cut()

    def cut(self) -> int:
        """Close every open connection (both sides) at once; how many were open."""
        links = list(self._links)
        for writer in links:
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._links.clear()
        self.cuts += 1
        return len(links) // 2

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        self._links -= {writer, up_writer}

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.close()
