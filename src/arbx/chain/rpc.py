"""An async JSON-RPC client over several endpoints, with health, failover, retries and batches.

Calls go to the first healthy endpoint, in the order given. A timeout, a dropped connection, a
5xx, a rate limit or a malformed answer marks that endpoint down and the call moves on at once
to the next endpoint it has not tried; when every endpoint has failed it waits (exponential
backoff with jitter) and starts another round, ``retries`` times at most, then raises
``TransientError``. A down endpoint is probed with ``eth_blockNumber`` (at most once per
``probe_interval``, while calls skip it) and used again as soon as it answers. One that fails
again within ``probe_max`` of coming back (a node that answers the probe but hangs or fails on
the calls the engine makes) has relapsed: its probe interval doubles with each relapse in a row,
up to ``probe_max``, so that it costs the calls one timeout now and then, not one every
``probe_interval``; a failure after ``probe_max`` of good health starts afresh.

With ``hedge_after`` set, a read (``READS``) that the endpoint has not answered within that
many seconds is also sent to the next healthy endpoint, and the first answer wins: a node that
hangs costs the call ``hedge_after``, not its ``timeout``. The slower request is left to finish
(bounded by ``timeout``), so that a hung endpoint is still found out and marked down; until it
ends, that endpoint is lagging and the calls go to the others first. Writes are never sent
twice.

A JSON-RPC error object from a node is an answer, not a failure: it raises ``RpcError`` (or
``ExecutionRevertedError`` for a revert) and is not retried, except the rate-limit codes in
``transient_codes``. An answer that is not JSON, has the wrong id, lacks both result and error,
is over the size cap or fails the caller's ``decode`` is counted as ``malformed`` and treated as
a failure of that endpoint: hostile answers never reach the caller as a raw exception.
"""

import asyncio
import itertools
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Final, Self, TypeVar, overload
from urllib.parse import urlsplit

from arbx.chain.transport import (
    AiohttpTransport,
    FailureKind,
    Transport,
    TransportError,
    WsChannel,
    dumps,
)
from arbx.domain.errors import ArbxError, ConfigError
from arbx.errors import SimulationRevertedError, TransientError
from arbx.metrics import record

T = TypeVar("T")

DEFAULT_TRANSIENT_CODES: Final = frozenset({-32005, 429})  # "limit exceeded", "too many requests"
REVERT_CODE: Final = 3  # geth and anvil: "execution reverted", revert data in ``data``
# the methods that change nothing at the node: only these are ever sent to a second endpoint
READS: Final = frozenset(
    {
        "eth_blockNumber",
        "eth_call",
        "eth_chainId",
        "eth_estimateGas",
        "eth_feeHistory",
        "eth_gasPrice",
        "eth_getBalance",
        "eth_getBlockByHash",
        "eth_getBlockByNumber",
        "eth_getCode",
        "eth_getLogs",
        "eth_getStorageAt",
        "eth_getTransactionByHash",
        "eth_getTransactionCount",
        "eth_getTransactionReceipt",
        "eth_maxPriorityFeePerGas",
    }
)


# -- errors -----------------------------------------------------------------------------------


