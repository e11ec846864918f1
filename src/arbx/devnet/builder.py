"""A local block builder for the devnet: Flashbots-style bundles over anvil, all or nothing.

``LocalBuilder`` serves JSON-RPC on 127.0.0.1: ``eth_sendBundle``, ``eth_callBundle`` and
``eth_cancelBundle`` (each request must carry a valid ``X-Flashbots-Signature``), ``evm_mine``
(builds a block), ``devnet_hold`` and ``devnet_release`` (below), and passes every other method
through to anvil, so a process that points at the builder sees one node. It takes over block
production: ``start`` switches anvil's automine and interval mining off (requests through the
builder to switch them on are answered and ignored), and blocks are made only by
``build_block`` (from the devnet's block loop, ``mine_every``, or ``evm_mine`` through the
builder). Transactions sent through the builder wait while a block is being built; anvil's pool
must hold only validly signed transactions (no impersonated senders), since it is resubmitted
from raw bytes.

``build_block`` for block N = head + 1:

1. Simulate each bundle for N alone on the head state (``builder_sim.simulate``: nothing is
   mined); a bundle whose transaction fails and is not in its ``revertingTxHashes``, or that
   cannot run (nonce, fee cap, funds, timestamps), is dropped whole.
2. Greedily take bundles by what they pay the coinbase per gas (the balance change of the
   simulation, priority fees included, over its gas used), highest first; ties by payment in
   all, then by bundle hash, so the order never depends on arrival. Skip any that shares a
   transaction with one taken; simulate each again after those taken before it and drop it if
   it then fails (a lower bid on an opportunity a better one already took reverts).
3. Empty anvil's pool (keeping the raw transactions, in the order anvil would mine them), send
   the bundles' transactions, then resubmit the pool's (skipping any with a bundle
   transaction's hash or sender and nonce), set the timestamp the simulation used, ``evm_mine``.

Ordering: anvil must run with ``--order fifo`` (``start`` checks ``anvil_nodeInfo``). With the
default ``fees`` order anvil sorts the pool by fee cap, and a bundle with lower fees than the
public transactions lands below them (checked on anvil 1.7.1); in FIFO order a transaction is
mined in the order it was sent, its sender's earlier nonces first, so the bundle sent into an
empty pool is on top, in order. The block is then checked: if the bundle transactions are not
its first ones, or one failed that may not, the block is rolled back (``anvil_rollback``) and
made again with the pool alone, and ``stats.violations`` counts it.

Holding: ``devnet_hold [SECONDS]`` answers once no block is being built and none will be until
``devnet_release`` (or SECONDS, at most ``MAX_HOLD_SECONDS``, have passed: a holder that died
does not stop the chain for good); with the market's lock (``hold``, the market simulator's in
the same process) it also waits for the market's step in progress and holds the next. Whoever
rewrites the chain (``anvil_reorg``, ``evm_revert``) holds it meanwhile: anvil reorging while a
block is built leaves blocks it no longer serves under the new head's parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web
from eth_utils.crypto import keccak

from arbx.chain.rpc import RpcClient, hex_hash, hex_int
from arbx.chain.transport import TransportError, decode_json, dumps
from arbx.devnet.builder_sim import (
    BlockEnv,
    PoolTx,
    Run,
    call_bundle_answer,
    next_env,
    put_back,
    simulate,
    take_mempool,
)
from arbx.domain.errors import ArbxError, ConfigError
from arbx.execution.flashbots import (
    FLASHBOTS_HEADER,
    BundleRequest,
    CallBundleRequest,
    parse_call_bundle_request,
    parse_cancel,
    parse_send_bundle,
    verify_flashbots_signature,
)
from arbx.execution.rawtx import RawTx

BUILDER_COINBASE: Final = "0x000000000000000000000000000000000000b1d5"
MAX_REQUEST_BYTES: Final = 1024 * 1024
MAX_HOLD_SECONDS: Final = 120.0  # the longest lease of devnet_hold
HOLD_WAIT: Final = 30.0  # seconds devnet_hold waits for the market's step in progress
_BUNDLE_METHODS: Final = frozenset({"eth_sendBundle", "eth_callBundle", "eth_cancelBundle"})
_WRITES: Final = frozenset({"eth_sendRawTransaction", "eth_sendTransaction"})
_HOLD_METHODS: Final = frozenset({"devnet_hold", "devnet_release"})
_MINING_SWITCHES: Final = frozenset(
    {"evm_setAutomine", "anvil_setAutomine", "evm_setIntervalMining", "anvil_setIntervalMining"}
)


class _RefusedError(Exception):
    """A request the builder answers with a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class _Bundle:
    hash: bytes
    request: BundleRequest
    signer: str
    seq: int

    @property
    def txs(self) -> tuple[RawTx, ...]:
        return self.request.txs


