"""Discovery, multicall bootstrap, event sync and reorgs against real Uniswap contracts on anvil.

Each test module gets its own anvil (reorgs rewrite the chain). Pools are created from the real
factories; trades go through the real routers; the synced book must equal the chain, pool by pool
and tick by tick, after every sequence of blocks and every reorg.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from arbx.chain.bootstrap import PoolMeta, load_pools
from arbx.chain.discovery import Venue, discover, token_metadata, with_metadata
from arbx.chain.heads import Head, decode_head
from arbx.chain.parity import ParityChecker, check_parity
from arbx.chain.rpc import RpcClient
from arbx.chain.sync import ChainSync, RpcSource, hex_hash
from arbx.chain.window import Playback, WindowRecorder, read_window, write_window
from arbx.devnet.anvil import Anvil, start_anvil
from arbx.devnet.artifacts import load_artifact
from arbx.devnet.chain import DevChain
from arbx.devnet.deploy import (
    UniswapDeployment,
    V3Position,
    add_v2_liquidity,
    create_v2_pair,
    create_v3_pool,
    decrease_v3_liquidity,
    deploy_test_tokens,
    deploy_uniswap,
    mint_v3_positions,
)
from arbx.domain.journal import PoolBook
from arbx.domain.pools import V2Pool, V3Pool
from arbx.engine.pipeline import Pipeline
from arbx.executors.shadow import ShadowExecutor
from arbx.store import make_engine, make_session_factory, migrate, repo
from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function")]
FAR = 2**40


class World:
    """A chain with two V2 pairs, three V3 pools and a multicall, and ways to move them."""

    def __init__(self, chain: DevChain) -> None:
        self.chain = chain
        self.uni: UniswapDeployment = deploy_uniswap(chain)
        self.multicall = chain.deploy(load_artifact("UniswapInterfaceMulticall")).address
        t6, t8, t18 = deploy_test_tokens(chain, (6, 8, 18), spenders=self.uni.spenders())
        self.tokens = (t6, t8, t18)
        self.v2 = [create_v2_pair(chain, self.uni, t18, t) for t in (t6, t8)]
        for pair in self.v2:
            add_v2_liquidity(chain, pair, 10**24, 10**22)
        self.v3 = [
            create_v3_pool(chain, self.uni, (t18, t6), 500, 2**96),
            create_v3_pool(chain, self.uni, (t18, t8), 3000, 2**96),
            create_v3_pool(chain, self.uni, (t6, t8), 10000, 2**96),
        ]
        self.positions: list[tuple[int, V3Position]] = []
        for i, pool in enumerate(self.v3):
            spacing = pool.tick_spacing
            ranges = [
                (-(887272 // spacing) * spacing, (887272 // spacing) * spacing, 10**20, 10**20)
            ]
            ranges += [(-spacing * k, spacing * (k + 1), 10**18, 10**18) for k in range(1, 12)]
            for position in mint_v3_positions(chain, self.uni, pool, ranges):
                self.positions.append((i, position))
        self.v2_router = chain.contract(load_artifact("UniswapV2Router02"), self.uni.v2_router)
        self.v3_router = chain.contract(load_artifact("SwapRouter"), self.uni.swap_router)

    def venues(self) -> list[Venue]:
        """The two factories as configured venues."""
        return [
            Venue("uniswap_v2", "uniswap_v2", self.uni.v2_factory),
            Venue("uniswap_v3", "uniswap_v3", self.uni.v3_factory),
        ]

    def random_moves(self, rng: random.Random, count: int, swaps_only: bool = False) -> None:
        """Swaps through both routers and now and then a mint or a burn: one block each."""
        calls: list[Any] = []
        for _ in range(count):
            kind = rng.random() * (0.85 if swaps_only else 1.0)
            if kind < 0.4:
                pair = rng.choice(self.v2)
                path = (
                    [pair.token0, pair.token1] if rng.random() < 0.5 else [pair.token1, pair.token0]
                )
                amount = 10 ** rng.randint(8, 21)
                calls.append(
                    self.v2_router.functions.swapExactTokensForTokens(
                        amount, 0, path, self.chain.sender, FAR
                    )
                )
            elif kind < 0.85:
                pool = rng.choice(self.v3)
                zero_for_one = rng.random() < 0.5
                token_in, token_out = (
                    (pool.token0, pool.token1) if zero_for_one else (pool.token1, pool.token0)
                )
                amount = 10 ** rng.randint(12, 19) * rng.randint(1, 9)
                calls.append(
                    self.v3_router.functions.exactInputSingle(
                        (token_in, token_out, pool.fee, self.chain.sender, FAR, amount, 0, 0)
                    )
                )
            else:
                self._liquidity_change(rng)
        if calls:
            self.chain.send_all(calls)

    def _liquidity_change(self, rng: random.Random) -> None:
        i, position = rng.choice(self.positions)
        if rng.random() < 0.5 and position.liquidity > 1:
            left = decrease_v3_liquidity(
                self.chain, self.uni, position, rng.randint(1, position.liquidity)
            )
            self.positions[self.positions.index((i, position))] = (i, left)
        else:
            pool = self.v3[i]
            lower = rng.randint(-20, 19) * pool.tick_spacing
            upper = lower + rng.randint(1, 10) * pool.tick_spacing
            for new in mint_v3_positions(
                self.chain, self.uni, pool, [(lower, upper, 10**17, 10**17)]
            ):
                self.positions.append((i, new))


@pytest.fixture(scope="module")
def node() -> Iterator[Anvil]:
    with start_anvil() as anvil:
        yield anvil


@pytest.fixture(scope="module")
def world(node: Anvil) -> World:
    return World(DevChain(node.url))


@pytest_asyncio.fixture
async def client(node: Anvil) -> AsyncIterator[RpcClient]:
    async with RpcClient([node.url]) as rpc:
        yield rpc


async def latest(client: RpcClient) -> Head:
    return decode_head(await client.call("eth_getBlockByNumber", ["latest", False]))


async def discovered(client: RpcClient, world: World) -> list[PoolMeta]:
    head = await client.block_number()
    metas = await discover(client, world.venues(), 0, head, chain_id=await client.chain_id())
    tokens = {t.address for m in metas for t in (m.token0, m.token1)}
    meta = await token_metadata(client, world.multicall, sorted(tokens), head)
    return with_metadata(metas, meta)


async def fresh_book(client: RpcClient, world: World) -> tuple[PoolBook, list[PoolMeta]]:
    metas = await discovered(client, world)
    head = await latest(client)
    pools = await load_pools(client, metas, head.number)
    return PoolBook(pools, head.number, hex_hash(head.hash)), metas


async def test_discovery_finds_every_pool_with_its_tokens(client: RpcClient, world: World) -> None:
    metas = await discovered(client, world)
    assert {m.address for m in metas} == {p.address for p in world.v2} | {
        p.address for p in world.v3
    }
    by_address = {m.address: m for m in metas}
    for pool in world.v3:
        assert by_address[pool.address].fee == pool.fee
        assert by_address[pool.address].tick_spacing == pool.tick_spacing
    assert {t.decimals for m in metas for t in (m.token0, m.token1)} == {6, 8, 18}
    denied = await discover(
        client, world.venues(), 0, await client.block_number(), 31337, deny=[world.tokens[1]]
    )
    assert len(denied) == 2  # only the pools without the 8-decimal token


async def test_bootstrap_equals_the_contracts(client: RpcClient, world: World) -> None:
    book, _ = await fresh_book(client, world)
    for pair in world.v2:
        pool = book.pools[pair.address]
        assert isinstance(pool, V2Pool)
        contract = world.chain.contract(load_artifact("UniswapV2Pair"), pair.address)
        r0, r1, _ = contract.functions.getReserves().call()
        assert (pool.reserve0, pool.reserve1) == (r0, r1)
    for created in world.v3:
        pool = book.pools[created.address]
        assert isinstance(pool, V3Pool)
        contract = world.chain.contract(load_artifact("UniswapV3Pool"), created.address)
        slot0 = contract.functions.slot0().call()
        assert (pool.sqrt_price_x96, pool.tick) == (slot0[0], slot0[1])
        assert pool.liquidity == contract.functions.liquidity().call()
        assert len(pool.ticks) >= 20
        for tick in pool.ticks:
            gross, net = contract.functions.ticks(tick).call()[:2]
            assert (pool.liquidity_gross[tick], pool.liquidity_net[tick]) == (gross, net)


async def test_incremental_sync_keeps_parity(client: RpcClient, world: World) -> None:
    book, metas = await fresh_book(client, world)
    sync = ChainSync(client, book)
    rng = random.Random(1)
    changed_total: set[str] = set()
    for _ in range(12):
        world.random_moves(rng, 5)
        update = await sync.advance(await latest(client))
        changed_total |= update.changed
    assert book.head_number == await client.block_number()
    assert sync.stats.logs > 30
    assert changed_total == set(book.pools)  # every pool moved at least once
    world.chain.rpc("evm_mine")  # parity reads a block once a later one exists
    result = await check_parity(client, book, metas)
    assert result.checked == len(metas)
    assert result.differences == {}


@pytest.mark.parametrize("depth", range(1, 11))
async def test_reorgs_end_in_parity(client: RpcClient, world: World, depth: int) -> None:
    book, metas = await fresh_book(client, world)
    sync = ChainSync(client, book)
    rng = random.Random(depth)
    snapshot = world.chain.snapshot()
    for _ in range(depth):  # one swap per block (automine)
        world.random_moves(rng, 1, swaps_only=True)
        await sync.advance(await latest(client))
    old_head = book.head_number
    world.chain.revert(snapshot)
    world.random_moves(rng, depth + 1, swaps_only=True)  # a longer, different branch
    while (await latest(client)).number <= old_head:  # a busy anvil may put two swaps in one block
        world.chain.rpc("evm_mine")
    update = await sync.advance(await latest(client))
    assert update.reorg_depth == depth
    assert book.head_number == old_head + 1
    assert sync.stats.reorgs == 1
    world.chain.rpc("evm_mine")  # parity reads a block once a later one exists
    result = await check_parity(client, book, metas)
    assert result.differences == {}


class _ListHeads:
    """Heads taken from the chain after each burst of trades (the test drives the blocks)."""

    def __init__(self, client: RpcClient, world: World, blocks: int) -> None:
        self.client, self.world, self.left = client, world, blocks
        self.rng = random.Random(7)

    def __aiter__(self) -> _ListHeads:
        return self

    async def __anext__(self) -> Head:
        if self.left == 0:
            self.world.chain.rpc("evm_mine")  # a later block, for the last parity check
            raise StopAsyncIteration
        self.left -= 1
        self.world.random_moves(self.rng, 3, swaps_only=True)
        return await latest(self.client)


async def test_shadow_pipeline_records_blocks_and_opportunities(
    client: RpcClient, world: World, tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'run.db'}"
    migrate.upgrade(url)
    sessions = make_session_factory(make_engine(url))
    book, metas = await fresh_book(client, world)
    strategy = CyclicArbitrage(book, StrategyLimits(base_tokens=(world.tokens[2],), max_hops=3))
    assert len(strategy.index) > 0
    with sessions.begin() as session:
        repo.upsert_chain(session, 31337, "anvil")
        run_id = repo.start_run(session, 31337)
    executor = ShadowExecutor(sessions, run_id, 31337)

    pipeline = Pipeline(
        _ListHeads(client, world, 8),
        ChainSync(client, book),
        strategy,
        executor,
        parity=ParityChecker(client, book, metas),
        on_parity=executor.on_parity,
        pools=lambda: len(book),
    )
    summary = await pipeline.run(asyncio.Event())
    assert summary.blocks == 8
    assert summary.stopped_by == "end of heads"
    assert summary.parity_checks == 8
    assert summary.parity_failures == 0
    assert summary.opportunities > 0  # trades on one venue open cycles through the others
    with make_session_factory(make_engine(url), readonly=True).begin() as session:
        report = repo.report(session, run_id)
    assert report["blocks"] == 8
    assert report["opportunities"] == summary.opportunities
    assert report["expected_net_profit_wei"] == summary.expected_net_profit_wei
    assert report["parity"] == {"checks": 8, "failures": 0, "coverage": 1.0}
    assert report["latency_ms"]["p50"] is not None


async def test_a_recorded_gap_and_reorg_replay_to_the_same_book(
    client: RpcClient, world: World, tmp_path: Any
) -> None:
    book, _ = await fresh_book(client, world)
    recorder = WindowRecorder({})
    recorder.begin(31337, book)
    sync = recorder.sync(ChainSync(recorder.source(RpcSource(client)), book))
    rng = random.Random(11)
    live = []
    for _ in range(3):
        world.random_moves(rng, 2, swaps_only=True)
        live.append(await sync.advance(await latest(client)))
    snapshot = world.chain.snapshot()
    world.random_moves(rng, 2, swaps_only=True)
    live.append(await sync.advance(await latest(client)))
    world.chain.revert(snapshot)
    old_head = book.head_number
    world.random_moves(rng, 4, swaps_only=True)  # a longer branch: a reorg and a gap at once
    while (await latest(client)).number <= old_head + 1:
        world.chain.rpc("evm_mine")
    live.append(await sync.advance(await latest(client)))
    assert live[-1].reorg_depth >= 1
    assert live[-1].blocks_applied >= 3

    path = tmp_path / "window.jsonl.gz"
    assert recorder.window is not None
    write_window(recorder.window, path)
    window = read_window(path)
    replayed = window.book()
    playback = Playback(window)
    resync = ChainSync(playback, replayed)
    again = [await resync.advance(head) async for head in playback.heads()]
    assert [(u.head, u.changed, u.reorg_depth, u.blocks_applied) for u in again] == [
        (u.head, u.changed, u.reorg_depth, u.blocks_applied) for u in live
    ]
    assert replayed.pools == book.pools
    for address, pool in book.pools.items():
        twin = replayed.pools[address]
        if isinstance(pool, V3Pool):
            assert isinstance(twin, V3Pool)
            assert dict(twin.liquidity_net) == dict(pool.liquidity_net)