class RpcError(ArbxError):
    """The node answered with a JSON-RPC error object (bad params, unknown method, revert)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


class ExecutionRevertedError(RpcError, SimulationRevertedError):
    """An ``eth_call`` or gas estimate reverted; ``data`` holds the revert bytes as hex."""


class _FailedError(Exception):
    """An exchange failed at the endpoints ``at`` (recorded on their health): the call goes
    on elsewhere."""

    def __init__(self, at: list["EndpointHealth"], cause: Exception) -> None:
        super().__init__(str(cause))
        self.at = at
        self.cause = cause


def rpc_error(error: dict[str, Any]) -> RpcError:
    """The typed error for a validated JSON-RPC error object."""
    code, message = error["code"], error["message"]
    if code == REVERT_CODE or message.startswith("execution reverted"):
        return ExecutionRevertedError(code, message, error.get("data"))
    return RpcError(code, message, error.get("data"))


# -- requests and answers -----------------------------------------------------------------------


_METHOD_NAMES: dict[str, bytes] = {}  # method -> its JSON string, for the methods seen


def request_body(request_id: int, method: str, params: Sequence[Any]) -> bytes:
    """One JSON-RPC request document (formatted directly: faster than encoding a dict)."""
    name = _METHOD_NAMES.get(method)
    if name is None:
        name = dumps(method)
        if len(_METHOD_NAMES) < 1024:
            _METHOD_NAMES[method] = name
    encoded = dumps(params) if params else b"[]"
    return b'{"jsonrpc":"2.0","id":%d,"method":%b,"params":%b}' % (request_id, name, encoded)


def malformed(detail: str) -> TransportError:
    """The failure for an answer that breaks the JSON-RPC shape."""
    return TransportError(FailureKind.MALFORMED, detail)


def parse_reply(doc: Any, request_id: int | None) -> Any:
    """The result of one JSON-RPC reply, or an ``RpcError`` instance for an error reply.

    Raises ``TransportError(MALFORMED)`` for anything else: not an object, another id (a bool
    or a float is not our int), no ``jsonrpc: "2.0"``, neither or both of result and error, an
    error object without an int code and a str message.
    """
    if type(doc) is not dict:
        raise malformed(f"reply is a {type(doc).__name__}, not an object")
    reply_id = doc.get("id")
    if reply_id != request_id or (request_id is not None and type(reply_id) is not int):
        raise malformed(f"reply id {reply_id!r} is not {request_id}")
    if doc.get("jsonrpc") != "2.0":
        raise malformed("reply lacks jsonrpc 2.0")
    error = doc.get("error")
    if error is None:
        if "result" not in doc:
            raise malformed("reply has neither result nor error")
        return doc["result"]
    if "result" in doc:
        raise malformed("reply has both result and error")
    if type(error) is not dict or type(error.get("code")) is not int:
        raise malformed("error object without an int code")
    if type(error.get("message")) is not str:
        raise malformed("error object without a str message")
    return rpc_error(error)


def parse_batch(doc: Any, request_ids: Sequence[int]) -> list[Any]:
    """The results of a batch reply in request order, matched by id (replies may be shuffled)."""
    if type(doc) is dict:  # the node refused the whole batch: an error object with id null
        whole = parse_reply(doc, None)
        if isinstance(whole, RpcError):
            raise whole
        raise malformed("batch answered with a single result")
    if type(doc) is not list:
        raise malformed(f"batch reply is a {type(doc).__name__}, not an array")
    if len(doc) != len(request_ids):
        raise malformed(f"batch reply has {len(doc)} items for {len(request_ids)} requests")
    position = {request_id: index for index, request_id in enumerate(request_ids)}
    missing = object()
    results: list[Any] = [missing] * len(request_ids)
    for item in doc:
        reply_id = item.get("id") if type(item) is dict else None
        index = position.get(reply_id) if type(reply_id) is int else None
        if index is None or results[index] is not missing:
            raise malformed(f"batch reply item with unknown or repeated id {reply_id!r}")
        results[index] = parse_reply(item, reply_id)
    return results


# -- strict hex -------------------------------------------------------------------------------

_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}").fullmatch
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}").fullmatch


def hex_int(value: Any) -> int:
    """A JSON-RPC quantity ("0x1b4", at most 256 bits) as an int; ValueError for anything else."""
    if type(value) is not str or _QUANTITY(value) is None:
        raise ValueError(f"not a hex quantity: {str(value)[:80]!r}")
    return int(value, 16)


def hex_bytes(value: Any) -> bytes:
    """JSON-RPC data ("0x", "0xdeadbeef") as bytes; ValueError for anything else."""
    if type(value) is not str or value[:2] != "0x":
        raise ValueError(f"not hex data: {str(value)[:80]!r}")
    data = bytes.fromhex(value[2:])  # ValueError for non-hex characters or odd length
    if 2 * len(data) != len(value) - 2:  # fromhex skips whitespace: refuse it
        raise ValueError(f"not hex data: {value[:80]!r}")
    return data


def hex_hash(value: Any) -> bytes:
    """A 32-byte hash ("0x" and 64 hex digits) as bytes; ValueError for anything else."""
    data = hex_bytes(value)
    if len(data) != 32:
        raise ValueError(f"not a 32-byte hash: {value[:80]!r}")
    return data


def hex_address(value: Any) -> str:
    """An address ("0x" and 40 hex digits) in lower case; ValueError for anything else."""
    if type(value) is not str or _ADDRESS(value) is None:
        raise ValueError(f"not an address: {str(value)[:80]!r}")
    return value.lower()


def to_quantity(value: int) -> str:
    """An int as a JSON-RPC quantity."""
    return hex(value)


def to_data(value: bytes) -> str:
    """Bytes (a hash, calldata) as JSON-RPC data: "0x" and lower-case hex."""
    return "0x" + value.hex()


def block_tag(block: int | str) -> str:
    """A block number as a quantity; a tag ("latest", "safe", a hash) as it is."""
    return hex(block) if isinstance(block, int) else block


# -- endpoints, health and counters -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One node: its HTTP(S) URL, an optional WebSocket URL, and a name for logs and metrics."""

    url: str
    ws_url: str | None = None
    name: str = ""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"RPC endpoint must be an http(s) URL, not {self.url!r}")
        if self.ws_url is not None and urlsplit(self.ws_url).scheme not in ("ws", "wss"):
            raise ConfigError(f"RPC WebSocket endpoint must be a ws(s) URL, not {self.ws_url!r}")
        if not self.name:
            object.__setattr__(self, "name", parts.netloc.rsplit("@", 1)[-1])

    @classmethod
    def of(cls, spec: "Endpoint | str") -> "Endpoint":
        """``spec`` itself, or an endpoint for an HTTP URL."""
        return spec if isinstance(spec, Endpoint) else cls(spec)