@dataclass(frozen=True, slots=True)
class BuiltBlock:
    """What ``build_block`` made."""

    number: int
    hash: bytes
    transactions: tuple[bytes, ...]
    bundles: tuple[bytes, ...]  # bundle hashes included, top of the block first
    dropped: dict[bytes, str]  # bundle hash -> why it was left out
    mempool: int  # pool transactions resubmitted after the bundles


@dataclass(slots=True)
class BuilderStats:
    """Counters for tests and logs."""

    received: int = 0
    replaced: int = 0
    cancelled: int = 0
    past_block: int = 0
    refused_signature: int = 0
    invalid: int = 0
    simulated: int = 0
    included: int = 0
    dropped: int = 0
    expired: int = 0
    blocks: int = 0
    violations: int = 0
    pool_refused: int = 0
    mining_switches_ignored: int = 0
    by_signer: dict[str, int] = field(default_factory=dict)


def _reply(request_id: Any, result: Any = None, error: tuple[int, str] | None = None) -> bytes:
    doc: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if error is None:
        doc["result"] = result
    else:
        doc["error"] = {"code": error[0], "message": error[1]}
    return bytes(dumps(doc))


def _response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


class LocalBuilder:
    """A Flashbots-style builder over one anvil; an async context manager."""

    def __init__(
        self,
        anvil_url: str,
        *,
        coinbase: str = BUILDER_COINBASE,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = 30.0,
        hold: threading.Lock | None = None,
    ) -> None:
        self.anvil_url = anvil_url
        self.market_hold = hold  # the market's lock (no step while held), held by devnet_hold
        self.coinbase = coinbase.lower()
        self.stats = BuilderStats()
        self.last_block: BuiltBlock | None = None
        self.rpc = RpcClient([anvil_url], timeout=timeout, retries=0)
        self._host, self._port = host, port
        self._bundles: dict[int, _Bundle] = {}  # by arrival number: one per (bundle, block)
        self._seq = 0
        self._lock = asyncio.Lock()
        self._blocks = asyncio.Lock()  # held by build_block, and by devnet_hold until release
        self._lease: asyncio.TimerHandle | None = None  # the hold's end, while held
        self._holding = False
        self._runner: web.AppRunner | None = None
        self._chain_id = 0
        self._restore: list[tuple[str, list[Any]]] = []

    @property
    def url(self) -> str:
        """The builder's JSON-RPC endpoint."""
        return f"http://{self._host}:{self._port}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Check anvil (FIFO order), take over its block production, and start serving."""
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        info = await self.rpc.call("anvil_nodeInfo")
        order = info.get("transactionOrder") if isinstance(info, dict) else None
        if order != "fifo":
            raise ConfigError(f"the local builder needs anvil --order fifo (it runs {order!r})")
        self._chain_id = await self.rpc.chain_id()
        if await self.rpc.call("anvil_getAutomine") is True:
            self._restore.append(("evm_setAutomine", [True]))
        interval = await self.rpc.call("anvil_getIntervalMining")
        if interval:
            self._restore.append(("evm_setIntervalMining", [interval]))
        await self.rpc.call("evm_setAutomine", [False])
        await self.rpc.call("evm_setIntervalMining", [0])
        await self.rpc.call("anvil_setCoinbase", [self.coinbase])
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop serving, give block production back to anvil as it was, release connections."""
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for method, params in self._restore:
            with contextlib.suppress(ArbxError):
                await self.rpc.call(method, params)
        self._restore.clear()
        await self.rpc.close()

    async def mine_every(self, interval: float, stop: asyncio.Event) -> None:
        """Build a block every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            await self.build_block()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    # -- JSON-RPC ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            doc = decode_json(body)
        except TransportError:
            return _response(_reply(None, error=(-32700, "parse error")), 400)
        if type(doc) is list:
            return await self._batch(doc, body)
        if type(doc) is not dict or type(doc.get("method")) is not str:
            return _response(_reply(None, error=(-32600, "invalid request")), 400)
        method, request_id = doc["method"], doc.get("id")
        try:
            if method in _BUNDLE_METHODS:
                return await self._bundle_method(request, body, doc)
            if method == "evm_mine":
                await self.build_block()
                return _response(_reply(request_id, "0x0"))
            if method == "devnet_hold":
                await self.hold(_lease(doc.get("params")))
                return _response(_reply(request_id, True))
            if method == "devnet_release":
                return _response(_reply(request_id, self.release()))
            if method in _MINING_SWITCHES:  # blocks are the builder's: anvil must not mine alone
                self.stats.mining_switches_ignored += 1
                return _response(_reply(request_id, None))
            return await self._proxy(body, write=method in _WRITES)
        except _RefusedError as refused:
            return _response(_reply(request_id, error=(refused.code, refused.message)))
        except (ArbxError, ValueError, TypeError, KeyError) as exc:
            return _response(_reply(request_id, error=(-32000, f"builder failed: {exc}")))

    async def _batch(self, items: list[Any], body: bytes) -> web.Response:
        methods = {item.get("method") for item in items if type(item) is dict}
        if methods & (_BUNDLE_METHODS | _HOLD_METHODS | {"evm_mine"}):
            message = "bundle methods, evm_mine and the hold are not accepted in a batch"
            return _response(_reply(None, error=(-32600, message)), 400)
        return await self._proxy(body, write=bool(methods & _WRITES))

    async def _proxy(self, body: bytes, *, write: bool) -> web.Response:
        """Pass a request to anvil; a write waits for a block being built."""
        try:
            if write:
                async with self._lock:
                    doc = await self.rpc.transport.post(self.anvil_url, body, self.rpc.timeout)
            else:
                doc = await self.rpc.transport.post(self.anvil_url, body, self.rpc.timeout)
        except TransportError as failure:
            return _response(_reply(None, error=(-32000, f"anvil: {failure}")), 502)
        return _response(bytes(dumps(doc)))

    async def _bundle_method(
        self, request: web.Request, body: bytes, doc: dict[str, Any]
    ) -> web.Response:
        request_id, method, params = doc.get("id"), doc["method"], doc.get("params")
        try:
            signer = verify_flashbots_signature(request.headers.get(FLASHBOTS_HEADER), body)
        except ValueError as exc:
            self.stats.refused_signature += 1
            return _response(_reply(request_id, error=(-32600, str(exc))), 403)
        self.stats.by_signer[signer] = self.stats.by_signer.get(signer, 0) + 1
        try:
            if method == "eth_sendBundle":
                self.stats.received += 1
                result = await self._send_bundle(parse_send_bundle(params), signer)
            elif method == "eth_callBundle":
                result = await self._call_bundle(parse_call_bundle_request(params))
            else:
                result = None
                self._cancel(signer, parse_cancel(params))
        except ValueError as exc:
            self.stats.invalid += 1
            raise _RefusedError(-32602, str(exc)) from exc
        return _response(_reply(request_id, result))

    async def _send_bundle(self, request: BundleRequest, signer: str) -> Any:
        if not request.txs:  # an empty bundle with a uuid: the cancel of some builders
            self._cancel(signer, request.uuid)
            return None
        bundle_hash = keccak(b"".join(tx.hash for tx in request.txs))
        answer = {"bundleHash": "0x" + bundle_hash.hex()}
        async with self._lock:
            if request.block_number <= await self.rpc.block_number():
                self.stats.past_block += 1  # acknowledged, as relays do, and never built
                return answer
            if request.uuid is not None and self._cancel(signer, request.uuid, count=False):
                self.stats.replaced += 1
            self._seq += 1
            self._bundles[self._seq] = _Bundle(bundle_hash, request, signer, self._seq)
        return answer

    def _cancel(self, signer: str, uuid: str | None, *, count: bool = True) -> bool:
        """Remove the bundle ``signer`` sent under ``uuid``; True if there was one."""
        found = [
            seq for seq, b in self._bundles.items() if b.signer == signer and b.request.uuid == uuid
        ]
        for seq in found:
            del self._bundles[seq]
        if count and found:
            self.stats.cancelled += 1
        return bool(found)

    async def _call_bundle(self, request: CallBundleRequest) -> dict[str, Any]:
        async with self._lock:
            env = await next_env(
                self.rpc,
                self.coinbase,
                request.state_block,
                request.block_number,
                request.timestamp,
            )
            run = await simulate(self.rpc, request.txs, env, self._chain_id)
        self.stats.simulated += 1
        if run.error is not None:
            raise _RefusedError(-32000, run.error)
        return call_bundle_answer(request.txs, run, env)

    # -- holding -----------------------------------------------------------------------------

    async def hold(self, lease: float = MAX_HOLD_SECONDS) -> None:
        """Return once no block is being built (nor, with the market's lock, a market step run)
        and none will be until ``release`` or ``lease`` seconds from now."""
        if self._holding:
            raise _RefusedError(-32000, "the builder is held already")
        self._holding = True
        try:
            if self.market_hold is not None:
                await _acquire(self.market_hold)
            try:
                await self._blocks.acquire()
            except BaseException:
                if self.market_hold is not None:
                    self.market_hold.release()
                raise
        except BaseException:
            self._holding = False
            raise
        self._lease = asyncio.get_running_loop().call_later(lease, self.release)

    def release(self) -> bool:
        """End the hold; whether there was one (its lease may have ended it)."""
        if self._lease is None:
            return False
        self._lease.cancel()
        self._lease = None
        self._blocks.release()
        if self.market_hold is not None:
            self.market_hold.release()
        self._holding = False
        return True

    # -- blocks ------------------------------------------------------------------------------

    async def build_block(self) -> BuiltBlock:
        """Build and mine the next block: the best bundles on top, then the pool."""
        async with self._blocks, self._lock:
            env = await next_env(self.rpc, self.coinbase)
            for seq in [s for s, b in self._bundles.items() if b.request.block_number < env.number]:
                del self._bundles[seq]
                self.stats.expired += 1
            candidates = [b for b in self._bundles.values() if b.request.block_number == env.number]
            accepted, dropped = await self._choose(candidates, env)
            mempool = await take_mempool(self.rpc)
            try:
                built = await self._mine(env, accepted, mempool)
            except Exception:
                await put_back(self.rpc, mempool)  # leave nobody's transaction behind
                raise
            for bundle in candidates:
                self._bundles.pop(bundle.seq, None)
        built = dataclasses.replace(built, dropped=dropped)
        self.stats.blocks += 1
        self.stats.included += len(built.bundles)
        self.stats.dropped += len(dropped)
        self.last_block = built
        return built

    async def _choose(
        self, candidates: list[_Bundle], env: BlockEnv
    ) -> tuple[list[_Bundle], dict[bytes, str]]:
        """The bundles for the block, in order, and why the others were left out."""
        dropped: dict[bytes, str] = {}
        scored: list[tuple[tuple[int, int, bytes, int], _Bundle]] = []
        for bundle in candidates:
            reason = _timestamp_problem(bundle, env)
            if reason is None:
                run = await simulate(self.rpc, bundle.txs, env, self._chain_id)
                self.stats.simulated += 1
                reason = _failure(bundle, run, 0)
                if reason is None:
                    scored.append((_rank(run, bundle), bundle))
            if reason is not None:
                dropped[bundle.hash] = reason
        scored.sort(key=lambda item: item[0])
        accepted: list[_Bundle] = []
        used: set[bytes] = set()
        for _, bundle in scored:
            hashes = {tx.hash for tx in bundle.txs}
            if hashes & used:
                dropped[bundle.hash] = "shares a transaction with a better-paying bundle"
                continue
            if accepted:
                prefix = [tx for taken in accepted for tx in taken.txs]
                run = await simulate(self.rpc, [*prefix, *bundle.txs], env, self._chain_id)
                self.stats.simulated += 1
                reason = _failure(bundle, run, len(prefix))
                if reason is not None:
                    dropped[bundle.hash] = f"after the bundles above it: {reason}"
                    continue
            accepted.append(bundle)
            used |= hashes
        return accepted, dropped

    async def _mine(self, env: BlockEnv, accepted: list[_Bundle], pool: list[PoolTx]) -> BuiltBlock:
        """Send the bundles, then the pool; mine; check the top of the block, undo if wrong."""
        top = [tx for bundle in accepted for tx in bundle.txs]
        for tx in top:
            await self.rpc.call("eth_sendRawTransaction", ["0x" + tx.raw.hex()])
        claimed = {"0x" + tx.hash.hex() for tx in top}
        slots = {(tx.sender, tx.nonce) for tx in top}
        rest = [p for p in pool if p.hash not in claimed and (p.sender, p.nonce) not in slots]
        self.stats.pool_refused += await put_back(self.rpc, rest)
        block = await self._mine_one(env)
        problem = await self._top_problem(block, accepted)
        if problem is not None:
            self.stats.violations += 1
            await self.rpc.call("anvil_rollback", [1])
            await self.rpc.call("anvil_dropAllTransactions")
            await put_back(self.rpc, pool)
            block = await self._mine_one(env)
            accepted = []
        hashes = tuple(hex_hash(h) for h in block["transactions"])
        return BuiltBlock(
            hex_int(block["number"]),
            hex_hash(block["hash"]),
            hashes,
            tuple(b.hash for b in accepted),
            {},
            len(hashes) - len(top) if accepted else len(hashes),
        )

    async def _mine_one(self, env: BlockEnv) -> dict[str, Any]:
        await self.rpc.call("evm_setNextBlockTimestamp", [env.timestamp])
        await self.rpc.call("evm_mine")
        block: dict[str, Any] = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
        if hex_int(block["number"]) != env.number:
            raise ArbxError(f"mined block {block['number']}, expected {env.number}")
        return block

    async def _top_problem(self, block: dict[str, Any], accepted: list[_Bundle]) -> str | None:
        """Why the block's top is not the accepted bundles, in order and as simulated."""
        top = [tx for bundle in accepted for tx in bundle.txs]
        mined = [hex_hash(h) for h in block["transactions"][: len(top)]]
        if mined != [tx.hash for tx in top]:
            return "the bundle transactions are not the top of the block"
        if not top:
            return None
        receipts = await self.rpc.batch(
            [("eth_getTransactionReceipt", ["0x" + tx.hash.hex()]) for tx in top]
        )
        statuses = iter(hex_int(r["status"]) for r in receipts)
        for bundle in accepted:
            for tx in bundle.txs:
                if next(statuses) != 1 and tx.hash not in bundle.request.reverting:
                    return f"0x{tx.hash.hex()} failed in the block"
        return None


