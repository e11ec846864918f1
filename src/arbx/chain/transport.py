"""The seam between the JSON-RPC client and the network: move one document, bring back its answer.

A ``Transport`` posts a request body to a URL and returns the decoded JSON answer, or raises
``TransportError`` naming what went wrong (timeout, connection, HTTP status, rate limit, a body
that is not JSON or is over the size cap). It knows nothing of JSON-RPC ids or endpoints: the
client validates the answer and decides what a failure means. ``AiohttpTransport`` is the real
one: one keep-alive session for every endpoint, HTTP and WebSocket; builders are posted to
through it too (a ``Poster``: the same caps, decoding and failure kinds). Every answer is decoded
by ``arbx.safejson``: bounded in size and depth, linear in time. Tests that need a hostile
server start one on loopback; another transport can be injected where a network is not wanted.
"""

import asyncio
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Final, Protocol

import aiohttp

from arbx import safejson
from arbx.errors import TransientError

DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
_HEADERS: Final = {"Content-Type": "application/json"}

dumps = safejson.dumps


class FailureKind(StrEnum):
    """What went wrong with one exchange; the client counts failures by kind."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"  # refused, reset, closed mid-answer, DNS
    HTTP_STATUS = "http_status"  # 5xx, or a 4xx without a JSON-RPC error in it
    RATE_LIMITED = "rate_limited"  # HTTP 429 or a JSON-RPC rate-limit code
    MALFORMED = "malformed"  # not JSON, wrong shape, wrong id, wrong types
    OVERSIZE = "oversize"  # a body over the size cap (also counted as malformed)


class TransportError(TransientError):
    """One exchange with one endpoint failed; the client retries elsewhere."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class WebSocket(Protocol):
    """An open WebSocket that carries JSON documents."""

    async def send(self, body: bytes) -> None:
        """Send one JSON document."""

    async def receive(self, timeout: float | None) -> Any:
        """The next decoded JSON document; TransportError on timeout, close or garbage."""

    async def close(self) -> None:
        """Close the connection (idempotent)."""


class Poster(Protocol):
    """Posts JSON documents: the one HTTP path to nodes and builders alike."""

    async def post(
        self, url: str, body: bytes, timeout: float, headers: Mapping[str, str] | None = None
    ) -> Any:
        """POST ``body`` (with extra ``headers``) to ``url``; the decoded JSON answer."""

    async def close(self) -> None:
        """Release every connection."""


class Transport(Poster, Protocol):
    """Moves JSON-RPC documents to endpoints; the client's only way to the network."""

    async def websocket(self, url: str, timeout: float) -> WebSocket:
        """Open a WebSocket to ``url``."""

    async def close(self) -> None:
        """Release every connection."""


def describe(exc: BaseException) -> str:
    """One short line naming a connection failure (its class and message, never a repr)."""
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _read_capped(stream: aiohttp.StreamReader, cap: int) -> bytes:
    """The whole body of ``stream``, refusing to hold more than ``cap`` bytes of it."""
    body = await stream.read(cap + 1)  # usually the whole body, already buffered
    size = len(body)
    chunks: list[bytes] = []
    while size <= cap:
        chunk = await stream.read(cap + 1 - size)
        if not chunk:
            return b"".join([body, *chunks]) if chunks else body
        chunks.append(chunk)
        size += len(chunk)
    raise TransportError(FailureKind.OVERSIZE, f"body over {cap} bytes")


def decode_json(raw: bytes | str, *, exact_integers: bool = True) -> Any:
    """``raw`` as JSON; TransportError(MALFORMED) for anything that is not, or nests too deep.

    Linear in the size of ``raw`` whatever it holds (see ``arbx.safejson``).
    """
    try:
        return safejson.loads(
            raw, max_bytes=DEFAULT_MAX_RESPONSE_BYTES, exact_integers=exact_integers
        )
    except safejson.JsonTooLargeError as exc:
        raise TransportError(FailureKind.OVERSIZE, f"body {exc}") from None
    except safejson.JsonError as exc:
        preview = raw[:60] if isinstance(raw, str) else raw[:60].decode(errors="replace")
        raise TransportError(FailureKind.MALFORMED, f"{exc} ({preview!r})") from None


