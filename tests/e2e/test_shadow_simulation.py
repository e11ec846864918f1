"""Shadow mode simulates the trade a live engine would send, without a key, on a real devnet.

The engine runs in shadow mode on the embedded devnet (anvil, the Uniswap contracts, the market),
with a signing key file that loading would refuse (world-readable): shadow mode never reads it.
No executor contract is deployed: the shipped executor is placed by an ``eth_call`` state
override. Once ten trades were simulated, the V2 pair most often in the routes that passed is
drained behind the engine's back (its token balances written in the tokens' storage: no event,
so the engine keeps the pair's reserves and finds routes through it again, which revert with
``UniswapV2: TRANSFER_FAILED`` or ``K``); the devnet's own model errors may fail a few more
(``ProfitTooLow`` by a few percent). Each trade that failed simulation on its head's state is
judged ``never_real``, one of them through the drained pair; the trades that passed are judged
by the chain and feed what going live would have won.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak
from sqlalchemy import select

from arbx.chain.book import load_book
from arbx.chain.heads import heads
from arbx.chain.resync import BookResync
from arbx.chain.rpc import RpcClient
from arbx.chain.sync import ChainSync
from arbx.cli.live import live_plan
from arbx.cli.run import devnet_spec
from arbx.config import load_settings
from arbx.devnet.commands import EmbeddedDevnet
from arbx.domain.pools import V2Pool
from arbx.engine.pipeline import Pipeline
from arbx.executors.factory import build_execution
from arbx.executors.simulation import SHADOW_EXECUTOR, SHADOW_OWNER
from arbx.store import make_engine, make_session_factory, migrate, repo, score_repo
from arbx.store.models import OpportunityRow, OpportunityScoreRow
from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits
from tests.e2e.faulty_node import wait_for

pytestmark = pytest.mark.e2e

CHAIN = 31337
BALANCE_OF = "0x70a08231"
OWNER = "0x8da5cb5b"  # owner()


@pytest.fixture(scope="module")
def devnet() -> Iterator[EmbeddedDevnet]:
    with EmbeddedDevnet.start(seed=7, pace=0.25) as running:
        yield running


class _Calls:
    """The node's side: every ``eth_call`` the engine sent (its transport seam)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[list[Any]] = []

    async def post(self, url: str, body: bytes, timeout: float, headers: Any = None) -> Any:
        import json  # noqa: PLC0415

        doc = json.loads(body)
        for item in doc if isinstance(doc, list) else [doc]:
            if item["method"] == "eth_call":
                self.calls.append(item["params"])
        return await self.inner.post(url, body, timeout, headers)

    async def websocket(self, url: str, timeout: float) -> Any:
        return await self.inner.websocket(url, timeout)

    async def close(self) -> None:
        await self.inner.close()


async def _drain(client: RpcClient, pair: V2Pool) -> None:
    """Leave ``pair`` 1 unit of each of its tokens, its reserves as they were: its token
    balances are written in the tokens' storage (no event at all, as a rebasing token's loss
    would be), so the engine keeps the pair's reserves and any swap through it fails."""
    for token in (pair.token0.address, pair.token1.address):
        slot = await _balance_slot(client, token, pair.address)
        await client.call("anvil_setStorageAt", [token, slot, "0x" + "1".rjust(64, "0")])
        assert await _balance(client, token, pair.address) == 1


async def _balance(client: RpcClient, token: str, holder: str) -> int:
    data = BALANCE_OF + holder[2:].lower().rjust(64, "0")
    return int(await client.call("eth_call", [{"to": token, "data": data}, "latest"]), 16)


async def _balance_slot(client: RpcClient, token: str, holder: str) -> str:
    """The storage key of ``holder``'s balance in ``token`` (a Solidity mapping at a low slot)."""
    held = await _balance(client, token, holder)
    for index in range(16):
        key = keccak(bytes.fromhex(holder[2:].rjust(64, "0") + f"{index:064x}"))
        stored = await client.call("eth_getStorageAt", [token, "0x" + key.hex(), "latest"])
        if int(stored, 16) == held:
            return "0x" + key.hex()
    raise AssertionError(f"no balance mapping found in {token}")


def _rows(sessions: Any, run_id: int) -> list[tuple[Any, ...]]:
    """(block, pools, status, outcome or None) of each of the run's simulated opportunities."""
    with sessions() as session:
        return [
            tuple(r)
            for r in session.execute(
                select(
                    OpportunityRow.block_number,
                    OpportunityRow.pools_json,
                    OpportunityRow.status,
                    OpportunityScoreRow.outcome,
                )
                .outerjoin(
                    OpportunityScoreRow, OpportunityScoreRow.opportunity_id == OpportunityRow.id
                )
                .where(OpportunityRow.run_id == run_id, OpportunityRow.status != "found")
                .order_by(OpportunityRow.block_number)
            )
        ]


