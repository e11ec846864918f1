"""The market simulator: trader flow on the devnet, so that prices drift apart across venues.

Every block, a Poisson number of swaps (mean 4) goes out from the trader accounts (anvil accounts
1..5) through both V2 routers (``swapExactTokensForTokens``) and the V3 SwapRouter
(``exactInputSingle``). Sizes are heavy-tailed in units of each pool's depth: most move the price
by a few hundredths of a percent, a few by 0.5-3%. Each token has a fair USD price that drifts
(ETH too; stablecoins stay near their peg), and a swap's direction leans towards the fair price,
so pools wander around it independently: venues diverge and arbitrage appears, and nobody closes
it but the searcher. Every ~10 blocks an LP rebalances: a V3 position is minted near the price and
an older one decreased and collected (Mint and Burn events), and V2 liquidity is added or removed.

Pacing: with ``block_time`` set, anvil mines on its own and each new block gets a batch; in manual
mode (no block time) automine is off and the simulator sends a batch, then ``evm_mine``.
Traders are funded lazily (TestToken mint, WETH deposit, approvals) the first time they need a
token. No transaction should revert; those that do are counted.

With ``competitors`` (off by default), competing searchers (:mod:`arbx.devnet.competitors`) send
their bundles to the local builder each block, after the market's transactions are sent and
before the block is built: the market must trade through the builder.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from eth_abi.abi import decode
from eth_utils.crypto import keccak

from arbx.devnet.artifacts import load_artifact
from arbx.devnet.chain import DevChain, RawReceipt, TxQueue
from arbx.devnet.competitors import Competitors, PendingSwap
from arbx.devnet.deployment import Deployment, PoolRecord
from arbx.devnet.world import (
    EXTRA_TOKENS,
    MAIN_TOKENS,
    align_range,
    amounts_for_budget,
    price_to_tick,
    test_token_artifact,
)
from arbx.domain.errors import ConfigError
from arbx.errors import TransientError

DEFAULT_PACE = 0.25  # seconds between blocks in manual mode
SWAP_GAS = 4_000_000
MEDIAN_MOVE = 0.0008  # the median swap moves its pool's price by 0.08%
MAX_MOVE = 0.03  # and none aims at more than 3%
SMALL_GAS = 150_000
TRADER_ETH = 10**30  # wei set on each trader with anvil_setBalance
TRADER_WETH = 10**27  # wei each trader wraps once
TRADER_TOKENS = 1 << 128  # smallest units of a token minted to a trader on first use
MAX_UINT128 = (1 << 128) - 1
MAX_UINT256 = (1 << 256) - 1
STABLES = frozenset(s.symbol for s in (*MAIN_TOKENS, *EXTRA_TOKENS) if s.stable)
_GET_RESERVES = "0x0902f1ac"
_SLOT0 = "0x3850c7bd"
_LIQUIDITY = "0x1a686502"
_INCREASE = "0x" + keccak(text="IncreaseLiquidity(uint256,uint128,uint256,uint256)").hex()
_MAX_FAILURES = 20  # consecutive failed steps before run() gives up (the node is gone)

StopEvent = threading.Event | asyncio.Event


@dataclass
class BlockStats:
    """What one step sent and how it went: swaps per venue, liquidity changes, reverts."""

    block: int = 0
    swaps: dict[str, int] = field(default_factory=dict)
    mints: int = 0
    burns: int = 0
    v2_adds: int = 0
    v2_removes: int = 0
    reverted: int = 0
    errors: int = 0

    def add(self, other: BlockStats) -> None:
        """Accumulate ``other`` into these counts (``block`` becomes the latest)."""
        self.block = max(self.block, other.block)
        for venue, count in other.swaps.items():
            self.swaps[venue] = self.swaps.get(venue, 0) + count
        for name in ("mints", "burns", "v2_adds", "v2_removes", "reverted", "errors"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def line(self) -> str:
        """One human-readable line."""
        swaps = " ".join(f"{v}={n}" for v, n in sorted(self.swaps.items())) or "none"
        return (
            f"block {self.block}: swaps {swaps}; v3 mint {self.mints} burn {self.burns}; "
            f"v2 add {self.v2_adds} remove {self.v2_removes}; reverted {self.reverted}"
        )


@dataclass
class _Position:
    owner: str
    token_id: int
    liquidity: int
    pool: PoolRecord


@dataclass(frozen=True)
class _Sent:
    """What a queued transaction was, to tally its receipt."""

    kind: str  # swap, mint, burn, add, remove
    venue: str = ""
    owner: str = ""
    pool: PoolRecord | None = None
    position: _Position | None = None
    part: int = 0


@dataclass
class _Swap:
    pool: PoolRecord
    trader: str
    token_in: str
    token_out: str
    amount: int
    move: float  # the price move aimed at
    price: float  # the pool's price before


@dataclass
class _PoolState:
    price: float  # smallest units of token1 per token0
    depth0: float  # reserves (V2) or virtual reserves at the price (V3), smallest units
    depth1: float


class MarketSimulator:
    """Trader swaps and LP changes on a devnet described by a :class:`Deployment`."""

    def __init__(
        self,
        deployment: Deployment,
        seed: int = 0,
        traders: Sequence[str] | None = None,
        *,
        url: str | None = None,
        swaps_per_block: float = 4.0,
        liquidity_every: int = 10,
        manual: bool | None = None,
        competitors: int = 0,
        hold: threading.Lock | None = None,
    ) -> None:
        self.deployment = deployment
        self.rng = random.Random(f"arbx-market:{seed}")
        self.chain = DevChain(url or deployment.rpc_url)
        self.traders = tuple(traders) if traders is not None else deployment.accounts.traders
        reserved = {deployment.accounts.searcher.lower(), deployment.accounts.deployer.lower()}
        if not self.traders or any(t.lower() in reserved for t in self.traders):
            raise ConfigError("traders must be set and exclude the deployer and the searcher")
        self.manual = manual if manual is not None else not deployment.block_time
        self.swaps_per_block = swaps_per_block
        self.liquidity_every = max(2, liquidity_every)
        self.totals = BlockStats()
        # held, no block is made: a test that rewrites the chain (anvil_reorg) holds it, since
        # anvil reorging while a block is built leaves blocks it no longer serves under the new
        # head's parent; the local builder in the same process takes it on devnet_hold
        self.hold = hold if hold is not None else threading.Lock()
        self.queue = TxQueue(self.chain, gas=SWAP_GAS)
        self.competitors: Competitors | None = None
        if competitors:
            if url is None or url == deployment.rpc_url:
                raise ConfigError(
                    "competitors send bundles: the market must trade through the builder"
                )
            self.competitors = Competitors(deployment, self.chain, url, competitors, seed)
        self._pools = list(deployment.pools)
        self._weights = [math.sqrt(max(p.tvl_weth, 1e-9)) for p in self._pools]
        self._v3_pools = [p for p in self._pools if p.kind == "uniswap_v3"]
        self._v2_pools = [p for p in self._pools if p.kind == "uniswap_v2"]
        self._routers = {v.name: v.router for v in deployment.venues}
        self._decimals = {t.address: t.decimals for t in deployment.tokens}
        self._decimals[deployment.weth] = 18
        self._stable = {t.address for t in deployment.tokens if t.symbol in STABLES}
        self._log_usd = {t.address: math.log(t.price_usd) for t in deployment.tokens}
        self._log_eth = math.log(deployment.eth_usd)
        self._funded: set[tuple[str, str, str]] = set()
        self._minted: set[tuple[str, str]] = set()
        self._positions: list[_Position] = []
        self._lp: set[tuple[str, str]] = set()
        self._countdown = self.rng.randint(2, self.liquidity_every)
        self._ready = False
        self._automine_was: bool | None = None
        w3 = self.chain.w3
        self._token = w3.eth.contract(abi=test_token_artifact().abi)
        self._weth = w3.eth.contract(abi=load_artifact("WETH9").abi)
        self._v2_router = w3.eth.contract(abi=load_artifact("UniswapV2Router02").abi)
        self._v3_router = w3.eth.contract(abi=load_artifact("SwapRouter").abi)
        self._npm = w3.eth.contract(abi=load_artifact("NonfungiblePositionManager").abi)
        self._quoter = w3.eth.contract(abi=load_artifact("QuoterV2").abi)

    # --- lifecycle ---------------------------------------------------------------------------

    def setup(self) -> None:
        """Give the traders ETH and, in manual mode, switch automine off (once)."""
        if self._ready:
            return
        self.chain.rpc_batch([("anvil_setBalance", [t, hex(TRADER_ETH)]) for t in self.traders])
        if self.manual:
            self._automine_was = self.chain.rpc("anvil_getAutomine") is True
            self.chain.rpc("evm_setAutomine", False)
        if self.competitors is not None:
            self.competitors.setup()
        self._ready = True

    def close(self) -> None:
        """Switch automine back on if ``setup`` turned it off (and the node still answers)."""
        if self._automine_was:
            with contextlib.suppress(TransientError, OSError):
                self.chain.rpc("evm_setAutomine", True)
        self._automine_was = None
        self._ready = False

    def run(
        self,
        stop: StopEvent | None = None,
        pace: float | None = None,
        max_blocks: int | None = None,
        on_block: Callable[[BlockStats], None] | None = None,
    ) -> BlockStats:
        """Step once per block until ``stop`` is set or ``max_blocks`` are made; the totals."""
        self.setup()
        interval = DEFAULT_PACE if pace is None else pace
        made = failures = 0
        last = self.chain.w3.eth.block_number
        try:
            while not (stop is not None and stop.is_set()):
                if max_blocks is not None and made >= max_blocks:
                    break
                started = time.monotonic()
                if not self.manual:
                    current = self.chain.w3.eth.block_number
                    if current <= last:
                        _wait(stop, 0.05)
                        continue
                    last = current
                try:
                    with self.hold:
                        stats = self.step()
                    failures = 0
                except (TransientError, OSError) as exc:  # requests' errors are OSErrors
                    failures += 1
                    self.totals.errors += 1
                    self.queue.resync()
                    if failures >= _MAX_FAILURES:
                        url = self.chain.provider.endpoint_uri  # anvil's or the builder's
                        raise TransientError(f"the node at {url} keeps failing: {exc}") from exc
                    _wait(stop, 0.2)
                    continue
                made += 1
                if on_block is not None:
                    on_block(stats)
                if self.manual:
                    _wait(stop, interval - (time.monotonic() - started))
        finally:
            self.close()
        return self.totals

    async def run_async(
        self, stop: asyncio.Event, pace: float | None = None, max_blocks: int | None = None
    ) -> BlockStats:
        """``run`` in a worker thread, stopped by an asyncio event."""
        return await asyncio.to_thread(self.run, stop, pace, max_blocks)

    # --- one block -----------------------------------------------------------------------------

    def step(self) -> BlockStats:
        """Send one block's worth of swaps (and LP changes when due); its counts."""
        self.setup()
        self._drift()
        count = _poisson(self.rng, self.swaps_per_block)
        picks = self.rng.choices(self._pools, weights=self._weights, k=count) if count else []
        self._countdown -= 1
        liquidity = self._countdown <= 0
        if liquidity:
            self._countdown = self.rng.randint(
                self.liquidity_every // 2, self.liquidity_every * 3 // 2
            )
        v3_pick = self.rng.choice(self._v3_pools) if liquidity and self._v3_pools else None
        v2_pick = self.rng.choice(self._v2_pools) if liquidity and self._v2_pools else None
        wanted = {p.address: p for p in (*picks, v3_pick, v2_pick) if p is not None}
        states, timestamp = self._read(list(wanted.values()))
        deadline = timestamp + 3600
        kinds: dict[int, _Sent] = {}
        swaps = [s for s in (self._plan_swap(p, states[p.address]) for p in picks) if s]
        self._fit_v3(swaps)
        sent: dict[int, _Swap] = {}
        for swap in swaps:
            if swap.amount > 0:
                index = self._queue_swap(swap, deadline)
                kinds[index], sent[index] = _Sent("swap", venue=swap.pool.venue), swap
        if v3_pick is not None:
            kinds |= self._v3_rebalance(v3_pick, states[v3_pick.address], deadline)
        if v2_pick is not None:
            kinds |= self._v2_change(v2_pick, states[v2_pick.address], deadline)
        rivals = self.competitors

        def compete(hashes: Sequence[str]) -> None:
            if rivals is not None:
                rivals.act([
                    PendingSwap(hashes[i], s.pool.address, s.token_in, s.amount, s.move)
                    for i, s in sent.items() if i < len(hashes)
                ])  # fmt: skip

        receipts = self.queue.flush(mine=self.manual, check=False, on_sent=compete)
        if not receipts:
            compete(())
            if self.manual:
                self.chain.rpc("evm_mine")
        stats = self._count(receipts, kinds)
        self.totals.add(stats)
        return stats

    def read_prices(self) -> dict[str, float]:
        """Every pool's price now (smallest units of token1 per token0), by address."""
        states, _ = self._read(self._pools)
        return {address: state.price for address, state in states.items()}

    # --- prices --------------------------------------------------------------------------------

    def _drift(self) -> None:
        """One block of fair-price moves: ETH and volatile tokens walk, stables revert to peg."""
        self._log_eth += self.rng.gauss(0, 0.0008)
        for token in self._log_usd:
            if token in self._stable:
                self._log_usd[token] = 0.9 * self._log_usd[token] + self.rng.gauss(0, 0.0001)
            else:
                self._log_usd[token] += self.rng.gauss(0, 0.001)

    def _fair(self, pool: PoolRecord) -> float:
        """The fair price of the pool (smallest units of token1 per token0)."""
        log0 = self._log_usd.get(pool.token0, self._log_eth)
        log1 = self._log_usd.get(pool.token1, self._log_eth)
        scale = self._decimals[pool.token1] - self._decimals[pool.token0]
        return math.exp(log0 - log1) * 10.0**scale

    def _read(self, pools: Sequence[PoolRecord]) -> tuple[dict[str, _PoolState], int]:
        """The pools' states and the latest block's timestamp, in one batch."""
        requests: list[tuple[str, Sequence[object]]] = [("eth_getBlockByNumber", ["latest", False])]
        for pool in pools:
            if pool.kind == "uniswap_v2":
                requests.append(
                    ("eth_call", [{"to": pool.address, "data": _GET_RESERVES}, "latest"])
                )
            else:
                requests.append(("eth_call", [{"to": pool.address, "data": _SLOT0}, "latest"]))
                requests.append(("eth_call", [{"to": pool.address, "data": _LIQUIDITY}, "latest"]))
        answers = iter(self.chain.rpc_batch(requests))
        timestamp = int(next(answers)["timestamp"], 16)
        states: dict[str, _PoolState] = {}
        for pool in pools:
            if pool.kind == "uniswap_v2":
                r0, r1, _ = decode(["uint112", "uint112", "uint32"], _bytes(next(answers)))
                states[pool.address] = _PoolState(r1 / r0 if r0 else 0.0, float(r0), float(r1))
            else:
                (sqrt_x96,) = decode(["uint160"], _bytes(next(answers))[:32])
                (liquidity,) = decode(["uint128"], _bytes(next(answers)))
                root = sqrt_x96 / 2**96
                depth0 = liquidity / root if root else 0.0
                states[pool.address] = _PoolState(root * root, depth0, liquidity * root)
        return states, timestamp

    # --- transactions --------------------------------------------------------------------------

    def _plan_swap(self, pool: PoolRecord, state: _PoolState) -> _Swap | None:
        """A swap on ``pool``: direction leaning to the fair price, heavy-tailed size."""
        if state.price <= 0 or state.depth0 <= 0 or state.depth1 <= 0:
            return None
        deviation = math.log(state.price / self._fair(pool))
        sell0 = self.rng.random() < min(0.85, max(0.15, 0.5 + 20 * deviation))
        move = min(MAX_MOVE, self.rng.lognormvariate(math.log(MEDIAN_MOVE), 1.3))
        token_in, token_out = (pool.token0, pool.token1) if sell0 else (pool.token1, pool.token0)
        depth_in, depth_out = (
            (state.depth0, state.depth1) if sell0 else (state.depth1, state.depth0)
        )
        amount = int(depth_in * move / 2)  # moves the price by ~move while liquidity lasts
        if amount < 1000 or amount * depth_out < 4 * depth_in:  # would give nothing out
            return None
        trader = self.rng.choice(self.traders)
        return _Swap(pool, trader, token_in, token_out, amount, move, state.price)

    def _fit_v3(self, swaps: Sequence[_Swap]) -> None:
        """Quote the V3 swaps (QuoterV2) and shrink those that would leave a narrow range
        behind and move the price much further than aimed; drop those the quoter refuses."""
        v3 = [s for s in swaps if s.pool.kind == "uniswap_v3"]
        if not v3:
            return
        quoter = self.deployment.v3.quoter
        requests: list[tuple[str, Sequence[object]]] = []
        for swap in v3:
            params = (swap.token_in, swap.token_out, swap.amount, swap.pool.fee, 0)
            data = self._quoter.encode_abi("quoteExactInputSingle", args=[params])
            requests.append(("eth_call", [{"to": quoter, "data": data}, "latest"]))
        for swap, answer in zip(v3, self.chain.rpc_batch(requests, tolerate=True), strict=True):
            if answer is None:
                swap.amount = 0
                continue
            _, sqrt_after = decode(["uint256", "uint160"], _bytes(answer)[:64])
            after = (sqrt_after / 2**96) ** 2
            moved = abs(math.log(after / swap.price)) if after > 0 else math.inf
            if moved > 1.5 * swap.move + 0.001:
                swap.amount = int(swap.amount * swap.move / moved)

    def _queue_swap(self, swap: _Swap, deadline: int) -> int:
        """Queue the swap through its venue's router; its queue index."""
        router = self._routers[swap.pool.venue]
        self._fund(swap.trader, swap.token_in, router)
        if swap.pool.kind == "uniswap_v2":
            path = [swap.token_in, swap.token_out]
            args = [swap.amount, 0, path, swap.trader, deadline]
            data = self._v2_router.encode_abi("swapExactTokensForTokens", args=args)
        else:
            params = (
                swap.token_in, swap.token_out, swap.pool.fee, swap.trader, deadline,
                swap.amount, 0, 0,
            )  # fmt: skip
            data = self._v3_router.encode_abi("exactInputSingle", args=[params])
        label = f"swap on {swap.pool.venue}"
        return self.queue.raw(swap.trader, router, data, 0, SWAP_GAS, label)

    def _v3_rebalance(self, pool: PoolRecord, state: _PoolState, deadline: int) -> dict[int, _Sent]:
        """Mint a position around the price; decrease and collect the oldest one, if any."""
        kinds: dict[int, _Sent] = {}
        npm = self.deployment.v3.position_manager
        if self._positions:
            old = self._positions[0]
            part = old.liquidity // 2 if self.rng.random() < 0.5 else 0
            part = part or old.liquidity
            data = self._npm.encode_abi(
                "decreaseLiquidity", args=[(old.token_id, part, 0, 0, deadline)]
            )
            index = self.queue.raw(old.owner, npm, data, 0, SWAP_GAS, "decreaseLiquidity")
            kinds[index] = _Sent("burn", position=old, part=part)
            collect = (old.token_id, old.owner, MAX_UINT128, MAX_UINT128)
            data = self._npm.encode_abi("collect", args=[collect])
            self.queue.raw(old.owner, npm, data, 0, SWAP_GAS, "collect")
        if state.price <= 0:
            return kinds
        trader = self.rng.choice(self.traders)
        stable = pool.token0 in self._stable and pool.token1 in self._stable
        half = self.rng.lognormvariate(math.log(200), 0.8) * (0.08 if stable else 1.0)
        tick = price_to_tick(state.price)
        center = tick + self.rng.uniform(-0.5, 0.5) * half
        lower, upper = align_range(center - half, center + half, pool.tick_spacing)
        budget_weth = pool.tvl_weth * self.rng.uniform(0.01, 0.05)
        unit1_weth = math.exp(self._log_usd.get(pool.token1, self._log_eth) - self._log_eth)
        unit1_weth /= 10 ** self._decimals[pool.token1]
        amount0, amount1 = amounts_for_budget(state.price, lower, upper, budget_weth / unit1_weth)
        self._fund(trader, pool.token0, npm)
        self._fund(trader, pool.token1, npm)
        params = (
            pool.token0, pool.token1, pool.fee, lower, upper,
            amount0, amount1, 0, 0, trader, deadline,
        )  # fmt: skip
        data = self._npm.encode_abi("mint", args=[params])
        kinds[self.queue.raw(trader, npm, data, 0, SWAP_GAS, "mint")] = _Sent(
            "mint", owner=trader, pool=pool
        )
        return kinds

    def _v2_change(self, pool: PoolRecord, state: _PoolState, deadline: int) -> dict[int, _Sent]:
        """Add liquidity to a V2 pair at its ratio, or remove a trader's earlier liquidity."""
        router = self._routers[pool.venue]
        holders = [t for t in self.traders if (t, pool.address) in self._lp]
        if holders and self.rng.random() < 0.5:
            trader = self.rng.choice(holders)
            balance = self._lp_balance(pool.address, trader)
            if balance > 0:
                self._fund(trader, pool.address, router)
                args = [pool.token0, pool.token1, balance // 2 or balance, 0, 0, trader, deadline]
                data = self._v2_router.encode_abi("removeLiquidity", args=args)
                index = self.queue.raw(trader, router, data, 0, SWAP_GAS, "removeLiquidity")
                return {index: _Sent("remove")}
        trader = self.rng.choice(self.traders)
        share = self.rng.uniform(0.005, 0.03)
        amount0, amount1 = int(state.depth0 * share), int(state.depth1 * share)
        if amount0 == 0 or amount1 == 0:
            return {}
        self._fund(trader, pool.token0, router)
        self._fund(trader, pool.token1, router)
        args = [pool.token0, pool.token1, amount0, amount1, 0, 0, trader, deadline]
        data = self._v2_router.encode_abi("addLiquidity", args=args)
        index = self.queue.raw(trader, router, data, 0, SWAP_GAS, "addLiquidity")
        return {index: _Sent("add", owner=trader, pool=pool)}

    def _fund(self, trader: str, token: str, spender: str) -> None:
        """Queue what ``trader`` needs to spend ``token`` through ``spender`` (once each)."""
        if (trader, token) not in self._minted:
            self._minted.add((trader, token))
            if token == self.deployment.weth:
                data = self._weth.encode_abi("deposit")
                self.queue.raw(trader, token, data, TRADER_WETH, SMALL_GAS, "deposit")
            elif token in self._decimals:  # a TestToken (LP tokens are not minted)
                data = self._token.encode_abi("mint", args=[trader, TRADER_TOKENS])
                self.queue.raw(trader, token, data, 0, SMALL_GAS, "mint")
        if (trader, token, spender) not in self._funded:
            self._funded.add((trader, token, spender))
            data = self._token.encode_abi("approve", args=[spender, MAX_UINT256])
            self.queue.raw(trader, token, data, 0, SMALL_GAS, "approve")

    def _lp_balance(self, pair: str, owner: str) -> int:
        data = self._token.encode_abi("balanceOf", args=[owner])
        answer = self.chain.rpc("eth_call", {"to": pair, "data": data}, "latest")
        (balance,) = decode(["uint256"], _bytes(answer))
        return int(balance)

    def _count(self, receipts: list[RawReceipt], kinds: dict[int, _Sent]) -> BlockStats:
        """Tally the receipts; remember new positions and LP holdings."""
        stats = BlockStats(block=self.chain.w3.eth.block_number)
        stats.reverted = sum(1 for r in receipts if int(r["status"], 16) != 1)
        npm = self.deployment.v3.position_manager.lower()
        for index, sent in kinds.items():
            receipt = receipts[index]
            if int(receipt["status"], 16) != 1:
                continue
            if sent.kind == "swap":
                stats.swaps[sent.venue] = stats.swaps.get(sent.venue, 0) + 1
            elif sent.kind == "mint" and sent.pool is not None:
                for log in receipt["logs"]:
                    if log["address"].lower() == npm and log["topics"][0] == _INCREASE:
                        data = _bytes(log["data"])
                        liquidity, _, _ = decode(["uint128", "uint256", "uint256"], data)
                        token_id = int(log["topics"][1], 16)
                        self._positions.append(
                            _Position(sent.owner, token_id, liquidity, sent.pool)
                        )
                stats.mints += 1
            elif sent.kind == "burn" and sent.position is not None:
                sent.position.liquidity -= sent.part
                if sent.position.liquidity <= 0:
                    self._positions.remove(sent.position)
                stats.burns += 1
            elif sent.kind == "add" and sent.pool is not None:
                self._lp.add((sent.owner, sent.pool.address))
                stats.v2_adds += 1
            elif sent.kind == "remove":
                stats.v2_removes += 1
        return stats


def _bytes(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; the means here are small)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _wait(stop: StopEvent | None, seconds: float) -> None:
    """Sleep up to ``seconds``, waking early when ``stop`` is set."""
    if seconds <= 0:
        return
    if isinstance(stop, threading.Event):
        stop.wait(seconds)
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
