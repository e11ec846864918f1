"""Live modes end to end on the embedded devnet: bundles through the local builder, realized profit
against expected, the kill switch, one signer per key, and shadow mode never sending."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from arbx.chain.heads import heads
from arbx.chain.rpc import RpcClient
from arbx.chain.sync import ChainSync
from arbx.cli.live import devnet_keys, live_executor, stage_caps
from arbx.cli.run import DEVNET_RISK, _bootstrap, devnet_spec
from arbx.config import load_settings
from arbx.devnet.commands import EmbeddedDevnet
from arbx.engine.pipeline import Pipeline
from arbx.executors.shadow import ShadowExecutor
from arbx.risk.killswitch import kill
from arbx.store import execution_repo, make_engine, make_session_factory, migrate, repo
from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits

pytestmark = pytest.mark.e2e


def _arbx(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arbx.cli", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_limited_run_captures_with_realized_close_to_expected(tmp_path: Path) -> None:
    env = {"ARBX_DATABASE_URL": f"sqlite:///{tmp_path / 'arbx.db'}"}
    proc = _arbx(
        "run", "--mode", "limited", "--max-blocks", "300", "--plain", "--pace", "0.1",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = _arbx("report", "--json", cwd=tmp_path, env=env)
    data = json.loads(report.stdout)
    bundles = data["bundles"]
    assert data["run"]["mode"] == "limited"
    assert bundles["included"] >= 10, bundles
    assert bundles["reverted"] == 0  # no reverted transaction of ours landed
    expected = int(data["included_expected_net_profit_wei"])
    realized = int(data["included_realized_profit_wei"])
    assert expected > 0
    assert realized >= expected * 95 // 100, (realized, expected)
    key = (tmp_path / "data" / "devnet-searcher.key").read_text().strip().lower().removeprefix("0x")
    assert key not in (proc.stdout + proc.stderr).lower()


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedDevnet, Path]]:
    folder = tmp_path_factory.mktemp("live")
    key_file = folder / "devnet-searcher.key"
    with EmbeddedDevnet.start(seed=21, pace=0.05, searcher_key_file=key_file) as running:
        yield running, key_file


@pytest_asyncio.fixture
async def client(devnet: tuple[EmbeddedDevnet, Path]) -> AsyncIterator[RpcClient]:
    async with RpcClient([devnet[0].url], timeout=10.0) as rpc:
        yield rpc


async def _searcher_nonce(client: RpcClient, devnet: EmbeddedDevnet) -> int:
    searcher = devnet.deployment.accounts.searcher
    return int(await client.call("eth_getTransactionCount", [searcher, "latest"]), 16)


class _Live:
    """One live engine over the devnet, as `arbx run --mode limited` wires it."""

    def __init__(self, devnet: EmbeddedDevnet, key_file: Path, db: Path) -> None:
        self.devnet, self.key_file = devnet, key_file
        self.url = f"sqlite:///{db}"
        migrate.upgrade(self.url)
        self.engine = make_engine(self.url)
        self.sessions = make_session_factory(self.engine)
        execution = load_settings().execution.model_copy(update={"blocks_ahead": 1})
        self.settings = load_settings().model_copy(
            update={"mode": "limited", "risk": DEVNET_RISK, "execution": execution}
        )
        self.spec = devnet_spec(devnet.deployment)

    async def build(self, client: RpcClient) -> tuple[Pipeline, Any, Any, int]:
        book, _, _ = await _bootstrap(client, self.spec)
        with self.sessions.begin() as session:
            repo.upsert_chain(session, 31337, "devnet")
            run_id = repo.start_run(session, 31337, mode="limited")
        recorder = ShadowExecutor(self.sessions, run_id, 31337)
        environ = {**os.environ, **devnet_keys(self.key_file.parent, self.key_file)}
        executor, risk, relay = await live_executor(
            settings=self.settings, mode="limited", engine=self.engine, sessions=self.sessions,
            client=client, chain_id=31337, base_token=self.spec.base_tokens[0], pools=book.pools,
            recorder=recorder, builder_url=self.devnet.builder_url, environ=environ, deploy=True,
        )  # fmt: skip
        strategy = CyclicArbitrage(book, StrategyLimits(base_tokens=self.spec.base_tokens))
        strategy.caps = lambda: stage_caps(risk, self.spec.base_tokens)
        pipeline = Pipeline(
            heads(client, poll_interval=0.02, use_ws=False), ChainSync(client, book),
            strategy, executor, pools=lambda: len(book),
        )  # fmt: skip
        return pipeline, executor, (risk, relay), run_id


@pytest.mark.asyncio
async def test_shadow_never_sends(client: RpcClient, devnet: tuple[EmbeddedDevnet, Path]) -> None:
    running, _ = devnet
    before = await _searcher_nonce(client, running)
    spec = devnet_spec(running.deployment)
    book, _, _ = await _bootstrap(client, spec)
    strategy = CyclicArbitrage(book, StrategyLimits(base_tokens=spec.base_tokens))

    class _Count:
        blocks = 0

        async def on_block(self, block: Any) -> None:
            self.blocks += 1

    pipeline = Pipeline(
        heads(client, poll_interval=0.02, use_ws=False), ChainSync(client, book), strategy, _Count()
    )
    summary = await pipeline.run(asyncio.Event(), max_blocks=40)
    assert summary.opportunities > 0
    assert await _searcher_nonce(client, running) == before == 0


@pytest.mark.asyncio
async def test_kill_switch_stops_sending_within_a_block_and_a_second_signer_is_refused(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    running, key_file = devnet
    first = _Live(running, key_file, tmp_path / "shared.db")
    pipeline, executor, (risk, relay), run_id = await first.build(client)
    assert risk.mode == "limited", risk.reason
    try:
        second = _Live(running, key_file, tmp_path / "shared.db")
        _, _, (other_risk, other_relay), _ = await second.build(client)
        assert other_risk.mode == "shadow"
        assert "held" in (other_risk.reason or "")
        await other_relay.close()

        stop = asyncio.Event()
        killed_at: list[int] = []

        async def kill_after_first_bundle() -> None:
            while executor.stats.sent == 0:
                await asyncio.sleep(0.01)
            head = int(await client.call("eth_blockNumber", []), 16)
            kill(first.sessions, 31337, "test", "pytest")
            killed_at.append(head)

        killer = asyncio.ensure_future(kill_after_first_bundle())
        await pipeline.run(stop, max_blocks=120)
        await killer
    finally:
        await executor.close()
        risk.stop()
        await relay.close()
    with first.sessions.begin() as session:
        bundles = execution_repo.list_bundles(session, run_id)
    assert bundles
    late = [b for b in bundles if b.target_block > killed_at[0] + 2]
    assert late == []  # nothing targets a block after the one following the kill