@dataclass(slots=True, eq=False)
class EndpointHealth:
    """What the client knows of one endpoint right now."""

    endpoint: Endpoint
    healthy: bool = True
    failing_since: float | None = None  # time.monotonic() of the first failure in a row
    consecutive_failures: int = 0
    last_latency: float | None = None  # seconds, of the last answered exchange
    last_error: str | None = None
    answered: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # by FailureKind
    last_probe: float = 0.0
    probing: bool = False
    recovered_at: float | None = None  # time.monotonic() when it last came back
    relapses: int = 0  # failures in a row, each within ``probe_max`` of coming back
    lagging: bool = False  # a hedged read it still holds was answered by another endpoint

    @property
    def usable(self) -> bool:
        """Healthy, and not holding a read another endpoint answered first."""
        return self.healthy and not self.lagging


@dataclass(slots=True)
class RpcStats:
    """Counters for metrics: what the client did and what it survived."""

    calls: int = 0  # call() and batch() invocations
    batch_items: int = 0
    requests: int = 0  # exchanges attempted, probes excluded
    retries: int = 0  # exchanges after the first of a call
    failovers: int = 0  # retries that moved to another endpoint
    exhausted: int = 0  # calls that failed on every endpoint, every round
    malformed: int = 0  # answers that broke the protocol (oversize included)
    timeouts: int = 0
    rate_limited: int = 0
    rpc_errors: int = 0  # error objects handed to the caller
    probes: int = 0
    recoveries: int = 0  # endpoints back to healthy
    hedges: int = 0  # reads sent to a second endpoint, the first being slow to answer
    hedges_won: int = 0  # hedged reads the second endpoint answered first

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return asdict(self)