class AiohttpTransport:
    """HTTP and WebSocket over one aiohttp session with keep-alive connections.

    ``exact_integers``: decode JSON numbers past 64 bits exactly (builders send amounts so);
    off for nodes, whose quantities are hex strings, so a hostile answer costs orjson's time only.
    """

    def __init__(
        self,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        connections: int = 64,
        exact_integers: bool = False,
    ) -> None:
        self._cap = max_response_bytes
        self._connections = connections
        self._exact = exact_integers  # builders: amounts past 2^64 as JSON numbers
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None)
        )
        return self._session

    async def post(
        self, url: str, body: bytes, timeout: float, headers: Mapping[str, str] | None = None
    ) -> Any:
        """POST ``body`` to ``url`` and return the decoded JSON answer (a 4xx JSON-RPC error too).

        ``headers`` are sent beside ``Content-Type: application/json`` (a builder's signature).
        """
        session = self._session or self._open()
        sent = _HEADERS if headers is None else {**_HEADERS, **headers}
        try:
            async with (
                asyncio.timeout(timeout),
                session.post(url, data=body, headers=sent) as response,
            ):
                status = response.status
                if status == 429:
                    raise TransportError(FailureKind.RATE_LIMITED, "HTTP 429")
                length = response.content_length
                if length is not None and length > self._cap:
                    raise TransportError(FailureKind.OVERSIZE, f"Content-Length {length}")
                raw = await _read_capped(response.content, self._cap)
        except TransportError:
            raise
        except TimeoutError as exc:
            raise TransportError(FailureKind.TIMEOUT, f"no answer within {timeout}s") from exc
        except Exception as exc:  # aiohttp, OS and protocol errors: the endpoint failed
            raise TransportError(FailureKind.CONNECTION, describe(exc)) from exc
        if status == 200:
            return decode_json(raw, exact_integers=self._exact)
        if status < 500:  # nodes and relays send a JSON-RPC error with a 4xx status
            try:
                doc = decode_json(raw, exact_integers=self._exact)
            except TransportError:
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
                return doc
        raise TransportError(FailureKind.HTTP_STATUS, f"HTTP {status}")

    async def websocket(self, url: str, timeout: float) -> WebSocket:
        """Open a WebSocket to ``url``."""
        session = self._session or self._open()
        try:
            async with asyncio.timeout(timeout):
                ws = await session.ws_connect(
                    url,
                    max_msg_size=self._cap,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=timeout),
                )
        except TimeoutError as exc:
            raise TransportError(FailureKind.TIMEOUT, f"no WebSocket within {timeout}s") from exc
        except Exception as exc:
            raise TransportError(FailureKind.CONNECTION, describe(exc)) from exc
        return _AiohttpWebSocket(ws)

    async def close(self) -> None:
        """Release every connection."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


class _AiohttpWebSocket:
    """An aiohttp WebSocket that sends and receives JSON documents."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    async def send(self, body: bytes) -> None:
        """Send one JSON document as a text frame."""
        try:
            await self._ws.send_str(body.decode())
        except Exception as exc:
            raise TransportError(FailureKind.CONNECTION, describe(exc)) from exc

    async def receive(self, timeout: float | None) -> Any:
        """The next decoded JSON document (``timeout`` None: wait as long as it takes)."""
        try:
            message = await self._ws.receive(timeout=timeout)
        except TimeoutError as exc:
            raise TransportError(FailureKind.TIMEOUT, f"silent for {timeout}s") from exc
        except Exception as exc:
            raise TransportError(FailureKind.CONNECTION, describe(exc)) from exc
        if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            return decode_json(message.data, exact_integers=False)  # node answers only
        if message.type == aiohttp.WSMsgType.ERROR and "size" in str(message.data).lower():
            raise TransportError(FailureKind.OVERSIZE, str(message.data))
        raise TransportError(FailureKind.CONNECTION, f"WebSocket {message.type.name}")

    async def close(self) -> None:
        """Close the connection."""
        await self._ws.close()


class WsChannel:
    """JSON-RPC requests over one WebSocket, each reply handed to its request by id.

    A reader task routes every message: a reply (or a batch reply, by any of its ids) to the
    request waiting for it; subscription notifications are ignored. A message that answers no
    request, is not JSON or is over the size cap poisons the channel: every waiting request fails
    with that ``TransportError`` and the channel closes, so the client retries elsewhere.
    """

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._expired: dict[int, None] = {}  # ids of requests that timed out: replies ignored
        self._failure: TransportError | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def closed(self) -> bool:
        """True once the channel has failed or been closed."""
        return self._failure is not None

    async def request(self, body: bytes, ids: Sequence[int], timeout: float) -> Any:
        """Send ``body`` (a request, or a batch with ``ids``) and return the decoded reply."""
        if self._failure is not None:
            raise self._failure
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        for request_id in ids:
            self._pending[request_id] = reply
        try:
            async with asyncio.timeout(timeout):
                await self._ws.send(body)
                return await reply
        except TimeoutError as exc:
            for request_id in ids:
                self._expired[request_id] = None
            while len(self._expired) > 4096:
                del self._expired[next(iter(self._expired))]
            raise TransportError(FailureKind.TIMEOUT, f"no answer within {timeout}s") from exc
        finally:
            for request_id in ids:
                self._pending.pop(request_id, None)

    async def _read(self) -> None:
        try:
            while True:
                doc = await self._ws.receive(None)
                first = doc[0] if type(doc) is list and doc else doc
                key = first.get("id") if type(first) is dict else None
                reply = self._pending.get(key) if type(key) is int else None
                if reply is not None:
                    if not reply.done():
                        reply.set_result(doc)
                    continue
                notification = type(doc) is dict and doc.get("method") == "eth_subscription"
                if not notification and key not in self._expired:
                    raise TransportError(FailureKind.MALFORMED, f"reply to no request: {key!r}")
        except TransportError as failure:
            self._fail(failure)
        except Exception as exc:  # anything else the socket throws: the channel is gone
            self._fail(TransportError(FailureKind.CONNECTION, describe(exc)))

    def _fail(self, failure: TransportError) -> None:
        if self._failure is None:
            self._failure = failure
        for reply in self._pending.values():
            if not reply.done():
                reply.set_exception(failure)

    async def close(self) -> None:
        """Fail what is waiting, stop the reader and close the socket."""
        self._fail(TransportError(FailureKind.CONNECTION, "channel closed"))
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._ws.close()
