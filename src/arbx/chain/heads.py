"""New heads: every block number once and in order, by WebSocket subscription or by polling.

``heads(client)`` subscribes to ``newHeads`` on the first healthy endpoint that has a WebSocket
URL. When there is none, when the subscription fails, sends garbage, or stays silent longer than
``silence_timeout``, it polls ``eth_blockNumber`` through the client (so with its failover) every
``poll_interval`` and tries the WebSocket again after ``ws_retry_interval``. A polled head the
node announces but does not serve (null: it lags its own head) is asked for again at the next
poll; after ``UNSERVED_POLLS`` such polls in a row it is asked strictly, a null answer being that
endpoint's failure, so that the client fails over: a node that answers no block at any number
would otherwise starve the stream for ever while another endpoint serves the chain.

Whatever the source, a head more than one block ahead of the last one yielded is preceded by the
missing blocks, fetched by number in batches; a head already yielded (same number and hash) is
skipped. A missing block the node does not serve although it served a head ``PRUNED_LAG`` or
more blocks above it is history the node has pruned (a consumer that fell that far behind): it
will never come, so the gap is skipped and the head yielded as it is; the consumer, whose book
cannot link it to its own blocks, re-bootstraps at it instead of waiting for ever. A head at or
below the last number with another hash is a reorg: it is yielded as it is, with its real parent
hash, and the consumer decides what to roll back. The first head is the
latest block when the stream starts. Close the stream (``aclose`` or ``async with``) when done.
"""

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

from arbx.chain.rpc import RpcClient, RpcError, hex_hash, hex_int, malformed, parse_reply
from arbx.chain.transport import FailureKind, TransportError, WebSocket, dumps
from arbx.domain.errors import ArbxError
from arbx.metrics import record

_REMEMBERED: Final = 256  # block numbers whose yielded hash is kept to skip duplicates
_FILL_CHUNK: Final = 100  # blocks fetched per gap-filling batch
PRUNED_LAG: Final = 32  # a block this far below a served head that is not served: pruned
UNSERVED_POLLS: Final = 3  # polls in a row whose announced head is null, then asked strictly


@dataclass(frozen=True, slots=True)
class Head:
    """A block header, as much of it as following the chain needs."""

    number: int
    hash: bytes
    parent_hash: bytes
    timestamp: int
    base_fee: int = 0


def decode_head(raw: Any) -> Head:
    """A ``Head`` from a block or a ``newHeads`` header; ValueError, TypeError, KeyError if bad."""
    if type(raw) is not dict:
        raise TypeError(f"a header is an object, not {type(raw).__name__}")
    return Head(
        number=hex_int(raw["number"]),
        hash=hex_hash(raw["hash"]),
        parent_hash=hex_hash(raw["parentHash"]),
        timestamp=hex_int(raw["timestamp"]),
        base_fee=hex_int(raw["baseFeePerGas"]) if raw.get("baseFeePerGas") is not None else 0,
    )


def _block_or_none(raw: Any) -> Head | None:
    """``eth_getBlockByNumber``'s answer: None when the node does not have the block (yet)."""
    return None if raw is None else decode_head(raw)


@dataclass(slots=True)
class HeadStats:
    """Counters for metrics: where heads came from and what was survived."""

    source: str = ""  # "ws" or "poll": where heads come from now
    ws_heads: int = 0  # notifications received for our subscription
    polled: int = 0  # new tips found by polling
    filled: int = 0  # blocks fetched to fill gaps
    duplicates: int = 0
    reorgs: int = 0  # heads at or below the last number with another hash
    malformed: int = 0  # WebSocket messages refused
    fallbacks: int = 0  # times the WebSocket was given up for polling
    poll_errors: int = 0
    pruned_gaps: int = 0  # gaps the node no longer serves, skipped
    strict_polls: int = 0  # announced heads asked strictly after UNSERVED_POLLS null answers
    last_ws_error: str = ""