@pytest.mark.asyncio
async def test_a_trade_through_a_drained_pair_fails_simulation_and_was_never_real(
    devnet: EmbeddedDevnet, tmp_path: Path
) -> None:
    leaky = tmp_path / "signing.key"  # loading it would be refused: others may read it
    leaky.write_text("0x" + "11" * 32 + "\n")
    leaky.chmod(0o644)
    url = f"sqlite:///{tmp_path / 'shadow.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    spec = devnet_spec(devnet.deployment)
    async with RpcClient([devnet.url], timeout=10.0) as client:
        node = _Calls(client.transport)
        client.transport = node
        loaded = await load_book(client, spec)
        book = loaded.book
        with sessions.begin() as session:
            repo.upsert_chain(session, CHAIN, "devnet")
            run_id = repo.start_run(session, CHAIN, mode="shadow")
        plan = live_plan(
            load_settings(),
            builder_url=None,
            environ={"ARBX_SIGNING_KEY_FILE": str(leaky), "ARBX_RELAY_KEY": "0x" + "22" * 32},
        )
        execution = await build_execution(
            "shadow", live=plan, engine=engine, sessions=sessions, client=client, chain_id=CHAIN,
            run_id=run_id, base_tokens=spec.base_tokens, pools=book.pools,
        )  # fmt: skip
        assert execution.simulator is not None
        strategy = CyclicArbitrage(book, StrategyLimits(base_tokens=spec.base_tokens))
        pipeline = Pipeline(
            heads(client, poll_interval=0.02, use_ws=False), ChainSync(client, book),
            strategy, execution, pools=lambda: len(book),
            resync=BookResync(client, book, loaded.metas),  # as the engine: a deep reorg reloads
        )  # fmt: skip
        stop = asyncio.Event()
        drained: list[str] = []

        def judged() -> bool:
            """A trade that failed simulation and one that passed, both scored."""
            rows = _rows(sessions, run_id)
            failed = [r for r in rows if r[2] == "simulated_revert" and r[3] is not None]
            passed = [r for r in rows if r[2] == "simulated_ok" and r[3] is not None]
            return any(drained[0] in r[1] for r in failed) and bool(passed)

        def v2_passed() -> list[V2Pool]:
            """The V2 pairs of the routes that passed simulation so far, the most often first."""
            rows = _rows(sessions, run_id)
            seen = Counter(p for r in rows if r[2] == "simulated_ok" for p in r[1])
            pools = [book.pools.get(p) for p, _ in seen.most_common()]
            return [p for p in pools if isinstance(p, V2Pool)]

        async def rig() -> None:
            try:
                await wait_for(lambda: len(v2_passed()) > 0 and len(_rows(sessions, run_id)) >= 10)
                pair = v2_passed()[0]
                await _drain(client, pair)
                drained.append(pair.address)
                try:
                    await wait_for(judged, timeout=300)
                except TimeoutError:
                    raise AssertionError((drained, _rows(sessions, run_id)[-30:])) from None
            finally:
                stop.set()

        task = asyncio.ensure_future(rig())
        try:
            await asyncio.wait_for(pipeline.run(stop, max_blocks=2_000), timeout=420)
            await task
        finally:
            task.cancel()
            await execution.close()
    stats = execution.simulator.stats
    rows = _rows(sessions, run_id)
    failed = [r for r in rows if r[2] == "simulated_revert" and r[3] is not None]
    passed = [r for r in rows if r[2] == "simulated_ok" and r[3] is not None]
    assert {r[3] for r in failed} == {"never_real"}
    assert any(drained[0] in r[1] for r in failed)  # a trade through the drained pair
    assert "never_real" not in {r[3] for r in passed}
    assert stats.failed == len([r for r in rows if r[2] == "simulated_revert"])
    assert stats.passed == len([r for r in rows if r[2] == "simulated_ok"])
    assert stats.skipped_reason == ""
    # the trades were called on the executor placed by a state override, from its owner
    ours = [
        c
        for c in node.calls
        if c[0].get("to") == SHADOW_EXECUTOR and c[0]["data"] != OWNER and len(c) == 3
    ]
    assert len(ours) >= stats.passed + stats.failed
    assert {c[0]["from"] for c in ours} == {SHADOW_OWNER}
    with sessions() as session:
        summary = score_repo.summary(session, run_id)
    assert summary["simulations"]["simulated_revert"] == len(failed)
    assert summary["simulations"]["simulated_ok"] == len(passed)
    assert summary["going_live_trades"] >= 1
    assert summary["going_live_net_profit_wei"] > 0
    assert execution.closing == (stats.line(),)
    assert f"{stats.failed} failed (never real)" in execution.closing[0]