async def _acquire(lock: threading.Lock) -> None:
    """Take ``lock`` from a worker thread (waiting at most ``HOLD_WAIT``); a request cancelled
    meanwhile leaves it free."""
    waiting = asyncio.ensure_future(asyncio.to_thread(lock.acquire, True, HOLD_WAIT))
    try:
        acquired = await asyncio.shield(waiting)
    except asyncio.CancelledError:

        def free(done: asyncio.Future[bool]) -> None:
            if not done.cancelled() and done.exception() is None and done.result():
                lock.release()

        waiting.add_done_callback(free)
        raise
    if not acquired:
        raise _RefusedError(-32000, f"the market's step did not end in {HOLD_WAIT:g}s")


def _lease(params: Any) -> float:
    """The seconds of ``devnet_hold [SECONDS]`` (default and at most ``MAX_HOLD_SECONDS``)."""
    if params in (None, []):
        return MAX_HOLD_SECONDS
    if type(params) is not list or len(params) != 1 or type(params[0]) not in (int, float):
        raise _RefusedError(-32602, "devnet_hold takes one number: the lease in seconds")
    seconds = float(params[0])
    if not 0 < seconds <= MAX_HOLD_SECONDS:
        raise _RefusedError(-32602, f"the lease must be over 0 and at most {MAX_HOLD_SECONDS:g} s")
    return seconds


def _rank(run: Run, bundle: _Bundle) -> tuple[int, int, bytes, int]:
    """A bundle's place in the auction, best first: coinbase payment per gas, then in all, then
    the bundle hash (the order never depends on arrival), then arrival (one bundle sent twice)."""
    gas = sum(r.gas_used for r in run.runs)
    return (-(run.coinbase_diff // max(gas, 1)), -run.coinbase_diff, bundle.hash, bundle.seq)


def _timestamp_problem(bundle: _Bundle, env: BlockEnv) -> str | None:
    low, high = bundle.request.min_timestamp, bundle.request.max_timestamp
    if low and env.timestamp < low:
        return f"block timestamp {env.timestamp} before minTimestamp {low}"
    if high and env.timestamp > high:
        return f"block timestamp {env.timestamp} after maxTimestamp {high}"
    return None


def _failure(bundle: _Bundle, run: Run, offset: int) -> str | None:
    """Why ``bundle`` (its runs from ``offset``) may not be included, or None."""
    if run.error is not None:
        return run.error
    for tx_run in run.runs[offset:]:
        if not tx_run.success and tx_run.tx.hash not in bundle.request.reverting:
            return f"0x{tx_run.tx.hash.hex()} reverts"
    return None