class HeadStream:
    """An async iterator of ``Head``; see the module docstring for the rules."""

    def __init__(
        self,
        client: RpcClient,
        *,
        poll_interval: float = 1.0,
        silence_timeout: float = 30.0,
        ws_retry_interval: float = 30.0,
        use_ws: bool = True,
    ) -> None:
        self.client = client
        self.stats = HeadStats()
        self.tip = -1  # the highest block yielded, or reached by filling a gap the node serves
        self._poll_interval = poll_interval
        self._silence = silence_timeout
        self._ws_retry = ws_retry_interval
        self._use_ws = use_ws
        self._last: Head | None = None
        self._yielded: dict[int, bytes] = {}  # number -> hash, for the last _REMEMBERED numbers
        self._run = self._heads()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Head:
        return await anext(self._run)

    async def aclose(self) -> None:
        """Stop following: close the WebSocket, if any."""
        await self._run.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sources ----------------------------------------------------------------------------

    async def _heads(self) -> AsyncGenerator[Head]:
        while True:
            ws_url = self._ws_url()
            if ws_url is not None:
                async with contextlib.aclosing(self._subscribed(ws_url)) as subscribed:
                    async for head in subscribed:
                        yield head
                self.stats.fallbacks += 1
            until = math.inf if ws_url is None else time.monotonic() + self._ws_retry
            async with contextlib.aclosing(self._polled(until)) as polled:
                async for head in polled:
                    yield head

    def _ws_url(self) -> str | None:
        """The WebSocket URL of the first healthy endpoint that has one, else of any."""
        if not self._use_ws:
            return None
        with_ws = [h for h in self.client.health if h.endpoint.ws_url is not None]
        chosen = next((h for h in with_ws if h.healthy), with_ws[0] if with_ws else None)
        return None if chosen is None else chosen.endpoint.ws_url

    async def _subscribed(self, url: str) -> AsyncGenerator[Head]:
        """Heads from ``eth_subscribe("newHeads")`` until the subscription fails or falls silent."""
        ws: WebSocket | None = None
        try:
            ws = await self.client.transport.websocket(url, self.client.timeout)
            subscription = await self._subscribe(ws)
            self.stats.source = "ws"
            async for head in self._accept(await self._latest()):
                yield head
            while True:
                header = _notification(await ws.receive(self._silence), subscription)
                if header is None:
                    continue
                try:
                    head = decode_head(header)
                except (ValueError, TypeError, KeyError) as exc:
                    raise malformed(f"newHeads header refused: {exc}") from exc
                self.stats.ws_heads += 1
                async for accepted in self._accept(head):
                    yield accepted
        except ArbxError as exc:  # TransportError, RpcError, TransientError: poll instead
            if isinstance(exc, TransportError) and exc.kind in (
                FailureKind.MALFORMED,
                FailureKind.OVERSIZE,
            ):
                self.stats.malformed += 1
            self.stats.last_ws_error = str(exc)
        finally:
            if ws is not None:
                await ws.close()

    async def _subscribe(self, ws: WebSocket) -> str:
        """Send ``eth_subscribe`` and return the subscription id from its reply."""
        request_id = 1
        await ws.send(
            dumps(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "method": "eth_subscribe",
                    "params": ["newHeads"],
                }
            )
        )
        reply = parse_reply(await ws.receive(self.client.timeout), request_id)
        if isinstance(reply, RpcError):
            raise reply
        if type(reply) is not str or not reply:
            raise malformed(f"subscription id {reply!r}")
        return reply

    async def _polled(self, until: float) -> AsyncGenerator[Head]:
        """Heads found by polling ``eth_blockNumber``, until the monotonic time ``until``."""
        self.stats.source = "poll"
        unserved = 0  # polls in a row whose announced head the node did not serve
        while time.monotonic() < until:
            try:
                number = await self.client.block_number()
                if self._last is None or number != self._last.number:
                    strict = unserved >= UNSERVED_POLLS
                    head = await (self._served(number) if strict else self._block(number))
                    unserved = unserved + 1 if head is None else 0
                    if head is not None:
                        self.stats.polled += 1
                        async for accepted in self._accept(head):
                            yield accepted
            except ArbxError:  # every endpoint failed (already retried), or a node error
                self.stats.poll_errors += 1
            record.heartbeat()  # the loop is alive, even when the chain is idle
            await asyncio.sleep(self._poll_interval)

    # -- ordering ---------------------------------------------------------------------------

    async def _accept(self, head: Head | None) -> AsyncGenerator[Head]:
        """``head``, preceded by the blocks missing since the last one yielded."""
        if head is None:
            return
        last = self._last
        if self._yielded.get(head.number) == head.hash:
            self.stats.duplicates += 1
            return
        if last is not None and head.number <= last.number:
            self.stats.reorgs += 1
            for number in [n for n in self._yielded if n > head.number]:
                del self._yielded[number]  # those blocks are no longer the consumer's chain
        elif last is not None and head.number > last.number + 1:
            for start in range(last.number + 1, head.number, _FILL_CHUNK):
                stop = min(start + _FILL_CHUNK, head.number)
                blocks = await self._blocks(start, stop)
                if blocks and blocks[0] is None and head.number - start >= PRUNED_LAG:
                    self.stats.pruned_gaps += 1  # pruned: never served again; jump to the head
                    break
                for block in blocks:
                    if block is None:  # the node lacks it for now: the next head fills again
                        return
                    self.tip = max(self.tip, head.number)  # served: the gap is real
                    record.head_seen(self.tip)
                    self.stats.filled += 1
                    self._remember(block)
                    yield block
        self._remember(head)
        yield head

    def _remember(self, head: Head) -> None:
        self.tip = max(self.tip, head.number)
        record.head_seen(self.tip)
        self._last = head
        self._yielded[head.number] = head.hash
        self._yielded.pop(head.number - _REMEMBERED, None)
        if len(self._yielded) > 2 * _REMEMBERED:  # after a deep reorg or a jump: trim
            for number in [n for n in self._yielded if n <= head.number - _REMEMBERED]:
                del self._yielded[number]

    async def _latest(self) -> Head | None:
        return await self.client.call(
            "eth_getBlockByNumber", ["latest", False], decode=_block_or_none
        )

    async def _block(self, number: int) -> Head | None:
        return await self.client.call(
            "eth_getBlockByNumber", [hex(number), False], decode=_block_or_none
        )

    async def _served(self, number: int) -> Head:
        """Block ``number``, which the node announced: no block (null) is the endpoint's failure
        (the client asks the next one; TransientError when none serves it)."""
        self.stats.strict_polls += 1
        return await self.client.call(
            "eth_getBlockByNumber", [hex(number), False], decode=decode_head
        )

    async def _blocks(self, start: int, stop: int) -> list[Head | None]:
        requests = [("eth_getBlockByNumber", [hex(n), False]) for n in range(start, stop)]
        return await self.client.batch(requests, decode=_block_or_none)


def _notification(doc: Any, subscription: str) -> Any:
    """The header in a ``newHeads`` notification; None for a message about something else."""
    if type(doc) is not dict or doc.get("method") != "eth_subscription":
        if type(doc) is dict and "id" in doc:  # a late reply to some request: not ours to judge
            return None
        raise malformed("WebSocket message is not a subscription notification")
    params = doc.get("params")
    if type(params) is not dict or "result" not in params:
        raise malformed("notification without params.result")
    if params.get("subscription") != subscription:
        return None
    return params["result"]


def heads(
    client: RpcClient,
    *,
    poll_interval: float = 1.0,
    silence_timeout: float = 30.0,
    ws_retry_interval: float = 30.0,
    use_ws: bool = True,
) -> HeadStream:
    """Follow the chain's new heads through ``client``: ``async for head in heads(client)``."""
    return HeadStream(
        client,
        poll_interval=poll_interval,
        silence_timeout=silence_timeout,
        ws_retry_interval=ws_retry_interval,
        use_ws=use_ws,
    )