def backoff_delay(round_: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry round ``round_`` (0-based): equal jitter, capped."""
    ceiling = min(cap, base * 2.0**round_)
    return ceiling / 2.0 + rng.uniform(0.0, ceiling / 2.0)


# -- the client -------------------------------------------------------------------------------


class RpcClient:
    """JSON-RPC over HTTP to the first healthy of several endpoints; an async context manager."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint | str],
        *,
        timeout: float = 2.0,
        retries: int = 3,
        backoff_base: float = 0.05,
        backoff_max: float = 1.0,
        probe_interval: float = 1.0,
        probe_max: float = 30.0,
        max_batch: int = 100,
        hedge_after: float | None = None,
        ws_calls: bool = False,
        transient_codes: Iterable[int] = DEFAULT_TRANSIENT_CODES,
        transport: Transport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not endpoints:
            raise ConfigError("at least one RPC endpoint is needed")
        self.health = tuple(EndpointHealth(Endpoint.of(spec)) for spec in endpoints)
        self.stats = RpcStats()
        self.transport: Transport = transport if transport is not None else AiohttpTransport()
        self.timeout = timeout
        self._retries = retries
        self._backoff = (backoff_base, backoff_max)
        self._probe_interval = probe_interval
        self._probe_max = max(probe_max, probe_interval)
        self._max_batch = max_batch
        self._hedge_after = hedge_after if hedge_after else None
        self._stragglers: set[asyncio.Future[Any]] = set()  # hedged requests that lost
        self._transient = frozenset(transient_codes)
        self._rng = rng if rng is not None else random.Random()
        self._ids = itertools.count(1)
        self._chain_id: int | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self._ws_calls = ws_calls
        self._channels: dict[str, asyncio.Task[WsChannel]] = {}  # ws URL -> channel (opening)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the health probes and release every connection."""
        for task in [*self._probes, *self._stragglers]:
            task.cancel()
        await asyncio.gather(*self._probes, *self._stragglers, return_exceptions=True)
        channels, self._channels = list(self._channels.values()), {}
        for channel in await asyncio.gather(*channels, return_exceptions=True):
            if isinstance(channel, WsChannel):
                await channel.close()
        await self.transport.close()

    # -- requests ---------------------------------------------------------------------------

    @overload
    async def call(self, method: str, params: Sequence[Any] = (), *, decode: None = None) -> Any:
        pass

    @overload
    async def call(
        self, method: str, params: Sequence[Any] = (), *, decode: Callable[[Any], T]
    ) -> T:
        pass

    async def call(
        self, method: str, params: Sequence[Any] = (), *, decode: Callable[[Any], Any] | None = None
    ) -> Any:
        """The result of ``method(params)``; ``decode`` runs on it, and refusing it is a failure."""
        self.stats.calls += 1
        request_id = next(self._ids)
        body = request_body(request_id, method, params)

        def interpret(doc: Any) -> Any:
            result = parse_reply(doc, request_id)
            if isinstance(result, RpcError):
                raise result
            return result if decode is None else _decoded(decode, result)

        return await self._exchange(method, body, (request_id,), interpret, method in READS)

    async def batch(
        self,
        requests: Sequence[tuple[str, Sequence[Any]]],
        *,
        decode: Callable[[Any], Any] | None = None,
        return_errors: bool = False,
    ) -> list[Any]:
        """The results of ``requests`` in order, sent as JSON arrays of at most ``max_batch``.

        An item answered with an error raises its ``RpcError`` (after the whole batch is in), or
        with ``return_errors`` stands in the list as the ``RpcError`` instance. ``decode`` runs on
        every result that is not an error.
        """
        self.stats.calls += 1
        self.stats.batch_items += len(requests)
        size = self._max_batch
        chunks = [requests[start : start + size] for start in range(0, len(requests), size)]
        parts = await asyncio.gather(*(self._batch_chunk(chunk, decode) for chunk in chunks))
        results = [result for part in parts for result in part]
        if not return_errors:
            for result in results:
                if isinstance(result, RpcError):
                    raise result
        return results

    async def _batch_chunk(
        self, requests: Sequence[tuple[str, Sequence[Any]]], decode: Callable[[Any], Any] | None
    ) -> list[Any]:
        ids = [next(self._ids) for _ in requests]
        body = b"[%b]" % b",".join(
            request_body(request_id, method, params)
            for request_id, (method, params) in zip(ids, requests, strict=True)
        )

        def interpret(doc: Any) -> list[Any]:
            results = parse_batch(doc, ids)
            for index, result in enumerate(results):
                if isinstance(result, RpcError):
                    if result.code in self._transient:
                        raise result  # the whole batch goes elsewhere
                elif decode is not None:
                    results[index] = _decoded(decode, result)
            return results

        what = f"batch of {len(requests)}"
        reads = all(method in READS for method, _ in requests)
        result: list[Any] = await self._exchange(what, body, ids, interpret, reads)
        return result

    async def _exchange(
        self,
        what: str,
        body: bytes,
        ids: Sequence[int],
        interpret: Callable[[Any], T],
        hedge: bool = False,
    ) -> T:
        """Send ``body`` until an endpoint answers in a way ``interpret`` accepts (a read, with
        ``hedge``, also to a second endpoint when the first is slow)."""
        stats = self.stats
        health = self._preferred()
        tried: list[EndpointHealth] = []
        round_ = 0
        while True:
            try:
                return await self._hedged(health, tried, what, body, ids, interpret, hedge)
            except _FailedError as failed:
                last: Exception = failed.cause
                tried += [h for h in failed.at if all(h is not t for t in tried)]
            following = self._next(tried)
            if following is None:
                if round_ >= self._retries:
                    stats.exhausted += 1
                    raise TransientError(f"{what}: every RPC endpoint failed: {last}") from last
                await asyncio.sleep(backoff_delay(round_, *self._backoff, self._rng))
                round_ += 1
                tried.clear()
                following = self._preferred()
            stats.retries += 1
            if following is not health:
                stats.failovers += 1
                record.rpc_failover()
            health = following

    async def _hedged(
        self,
        health: EndpointHealth,
        tried: list[EndpointHealth],
        what: str,
        body: bytes,
        ids: Sequence[int],
        interpret: Callable[[Any], T],
        hedge: bool,
    ) -> T:
        """One exchange with ``health``; if it has not answered within ``hedge_after``, one with
        the next healthy endpoint not tried yet as well: the first answer wins, and the other
        request is left to finish (its endpoint's health is learned from it)."""
        if not hedge or self._hedge_after is None:  # no task of its own: the common case
            return await self._attempt(health, what, body, ids, interpret)
        first = asyncio.ensure_future(self._attempt(health, what, body, ids, interpret))
        try:
            await asyncio.wait({first}, timeout=self._hedge_after)
        except BaseException:  # the caller was cancelled
            first.cancel()
            raise
        if first.done():
            return first.result()
        spare = next(
            (
                h
                for h in self.health
                if h.usable and h is not health and all(h is not t for t in tried)
            ),
            None,
        )
        if spare is None:
            return await first
        self.stats.hedges += 1
        record.rpc_hedge()
        second = asyncio.ensure_future(self._attempt(spare, what, body, ids, interpret))
        racing = {first, second}
        failures: list[_FailedError] = []
        try:
            while racing:
                done, racing = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
                for task in (t for t in (first, second) if t in done):
                    failure = task.exception()
                    if isinstance(failure, _FailedError):
                        failures.append(failure)
                        continue
                    if task is second:  # the next calls go elsewhere until the first answers
                        self.stats.hedges_won += 1
                        health.lagging = True
                    for straggler in racing:  # bounded by its timeout
                        self._stragglers.add(straggler)
                        straggler.add_done_callback(self._straggler_done)
                    racing = set()
                    return task.result()  # the result, or the node's error object raised
        finally:
            for task in racing:  # the caller was cancelled
                task.cancel()
        raise _FailedError([h for f in failures for h in f.at], failures[-1].cause)

    def _straggler_done(self, task: asyncio.Future[Any]) -> None:
        self._stragglers.discard(task)
        if not task.cancelled():
            task.exception()  # recorded on its endpoint's health already

    async def _attempt(
        self,
        health: EndpointHealth,
        what: str,
        body: bytes,
        ids: Sequence[int],
        interpret: Callable[[Any], T],
    ) -> T:
        """One exchange with ``health``: the answer ``interpret`` makes of it (a node's error
        object raised as it is); a failure is recorded on ``health`` and raised as
        ``_FailedError``."""
        stats = self.stats
        stats.requests += 1
        started = time.perf_counter()
        ws_url = health.endpoint.ws_url if self._ws_calls else None
        ok = False
        try:
            if ws_url is None:
                doc = await self.transport.post(health.endpoint.url, body, self.timeout)
            else:
                doc = await (await self._channel(ws_url)).request(body, ids, self.timeout)
            result = interpret(doc)
        except TransportError as failure:
            self._failed(health, failure.kind, str(failure))
            raise _FailedError([health], failure) from None
        except RpcError as error:
            if error.code not in self._transient:
                self._answered(health, started)
                stats.rpc_errors += 1
                ok = True  # the node answered; the error is the caller's
                raise
            self._failed(health, FailureKind.RATE_LIMITED, str(error))
            raise _FailedError([health], error) from None
        else:
            self._answered(health, started)
            ok = True
            return result
        finally:
            self._measure(health, what, ok, started)

    async def _channel(self, ws_url: str) -> WsChannel:
        """The open request channel to ``ws_url``, opened (once, for every caller) if needed."""
        opening = self._channels.get(ws_url)
        if (
            opening is not None
            and opening.done()
            and (opening.exception() is not None or opening.result().closed)
        ):
            if opening.exception() is None:
                await opening.result().close()
            opening = None
        if opening is None:
            opening = asyncio.ensure_future(self._open_channel(ws_url))
            self._channels[ws_url] = opening
        return await asyncio.shield(opening)  # one caller's timeout must not cancel the others'

    async def _open_channel(self, ws_url: str) -> WsChannel:
        return WsChannel(await self.transport.websocket(ws_url, self.timeout))

    # -- health -----------------------------------------------------------------------------

    def _preferred(self) -> EndpointHealth:
        """The first healthy endpoint not lagging, else the first healthy one, else the first;
        schedules probes of the down ones skipped."""
        for health in self.health:
            if not health.healthy:
                self._maybe_probe(health)
        return _first_best(self.health)

    def _next(self, tried: list[EndpointHealth]) -> EndpointHealth | None:
        """The next endpoint to try in this round: healthy ones first, then the down ones."""
        untried = [health for health in self.health if all(health is not t for t in tried)]
        return _first_best(untried) if untried else None

    def _measure(self, health: EndpointHealth, what: str, ok: bool, started: float) -> None:
        """One exchange as metrics: the endpoint by index (never its URL), the method."""
        index = next(i for i, h in enumerate(self.health) if h is health)
        method = "batch" if what.startswith("batch") else what
        record.rpc_request(record.endpoint_label(index), method, ok, time.perf_counter() - started)

    def _answered(self, health: EndpointHealth, started: float) -> None:
        health.last_latency = time.perf_counter() - started
        health.answered += 1
        health.lagging = False
        if not health.healthy:
            health.healthy = True
            health.failing_since = None
            health.recovered_at = time.monotonic()
            self.stats.recoveries += 1
        health.consecutive_failures = 0

    def _failed(self, health: EndpointHealth, kind: FailureKind, detail: str) -> None:
        now = time.monotonic()
        health.errors[kind] += 1
        health.consecutive_failures += 1
        health.last_error = detail
        health.last_probe = now
        health.lagging = False
        if health.healthy:
            back = health.recovered_at
            relapsed = back is not None and now - back < self._probe_max
            health.relapses = health.relapses + 1 if relapsed else 0
            health.healthy = False
            health.failing_since = now
        stats = self.stats
        if kind in (FailureKind.MALFORMED, FailureKind.OVERSIZE):
            stats.malformed += 1
        elif kind is FailureKind.TIMEOUT:
            stats.timeouts += 1
        elif kind is FailureKind.RATE_LIMITED:
            stats.rate_limited += 1

    def _probe_wait(self, health: EndpointHealth) -> float:
        """Seconds between two probes of ``health``: doubled by each relapse, capped."""
        return min(self._probe_max, self._probe_interval * 2.0 ** min(health.relapses, 32))

    def _maybe_probe(self, health: EndpointHealth) -> None:
        if health.probing or time.monotonic() - health.last_probe < self._probe_wait(health):
            return
        health.probing = True
        task = asyncio.get_running_loop().create_task(self._probe(health))
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(self, health: EndpointHealth) -> None:
        """Ask a down endpoint for ``eth_blockNumber``; a valid answer brings it back."""
        self.stats.probes += 1
        request_id = next(self._ids)
        body = request_body(request_id, "eth_blockNumber", ())
        started = time.perf_counter()
        try:
            doc = await self.transport.post(health.endpoint.url, body, self.timeout)
            result = parse_reply(doc, request_id)
            if isinstance(result, RpcError):
                raise TransportError(FailureKind.HTTP_STATUS, f"probe answered {result}")
            _decoded(hex_int, result)
        except TransportError as failure:
            self._failed(health, failure.kind, str(failure))
        else:
            self._answered(health, started)
        finally:
            health.probing = False

    # -- common calls -----------------------------------------------------------------------

    async def block_number(self) -> int:
        """The number of the latest block."""
        return await self.call("eth_blockNumber", (), decode=hex_int)

    async def chain_id(self) -> int:
        """The chain id, asked once and cached."""
        if self._chain_id is None:
            self._chain_id = await self.call("eth_chainId", (), decode=hex_int)
        return self._chain_id


def _first_best(healths: Sequence[EndpointHealth]) -> EndpointHealth:
    """The first usable of ``healths`` (healthy, not lagging), else the first healthy one, else
    the first."""
    return next((h for h in healths if h.usable), None) or next(
        (h for h in healths if h.healthy), healths[0]
    )


def _decoded(decode: Callable[[Any], T], result: Any) -> T:
    """``decode(result)``, any refusal of it a malformed answer."""
    try:
        return decode(result)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise malformed(f"result refused: {exc}") from exc


# -- helpers for the sync code ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Log:
    """One event log; ``address`` is lower-case hex, hashes and data are bytes."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: bytes
    transaction_hash: bytes
    transaction_index: int
    log_index: int
    removed: bool


def decode_log(raw: Any) -> Log:
    """A ``Log`` from one ``eth_getLogs`` item; ValueError, TypeError or KeyError if malformed."""
    removed = raw.get("removed", False)
    if type(removed) is not bool:
        raise TypeError("removed is not a bool")
    topics = raw["topics"]
    if type(topics) is not list or len(topics) > 4:
        raise TypeError("topics is not a list of at most 4")
    return Log(
        address=hex_address(raw["address"]),
        topics=tuple(hex_hash(topic) for topic in topics),
        data=hex_bytes(raw["data"]),
        block_number=hex_int(raw["blockNumber"]),
        block_hash=hex_hash(raw["blockHash"]),
        transaction_hash=hex_hash(raw["transactionHash"]),
        transaction_index=hex_int(raw["transactionIndex"]),
        log_index=hex_int(raw["logIndex"]),
        removed=removed,
    )


def decode_logs(raw: Any) -> list[Log]:
    """An ``eth_getLogs`` result; TypeError, ValueError or KeyError if malformed."""
    if type(raw) is not list:
        raise TypeError("eth_getLogs result is not a list")
    return [decode_log(item) for item in raw]


async def get_logs(
    client: RpcClient,
    from_block: int | str,
    to_block: int | str,
    addresses: Sequence[str] | None = None,
    topics: Sequence[str | Sequence[str] | None] | None = None,
) -> list[Log]:
    """The logs of blocks ``from_block``..``to_block`` (inclusive) matching the filter."""
    query: dict[str, Any] = {"fromBlock": block_tag(from_block), "toBlock": block_tag(to_block)}
    if addresses is not None:
        query["address"] = list(addresses)
    if topics is not None:
        query["topics"] = [t if t is None or isinstance(t, str) else list(t) for t in topics]
    return await client.call("eth_getLogs", [query], decode=decode_logs)


async def eth_call(
    client: RpcClient, to: str, data: bytes | str, block: int | str = "latest"
) -> bytes:
    """What calling ``to`` with ``data`` returns at ``block``; raises ExecutionRevertedError."""
    payload = data if isinstance(data, str) else to_data(data)
    return await client.call(
        "eth_call", [{"to": to, "data": payload}, block_tag(block)], decode=hex_bytes
    )
