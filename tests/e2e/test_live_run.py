"""Live modes end to end on the embedded devnet: bundles through the local builder, realized profit
against expected, the kill switch, one signer per key, and shadow mode never sending."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from arbx.chain.book import load_book
from arbx.chain.heads import heads
from arbx.chain.resync import BookResync
from arbx.chain.rpc import RpcClient, RpcError
from arbx.chain.sync import ChainSync
from arbx.cli.live import devnet_keys, live_executor, stage_caps
from arbx.cli.run import DEVNET_RISK, devnet_spec
from arbx.config import load_settings
from arbx.devnet.commands import EmbeddedDevnet
from arbx.engine.pipeline import Pipeline
from arbx.execution.flashbots import block_uuid
from arbx.execution.inclusion import Outcome
from arbx.execution.rawtx import decode_raw_tx
from arbx.executors import bundle as bundle_executor
from arbx.executors.shadow import ShadowExecutor
from arbx.risk.killswitch import kill, unkill
from arbx.risk.signer_lock import SignerLock
from arbx.store import execution_repo, make_engine, make_session_factory, migrate, repo
from arbx.store import risk_repo as rrepo
from arbx.store.models import Block, BundleRow
from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits
from tests.e2e.faulty_node import FaultyNode, wait_for

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
    live = data["run"]["summary"]["live"]
    # each head reached the bundle executor before its block (on_head: settlement and the
    # first fence overlap the sync), through the wrappers `arbx run` puts around it
    assert len(live["bundle_cpu_ms"]) >= live["sent"] // 2, live
    # and each trade was chosen from its block's best routes sized first (the lead), the rest
    # sized after the bundle left: the pipeline reached the executor's on_lead through them too
    assert live["led"] >= live["sent"] > 0, live
    closing = next(line for line in proc.stdout.splitlines() if line.startswith("live: "))
    assert f"{live['sent']} bundles sent" in closing  # the closing line counts what the run did
    assert f"{live['stale']} late" in closing
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
        loaded = await load_book(client, self.spec)
        book = loaded.book
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
            resync=BookResync(client, book, loaded.metas),  # as the engine: a deep reorg reloads
        )  # fmt: skip
        return pipeline, executor, (risk, relay), run_id


async def _started(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], folder: Path
) -> tuple[_Live, Pipeline, Any, tuple[Any, Any], int]:
    """A live engine on the devnet with a database of its own in ``folder``, built."""
    live = _Live(*devnet, folder / "live.db")
    pipeline, executor, parts, run_id = await live.build(client)
    return live, pipeline, executor, parts, run_id


async def _run_until(
    pipeline: Pipeline,
    parts: tuple[Any, Any, Any],
    stop: asyncio.Event,
    watcher: Awaitable[None],
    *,
    max_blocks: int = 600,
    timeout: float = 120,
) -> None:
    """Run the live pipeline until ``stop`` while ``watcher`` acts on it, then close the
    executor, the risk controller and the relay (``parts``)."""
    executor, risk, relay = parts
    task = asyncio.ensure_future(watcher)
    try:
        await asyncio.wait_for(pipeline.run(stop, max_blocks=max_blocks), timeout=timeout)
        await task
    finally:
        task.cancel()
        await executor.close()
        risk.stop()
        await relay.close()


@pytest.mark.asyncio
async def test_shadow_never_sends(client: RpcClient, devnet: tuple[EmbeddedDevnet, Path]) -> None:
    running, _ = devnet
    before = await _searcher_nonce(client, running)
    spec = devnet_spec(running.deployment)
    book = (await load_book(client, spec)).book
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


# --- the fences between a signature and the send ------------------------------------------------


class _Wire:
    """What a client sends, seen at its transport seam (the relay's or the node's)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.methods: list[str] = []

    async def post(self, url: str, body: bytes, timeout: float, headers: Any = None) -> Any:
        doc = json.loads(body)
        self.methods.extend(d["method"] for d in (doc if isinstance(doc, list) else [doc]))
        return await self.inner.post(url, body, timeout, headers)

    async def websocket(self, url: str, timeout: float) -> Any:
        return await self.inner.websocket(url, timeout)

    async def close(self) -> None:
        await self.inner.close()


class _Simulations(_Wire):
    """The node's side: the simulations of the executor's signed calls (``eth_call`` to it).

    ``hook`` runs once one of them passed: after the signature, before the send. With
    ``error`` set, the node's answer to each is that error instead (a revert, or a node that
    cannot run the call).
    """

    def __init__(self, inner: Any, executor: str) -> None:
        super().__init__(inner)
        self.executor = executor.lower()
        self.hook: Any = None
        self.error: dict[str, Any] | None = None
        self.seen = 0
        self.intents_given: list[int] = []  # the executor's intents given as each answer came
        self.intents: Any = None  # the executor's intent writer, when watched

    async def post(self, url: str, body: bytes, timeout: float, headers: Any = None) -> Any:
        doc = json.loads(body)
        answer = await super().post(url, body, timeout, headers)
        if not isinstance(doc, list) or not isinstance(answer, list):  # simulations are batched
            return answer
        ours = {
            d["id"]
            for d in doc
            if d["method"] == "eth_call" and str(d["params"][0].get("to")) == self.executor
        }
        if not ours:
            return answer
        self.seen += 1
        if self.intents is not None:
            self.intents_given.append(self.intents.submitted)
        error = self.error
        if error is not None:
            return [
                {"jsonrpc": "2.0", "id": a["id"], "error": error} if a.get("id") in ours else a
                for a in answer
            ]
        hook = self.hook
        if hook is not None and all("result" in a for a in answer if a.get("id") in ours):
            self.hook = None
            hook()
        return answer


def _watch_simulations(client: RpcClient, executor: Any) -> _Simulations:
    node = _Simulations(client.transport, executor.settings.executor)
    node.intents = executor.intents
    client.transport = node
    return node


def _intents_taken_back(live: _Live, executor: Any, node: _Simulations) -> None:
    """Each trade's intent was given while the node simulated it (before its answer), was
    written, and, the bundle refused by the last fence, no row is left looking in flight."""
    assert node.intents_given[0] >= 1  # the first trade's intent, before its simulation answered
    assert all(given >= n for n, given in enumerate(node.intents_given, start=1))
    assert executor.intents.written >= 1
    with live.sessions() as session:
        statuses = session.scalars(select(BundleRow.status)).all()
    assert "sent" not in statuses, statuses


async def _interfere_before_send(
    client: RpcClient, live: _Live, interfere: Any, undo: Any
) -> tuple[Any, _Wire, _Simulations]:
    """Run the engine until one trade met ``interfere`` between its signature and its send.

    A trade the chain overtook never reached the last fence: the interference is undone and
    tried again on the next one.
    """
    pipeline, executor, (risk, relay), _ = await live.build(client)
    wire = _Wire(relay.transport)
    relay.transport = wire
    node = _watch_simulations(client, executor)
    stop = asyncio.Event()
    s = executor.stats
    met = asyncio.Event()
    at_hook: list[tuple[int, ...]] = []

    def hook() -> None:  # the trade it runs in has not concluded yet
        at_hook.append((s.sent, s.refused, s.sim_failed, s.stale))
        interfere()
        met.set()

    async def watch() -> None:
        for _ in range(20):
            met.clear()
            node.hook = hook
            await met.wait()
            before = at_hook[-1]
            while (s.sent, s.refused, s.sim_failed, s.stale) == before:
                await asyncio.sleep(0.005)
            if (s.sent, s.refused) != before[:2]:
                break
            undo()
        stop.set()

    try:
        await _run_until(pipeline, (executor, risk, relay), stop, watch())
    finally:
        client.transport = node.inner
    return executor, wire, node


@pytest.mark.asyncio
async def test_kill_switch_set_between_signature_and_send_sends_nothing(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    running, key_file = devnet
    live = _Live(running, key_file, tmp_path / "kill.db")
    executor, wire, node = await _interfere_before_send(
        client,
        live,
        lambda: kill(live.sessions, 31337, "operator", "pytest"),  # as `arbx kill` elsewhere
        lambda: unkill(live.sessions, 31337, "pytest"),
    )
    assert node.seen >= 1  # signed and simulated
    assert "eth_sendBundle" not in wire.methods
    assert executor.stats.sent == 0
    assert executor.stats.refused >= 1  # earlier tries undone may have been refused too
    assert executor.stats.last_refusal.startswith("kill switch set by pytest: operator")
    _intents_taken_back(live, executor, node)


@pytest.mark.asyncio
async def test_signer_lock_lost_between_signature_and_send_sends_nothing(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    running, key_file = devnet
    live = _Live(running, key_file, tmp_path / "lock.db")
    key = running.deployment.accounts.searcher
    ahead = {"by": timedelta(minutes=5)}  # the usurper sees our 30 s lease as long over
    usurper = SignerLock(
        make_engine(live.url),
        key,
        holder_id="usurper",
        clock=lambda: datetime.now(UTC) + ahead["by"],
    )

    def give_back() -> None:
        ahead["by"] = timedelta(0)
        usurper.release()  # its lease ends now: ours is taken back at the next refresh

    def take() -> None:
        ahead["by"] = timedelta(minutes=5)
        assert usurper.acquire() is None

    executor, wire, node = await _interfere_before_send(client, live, take, give_back)
    try:
        assert node.seen >= 1
        assert "eth_sendBundle" not in wire.methods
        assert executor.stats.sent == 0
        assert executor.stats.refused >= 1  # earlier tries undone may have been refused too
        assert executor.stats.last_refusal == "lost the signer lock"
        assert usurper.still_held()  # it was taken, and nobody took it back
        _intents_taken_back(live, executor, node)
    finally:
        usurper.release()


REVERT = {"code": 3, "message": "execution reverted: profit below minimum"}
BEHIND = {"code": -32000, "message": "header not found"}  # geth without the head's state


@pytest.mark.asyncio
async def test_the_last_fence_reads_the_database_after_the_intent_is_written(
    client: RpcClient,
    devnet: tuple[EmbeddedDevnet, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kill switch set the instant a bundle's intent is committed (here by the intent's own
    writer, slowed past the simulation) stops that bundle: the fence comes after the intent.

    A trade the chain overtook (or that failed or missed simulation) never reached the last
    fence, and a refusal before the next signature is not the last fence's: the switch is
    released and the next trade's intent sets it again."""
    running, key_file = devnet
    # the bundle waits for its intent as long as the write takes: the engine waits 50 ms, and a
    # bundle whose record is later (a loaded machine) leaves first, by design
    monkeypatch.setattr(bundle_executor, "INTENT_WAIT", 10.0)
    live = _Live(running, key_file, tmp_path / "order.db")
    pipeline, executor, (risk, relay), _ = await live.build(client)
    wire = _Wire(relay.transport)
    relay.transport = wire
    s = executor.stats
    given = executor.intents.submit
    armed, killed = threading.Event(), threading.Event()
    at_kill: list[tuple[int, ...]] = []

    def last_fences() -> int:  # fences before sending so far (each times itself)
        return len(executor.timings.get("fence before sending", ()))

    def slow_intent(job: Any, *args: Any) -> Any:
        # the counts before this trade has any outcome: a loaded machine can end its simulation
        # (failed, late) before the kill below, and no later trade comes while the switch is set
        counts = (s.sent, s.refused, s.stale, s.sim_failed, s.unsimulated, last_fences())

        def written_then_killed(*job_args: Any) -> Any:
            time.sleep(0.02)  # the simulation and a fence read are over well before
            result = job(*job_args)
            if armed.is_set():
                armed.clear()
                at_kill.append(counts)
                kill(live.sessions, 31337, "set as the intent was written", "pytest")
                killed.set()
            return result

        return given(written_then_killed, *args)

    executor.intents.submit = slow_intent
    stop = asyncio.Event()

    async def watch() -> None:
        for _ in range(20):
            killed.clear()
            armed.set()
            await wait_for(killed.is_set)
            before = at_kill[-1]
            await wait_for(
                lambda b=before: (s.sent, s.refused, s.stale, s.sim_failed, s.unsimulated) != b[:5]
            )
            if s.sent != before[0] or (s.refused != before[1] and last_fences() > before[5]):
                break  # sent, or refused by a last fence that read the database after the kill
            unkill(live.sessions, 31337, "pytest")
        stop.set()

    await _run_until(pipeline, (executor, risk, relay), stop, watch())
    assert killed.is_set()
    assert s.sent == 0
    assert "eth_sendBundle" not in wire.methods
    assert s.last_refusal == "kill switch set by pytest: set as the intent was written"


@pytest.mark.asyncio
@pytest.mark.parametrize("error", [REVERT, BEHIND], ids=["reverts", "node-behind"])
async def test_a_bundle_the_node_simulation_rejects_is_never_sent(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path, error: dict[str, Any]
) -> None:
    running, key_file = devnet
    live = _Live(running, key_file, tmp_path / "reverts.db")
    pipeline, executor, (risk, relay), run_id = await live.build(client)
    wire = _Wire(relay.transport)
    relay.transport = wire
    node = _watch_simulations(client, executor)
    node.error = error  # every trade reverts on the head's state, or the node cannot say
    stop = asyncio.Event()

    async def until_rejected() -> None:
        while executor.stats.sim_failed + executor.stats.unsimulated < 3:
            await asyncio.sleep(0.005)
        stop.set()

    try:
        await _run_until(pipeline, (executor, risk, relay), stop, until_rejected())
    finally:
        client.transport = node.inner
    assert node.seen >= 3
    assert executor.stats.sent == 0
    assert "eth_sendBundle" not in wire.methods  # signed, simulated, rejected: never sent
    assert "eth_callBundle" not in wire.methods  # the builders' simulation is off by default
    with live.sessions.begin() as session:
        recorded = execution_repo.list_bundles(session, run_id)
    if error is REVERT:  # the route's own failure: recorded, for self-scoring's never_real
        assert executor.stats.unsimulated == 0
        assert len(recorded) >= 3
        assert {b.status for b in recorded} == {"sim_failed"}
    else:  # the node's: says nothing of the route, so nothing is recorded against it
        assert executor.stats.sim_failed == 0
        assert recorded == []


@pytest.mark.asyncio
async def test_kill_switch_cancels_the_bundles_sent_for_later_blocks(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    running, key_file = devnet
    assert running.builder is not None
    builder = running.builder.builder
    live = _Live(running, key_file, tmp_path / "cancel.db")  # each bundle for 2 blocks
    pipeline, executor, (risk, relay), _ = await live.build(client)
    wire = _Wire(relay.transport)
    relay.transport = wire
    stop = asyncio.Event()
    seen: dict[str, Any] = {}

    async def kill_after_first_bundle() -> None:
        while executor.stats.sent == 0:
            await asyncio.sleep(0.002)
        (flight,) = executor.in_flight.values()
        seen["later"] = [b for b in flight.blocks if b > executor.head]
        seen["cancelled"] = builder.stats.cancelled
        risk.kill_switch.on_signal(signal.SIGUSR1)  # what `kill -USR1 <pid>` does
        while executor.stats.cancelled < len(seen["later"]):
            await asyncio.sleep(0.005)
        stop.set()

    await _run_until(pipeline, (executor, risk, relay), stop, kill_after_first_bundle())
    assert seen["later"], "the bundle waits for at least one block after the next"
    assert wire.methods.count("eth_cancelBundle") == len(seen["later"])  # one per block copy
    assert executor.stats.cancelled == len(seen["later"])  # each acknowledged
    assert builder.stats.cancelled - seen["cancelled"] >= 1  # and dropped by the builder
    assert wire.methods.count("eth_sendBundle") == 2  # nothing more after the kill


@pytest.mark.asyncio
async def test_a_locked_database_does_not_hold_bundles_back(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    running, key_file = devnet
    db = tmp_path / "locked.db"
    live = _Live(running, key_file, db)
    pipeline, executor, (risk, relay), run_id = await live.build(client)
    locked, release = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def hold_the_write_lock() -> None:  # another process's long write transaction
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            locked.set()
            release.wait(60)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    holder = threading.Thread(target=hold_the_write_lock)
    stop = asyncio.Event()

    async def lock_then_watch() -> None:
        while executor.stats.sent == 0:
            await asyncio.sleep(0.005)
        holder.start()
        await asyncio.to_thread(locked.wait)
        sent = executor.stats.sent
        while executor.stats.sent == sent:  # every write of the engine waits meanwhile
            await asyncio.sleep(0.005)
        seen["still_locked"] = not release.is_set()
        seen["records_waiting"] = executor.records.pending
        release.set()
        stop.set()

    try:
        await _run_until(pipeline, (executor, risk, relay), stop, lock_then_watch())
    finally:
        release.set()
        if holder.is_alive():
            holder.join()
    assert seen["still_locked"]  # a bundle went out while the database could not be written
    assert seen["records_waiting"] > 0  # its records were queued, not written on the way
    with live.sessions.begin() as session:
        recorded = execution_repo.list_bundles(session, run_id)
    assert len([b for b in recorded if b.status != "sim_failed"]) == executor.stats.sent


@pytest.mark.asyncio
async def test_a_kill_switch_engaged_after_a_process_died_cancels_what_it_left_for_later_blocks(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    """A process has a bundle out for a block not built yet when it ends (the market then held:
    no block comes); the kill switch is engaged while no process runs. The next live start
    cancels that bundle's copies at the builder, by the replacement uuid its intent recorded,
    before anything else, and the bundle never lands."""
    running, key_file = devnet
    assert running.builder is not None
    assert running.simulator is not None
    builder, market = running.builder.builder, running.simulator
    live = _Live(running, key_file, tmp_path / "left.db")  # each bundle for 2 blocks
    pipeline, executor, (risk, relay), run_id = await live.build(client)
    stop = asyncio.Event()
    seen: dict[str, Any] = {}

    async def a_bundle_left_open_then_end() -> None:
        while True:  # held at a moment one bundle is out for a block not built yet
            sent = executor.stats.sent
            await wait_for(lambda s=sent: executor.stats.sent > s)
            await asyncio.to_thread(market.hold.acquire)
            head = int(await client.call("eth_blockNumber", []), 16)
            out = [f for f in executor.in_flight.values() if max(f.blocks) > head]
            if len(out) == 1:
                tx = "0x" + out[0].tx_hash.hex()
                if await client.call("eth_getTransactionReceipt", [tx]) is None:
                    seen["tx"], seen["head"] = tx, head
                    break
            market.hold.release()
        stop.set()

    restart: asyncio.Future[Any] | None = None
    try:
        await _run_until(pipeline, (executor, risk, relay), stop, a_bundle_left_open_then_end())
        with live.sessions() as session:
            [row] = [
                b
                for b in execution_repo.list_bundles(session, run_id)
                if b.tx_hashes_json[0] == seen["tx"]
            ]
        assert row.status == "sent"
        kill(live.sessions, 31337, "engaged while no engine ran", "pytest")
        cancelled = builder.stats.cancelled
        restart = asyncio.ensure_future(live.build(client))
        await wait_for(lambda: builder.stats.cancelled > cancelled)  # before any block comes
        assert int(await client.call("eth_blockNumber", []), 16) == seen["head"]
    finally:
        market.hold.release()
    assert restart is not None
    _, second, (second_risk, second_relay), _ = await restart
    try:
        assert await client.call("eth_getTransactionReceipt", [seen["tx"]]) is None
        with live.sessions() as session:
            [row] = [
                b
                for b in execution_repo.list_bundles(session, run_id)
                if b.tx_hashes_json[0] == seen["tx"]
            ]
        assert row.status == "not_included"  # settled by the start once its blocks passed
    finally:
        await second.close()
        second_risk.stop()
        await second_relay.close()


@pytest.mark.asyncio
async def test_a_receipt_the_node_lacks_is_read_again_and_no_trade_comes_before(
    devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    running, key_file = devnet
    node = FaultyNode(running.url)
    await node.start()
    live = _Live(running, key_file, tmp_path / "receipts.db")
    seen: dict[str, int] = {}
    try:
        async with RpcClient([node.url], timeout=10.0) as proxied:
            pipeline, executor, (risk, relay), run_id = await live.build(proxied)
            stop = asyncio.Event()

            async def hide_then_show_receipts() -> None:
                await wait_for(lambda: executor.stats.sent >= 1)
                node.mode = "no_receipts"
                await wait_for(lambda: node.faults >= 1)  # an included bundle's receipt
                seen["sent"] = executor.stats.sent
                await wait_for(lambda: node.faults >= 4)  # asked again at each head
                seen["sent_meanwhile"] = executor.stats.sent
                node.mode = "ok"
                await wait_for(lambda: executor.stats.outcomes.get("included", 0) >= 1)
                stop.set()

            await _run_until(
                pipeline, (executor, risk, relay), stop, hide_then_show_receipts(), timeout=150
            )
    finally:
        await node.close()
    assert seen["sent_meanwhile"] == seen["sent"]  # the gas it cost was unknown: no next trade
    with live.sessions.begin() as session:
        bundles = execution_repo.list_bundles(session, run_id)
    included = [b for b in bundles if b.status == "included"]
    assert included
    assert all(b.gas_cost and b.realized_profit is not None for b in included)


@pytest.mark.asyncio
async def test_a_new_key_trades_only_once_the_shadow_gate_passes(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    """Stage 0 follows the chain without sending; the gate, measured on what the engine itself
    recorded, promotes it, and only then do bundles go out; the promotion keeps its evidence."""
    running, key_file = devnet
    live = _Live(running, key_file, tmp_path / "gate.db")
    gated = DEVNET_RISK.model_copy(
        update={
            "promote_min_blocks": 5,
            "promote_min_parity_checks": 0,
            "promote_max_latency_p99_ms": 5_000.0,
            "gate_interval_s": 0.2,
        }
    )
    live.settings = live.settings.model_copy(update={"risk": gated})
    pipeline, executor, (risk, relay), run_id = await live.build(client)
    assert (risk.stage, risk.mode) == (0, "shadow")
    assert risk.last_decision is not None
    assert risk.last_decision.reason.startswith("the next gate needs: blocks observed >= 5")
    stop = asyncio.Event()

    async def stop_after_a_bundle() -> None:
        while executor.stats.sent == 0:
            await asyncio.sleep(0.01)
        stop.set()

    watcher = asyncio.ensure_future(stop_after_a_bundle())
    try:
        await asyncio.wait_for(pipeline.run(stop, max_blocks=80), timeout=240)
    finally:
        watcher.cancel()
        await executor.close()
        risk.stop()
        await relay.close()
    assert risk.stage == 1
    assert executor.stats.sent >= 1
    with live.sessions() as session:
        (promotion,) = [
            c for c in rrepo.list_stage_history(session, 31337, risk.key) if c.kind == "promotion"
        ]
        bundles = execution_repo.list_bundles(session, run_id)
        blocks = session.scalar(select(func.count()).select_from(Block))
    assert bundles
    assert min(b.sent_at for b in bundles) > promotion.at  # nothing was sent before
    measured = {c["name"]: c for c in promotion.evidence["conditions"]}
    assert all(c["passed"] for c in measured.values())
    assert int(measured["blocks observed"]["measured"]) >= 5
    assert measured["detection latency p99"]["measured"].endswith("blocks")
    assert blocks is not None
    assert blocks >= 5


@pytest.mark.asyncio
async def test_an_included_bundle_a_reorg_takes_out_is_settled_again_and_trading_goes_on(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    """A bundle settled as included whose block a reorg replaces (``anvil_reorg``, the new
    blocks without it) leaves ``included``: its row agrees with the chain again, its nonce is
    read from the chain, and the next bundles land."""
    live, pipeline, executor, (risk, relay), run_id = await _started(client, devnet, tmp_path)
    stop = asyncio.Event()
    seen: dict[str, Any] = {}

    def included_rows() -> list[Any]:
        with live.sessions() as session:
            bundles = execution_repo.list_bundles(session, run_id)
            return [b for b in bundles if b.status == "included"]

    async def reorg_an_included_bundle_out() -> None:
        await wait_for(lambda: executor.stats.outcomes.get("included", 0) >= 1)
        await wait_for(lambda: bool(included_rows()))
        row = max(included_rows(), key=lambda b: b.included_block)
        seen["tx"], seen["block"] = row.tx_hashes_json[0], row.included_block
        # no block is made while anvil reorgs (one built meanwhile leaves blocks it no longer
        # serves under the new head); the new branch forks two blocks below the bundle's block
        market = devnet[0].simulator
        assert market is not None
        await asyncio.to_thread(market.hold.acquire)
        try:
            head = int(await client.call("eth_blockNumber", []), 16)
            await client.call("anvil_reorg", [head - row.included_block + 3, []])
        finally:
            market.hold.release()
        seen["sent"] = executor.stats.sent
        included = executor.stats.outcomes.get("included", 0)
        await wait_for(lambda: executor.stats.outcomes.get("included", 0) >= included + 2)
        await _until_every_bundle_settled(live, executor)
        stop.set()

    await _run_until(
        pipeline,
        (executor, risk, relay),
        stop,
        reorg_an_included_bundle_out(),
        max_blocks=900,
        timeout=200,
    )
    assert await client.call("eth_getTransactionReceipt", [seen["tx"]]) is None  # taken out
    with live.sessions() as session:
        bundles = execution_repo.list_bundles(session, run_id)
    taken_out = [b for b in bundles if seen["tx"] in b.tx_hashes_json]
    assert [b.status for b in taken_out] == ["not_included"]
    assert executor.stats.sent > seen["sent"]  # traded on after the reorg, with a fresh nonce
    for bundle in bundles:  # every row that says included says where the chain has it
        if bundle.status == "included":
            receipt = await client.call("eth_getTransactionReceipt", [bundle.tx_hashes_json[0]])
            assert receipt is not None, bundle.id
            assert bundle.included_block_hash is not None, bundle.id
            assert receipt["blockHash"].lower() == bundle.included_block_hash.lower(), bundle.id
    _assert_the_limits_count_what_the_rows_settled(risk, bundles)


async def _trade_on_then_settle(
    live: _Live, executor: Any, stop: asyncio.Event, *, sent_before: int, landed: bool = False
) -> None:
    """Trading goes on after the fault (two more bundles sent than ``sent_before``; with
    ``landed``, until one more bundle is included too: a bundle the market left without profit,
    or the kill switch below cancelled before its block, is not included), then every bundle
    settles and the run stops."""
    included = executor.stats.outcomes.get("included", 0)
    await wait_for(lambda: executor.stats.sent >= sent_before + 2)
    if landed:
        await wait_for(lambda: executor.stats.outcomes.get("included", 0) > included, timeout=240)
    await _until_every_bundle_settled(live, executor)
    stop.set()


async def _until_every_bundle_settled(live: _Live, executor: Any) -> None:
    """Stop trading (the kill switch) and wait until every bundle sent has settled."""
    kill(live.sessions, 31337, "every bundle settles before the counts are compared", "pytest")
    await wait_for(lambda: not executor.in_flight)


def _assert_the_limits_count_what_the_rows_settled(risk: Any, bundles: list[Any]) -> None:
    """The risk limits' gas and realized profit are those of the bundles' final settlements
    (a bundle a reorg took out counts for nothing, one it moved counts where it landed)."""
    landed = [b for b in bundles if b.status in ("included", "reverted")]
    assert landed
    gas = sum(b.gas_cost for b in landed)
    pnl = sum(b.gas_cost * -1 if b.realized_profit is None else b.realized_profit for b in landed)
    assert (risk.state.gas_spent_wei, risk.state.realized_pnl_wei) == (gas, pnl)


class _RecordedFirst(_Wire):
    """The builder's side: for each bundle arriving, whether the database already holds its
    transaction (what a process SIGKILLed during the send would leave behind)."""

    def __init__(self, inner: Any, sessions: Any) -> None:
        super().__init__(inner)
        self.sessions = sessions
        self.arrived: list[tuple[str, bool]] = []  # (tx hash, recorded before it arrived)
        self.uuids: dict[str, set[tuple[int, str]]] = {}  # tx hash -> (block, its bundle's uuid)

    async def post(self, url: str, body: bytes, timeout: float, headers: Any = None) -> Any:
        for doc in (d for d in _as_list(json.loads(body)) if d["method"] == "eth_sendBundle"):
            params = doc["params"][0]
            for raw in params["txs"]:
                tx = "0x" + decode_raw_tx(raw).hash.hex()
                block = int(params["blockNumber"], 16)
                self.uuids.setdefault(tx, set()).add((block, params.get("replacementUuid", "")))
                with self.sessions() as session:
                    rows = session.scalars(select(BundleRow.tx_hashes_json)).all()
                self.arrived.append((tx, any(tx in hashes for hashes in rows)))
        return await super().post(url, body, timeout, headers)


def _as_list(doc: Any) -> list[Any]:
    return doc if isinstance(doc, list) else [doc]


@pytest.mark.asyncio
async def test_a_bundle_is_recorded_before_it_reaches_the_builder(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    live, pipeline, executor, (risk, relay), run_id = await _started(client, devnet, tmp_path)
    wire = _RecordedFirst(relay.transport, live.sessions)
    relay.transport = wire
    stop = asyncio.Event()

    async def three_bundles() -> None:
        await wait_for(lambda: executor.stats.sent >= 3)
        stop.set()

    await _run_until(pipeline, (executor, risk, relay), stop, three_bundles())
    assert len(wire.arrived) >= 3
    assert all(recorded for _, recorded in wire.arrived), wire.arrived
    with live.sessions() as session:
        bundles = execution_repo.list_bundles(session, run_id)
    arrived = {tx for tx, _ in wire.arrived}
    sent_rows = [b for b in bundles if b.status not in ("sim_failed",)]
    # no row for a bundle that never left (late, refused), one for each that did
    assert {b.tx_hashes_json[0] for b in sent_rows} == arrived
    assert all(b.builders_json for b in sent_rows)  # the builders that acknowledged it
    for row in sent_rows:  # the key a later process can cancel its copies at the builders by
        assert row.replacement_uuid is not None, row.id
        copies = wire.uuids[row.tx_hashes_json[0]]
        assert copies == {(n, block_uuid(row.replacement_uuid, n)) for n, _ in copies}, row.id


@pytest.mark.asyncio
async def test_rows_a_reorg_deeper_than_the_journal_replaced_are_corrected_after_the_rebootstrap(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    """A bundle settled as included more than the journal's depth (64 blocks) below the head is
    no longer followed in memory; the chain then goes back to a snapshot taken before its block
    (``evm_revert``, 70 blocks and more, the market held), and the engine re-bootstraps. Its row
    must then agree with the chain again (not left ``included`` in a block the chain no longer
    has), the limits must count the final settlements only, and trading goes on."""
    live, pipeline, executor, (risk, relay), run_id = await _started(client, devnet, tmp_path)
    stop = asyncio.Event()
    seen: dict[str, Any] = {}
    snapshot = await client.call("evm_snapshot", [])
    start = int(await client.call("eth_blockNumber", []), 16)

    def included_rows() -> list[Any]:
        with live.sessions() as session:
            bundles = execution_repo.list_bundles(session, run_id)
            return [b for b in bundles if b.status == "included"]

    async def revert_past_the_journal() -> None:
        await wait_for(lambda: bool(included_rows()))
        row = min(included_rows(), key=lambda b: b.included_block)
        seen["tx"], seen["block"], seen["id"] = row.tx_hashes_json[0], row.included_block, row.id
        # the tracker forgets a settled bundle 64 blocks after it was decided
        tx = bytes.fromhex(row.tx_hashes_json[0].removeprefix("0x"))
        await wait_for(lambda: not executor.tracker.holds(tx))
        assert executor.head >= row.included_block + 64
        market = devnet[0].simulator
        assert market is not None
        await asyncio.to_thread(market.hold.acquire)
        try:
            seen["depth"] = int(await client.call("eth_blockNumber", []), 16) - start
            assert await client.call("evm_revert", [snapshot]) is True
        finally:
            market.hold.release()
        seen["sent"] = executor.stats.sent
        await wait_for(lambda: pipeline.summary.rebootstraps >= 1)
        await _until_the_row_agrees_with_the_chain(live, client, seen["id"])
        # every row the revert took out is settled not included: the limits' check below needs
        # a bundle landed on the new branch
        await _trade_on_then_settle(live, executor, stop, sent_before=seen["sent"], landed=True)

    await _run_until(
        pipeline,
        (executor, risk, relay),
        stop,
        revert_past_the_journal(),
        max_blocks=2000,
        timeout=600,
    )
    assert seen["depth"] > 64
    assert executor.stats.rows_corrected >= 1
    with live.sessions() as session:
        bundles = execution_repo.list_bundles(session, run_id)
    [row] = [b for b in bundles if b.id == seen["id"]]
    receipt = await client.call("eth_getTransactionReceipt", [seen["tx"]])
    if receipt is None:  # taken out by the revert: not included (its window long passed)
        assert row.status == "not_included", row.status
    else:  # put in a block of the new branch: recorded there
        assert row.status == "included"
        assert str(row.included_block_hash).lower() == receipt["blockHash"].lower()
    for bundle in bundles:  # every row that says included says where the chain has it
        if bundle.status in ("included", "reverted"):
            receipt = await client.call("eth_getTransactionReceipt", [bundle.tx_hashes_json[0]])
            assert receipt is not None, bundle.id
            assert receipt["blockHash"].lower() == str(bundle.included_block_hash).lower()
    _assert_the_limits_count_what_the_rows_settled(risk, bundles)


async def _until_the_row_agrees_with_the_chain(
    live: _Live, client: RpcClient, bundle_id: int, timeout: float = 120.0
) -> None:
    """Poll until bundle row ``bundle_id`` says what the chain says of its transaction: included
    in the block its receipt names, or not included when there is no receipt."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        with live.sessions() as session:
            row = session.get(BundleRow, bundle_id)
            assert row is not None
            status, block_hash, tx = row.status, row.included_block_hash, row.tx_hashes_json[0]
        receipt = await client.call("eth_getTransactionReceipt", [tx])
        if receipt is None and status == "not_included":
            return
        landed = status in ("included", "reverted")
        if landed and receipt is not None and str(block_hash) == receipt["blockHash"].lower():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"bundle {bundle_id} is {status} in {block_hash}; receipt {receipt}")
        await asyncio.sleep(0.05)


class _HeadGate:
    """The engine's heads, passed on while open; while closed, only the newest one seen is kept
    and handed on first once opened (a loaded engine told only the newest of several heads)."""

    def __init__(self, stream: AsyncIterator[Any]) -> None:
        self.inner = stream
        self.open = True
        self.held: Any = None

    async def stream(self) -> AsyncIterator[Any]:
        async for head in self.inner:
            if not self.open:
                self.held = head
                continue
            if self.held is not None:
                held, self.held = self.held, None
                if held.number < head.number:
                    yield held
            yield head

    def reopen(self) -> None:
        self.open = True


@pytest.mark.asyncio
async def test_a_reorged_out_bundle_is_found_again_by_its_receipt_at_a_later_head(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    """A bundle included, then taken out by a reorg while its window is still open (the market
    held: no block is built meanwhile), is pending again; its transaction then lands in a block
    the engine's heads never show (the heads gated while two blocks are mined), and at the next
    head the engine finds it by its receipt: its row says included in that block, the limits
    count it once, and trading goes on."""
    live = _Live(*devnet, tmp_path / "live.db")
    execution = live.settings.execution.model_copy(update={"blocks_ahead": 8})  # a wide window
    live.settings = live.settings.model_copy(update={"execution": execution})
    pipeline, executor, (risk, relay), run_id = await live.build(client)
    gate = _HeadGate(pipeline.heads)
    pipeline.heads = gate.stream()
    market = devnet[0].simulator
    assert market is not None
    stop = asyncio.Event()
    seen: dict[str, Any] = {}

    def included_in_window(head: int) -> Any:
        for bundle in executor.tracker.landed():
            if bundle.outcome is Outcome.INCLUDED and head < bundle.last_block - 2:
                return bundle
        return None

    async def reorg_out_then_land_unseen() -> None:
        while True:  # a bundle included whose window is still open while the market is held
            await wait_for(lambda: bool(executor.tracker.landed()))
            await asyncio.to_thread(market.hold.acquire)
            head = int(await client.call("eth_blockNumber", []), 16)
            bundle = included_in_window(head)
            if bundle is not None and executor.tracker.head == head:
                break
            market.hold.release()
            await wait_for(lambda h=head: (executor.tracker.head or 0) > h)
        try:
            seen["key"], seen["tx"] = bundle.key, "0x" + bundle.tx_hashes[0].hex()
            raw = executor._done.get(bundle.key) or executor.in_flight[bundle.key]
            seen["raw"] = raw.record.signed.raw_hex
            await client.call("anvil_reorg", [head - (bundle.block_number or 0) + 1, []])
            while int(await client.call("eth_blockNumber", []), 16) <= head:  # a head to tell
                await client.call("evm_mine", [])
            await wait_for(lambda: bundle.outcome is Outcome.PENDING)  # the engine saw it go
            assert await client.call("eth_getTransactionReceipt", [seen["tx"]]) is None
            gate.open = False
            with contextlib.suppress(RpcError):  # the node may hold it in its pool already
                await client.call("eth_sendRawTransaction", [seen["raw"]])
            await client.call("evm_mine", [])
            receipt = await client.call("eth_getTransactionReceipt", [seen["tx"]])
            assert receipt is not None  # it landed in the block after the reorg's head
            seen["block"] = int(receipt["blockNumber"], 16)
            await client.call("evm_mine", [])
            await wait_for(lambda: gate.held is not None and gate.held.number > seen["block"])
            gate.reopen()
            await client.call("evm_mine", [])  # the next head: the gate hands the held one first
            await wait_for(lambda: bundle.outcome is Outcome.INCLUDED)
        finally:
            market.hold.release()
        seen["sent"] = executor.stats.sent
        await _trade_on_then_settle(live, executor, stop, sent_before=seen["sent"])

    await _run_until(
        pipeline,
        (executor, risk, relay),
        stop,
        reorg_out_then_land_unseen(),
        max_blocks=900,
        timeout=300,
    )
    assert executor.tracker.stats.relocated >= 1  # found by its receipt, not in a head's block
    receipt = await client.call("eth_getTransactionReceipt", [seen["tx"]])
    assert int(receipt["blockNumber"], 16) == seen["block"]
    with live.sessions() as session:
        bundles = execution_repo.list_bundles(session, run_id)
    [row] = [b for b in bundles if seen["tx"] in b.tx_hashes_json]
    assert (row.status, row.included_block) == ("included", seen["block"])
    assert str(row.included_block_hash).lower() == receipt["blockHash"].lower()
    _assert_the_limits_count_what_the_rows_settled(risk, bundles)


@pytest.mark.asyncio
async def test_realized_profit_is_what_each_transaction_moved_to_the_executor(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    """Each included bundle's realized profit is read from its receipt's logs, so it is known
    from a node that no longer has the state of its block (the engine's node answers no
    balance at a block here), and is exactly the executor's base-token balance across its block
    less its gas (read from the full node): the real executor contract, WETH9 and the Uniswap
    pools emit every move."""
    running, key_file = devnet
    node = FaultyNode(running.url)
    await node.start()
    node.mode = "no_balances"
    live = _Live(running, key_file, tmp_path / "realized.db")
    try:
        async with RpcClient([node.url], timeout=10.0) as pruned:
            pipeline, executor, parts, run_id = await live.build(pruned)
            stop = asyncio.Event()

            async def three_included() -> None:
                await wait_for(lambda: executor.stats.outcomes.get("included", 0) >= 3, timeout=150)
                # a bundle still unsettled may have landed in the block of an included one
                await _until_every_bundle_settled(live, executor)
                stop.set()

            await _run_until(pipeline, (executor, *parts), stop, three_included(), timeout=180)
    finally:
        await node.close()
    with live.sessions() as session:
        included = [
            b for b in execution_repo.list_bundles(session, run_id) if b.status == "included"
        ]
    assert len(included) >= 3
    token, holder = executor.settings.base_token, executor.settings.executor
    data = "0x70a08231" + holder[2:].lower().rjust(64, "0")
    by_block: dict[int, int] = {}  # what our transactions kept in each block, gas back in
    for bundle in included:
        block, gas, kept = bundle.included_block, bundle.gas_cost, bundle.realized_profit
        assert block is not None
        assert gas is not None
        assert kept is not None
        by_block[block] = by_block.get(block, 0) + kept + gas
    # read below the head only: while anvil mines a block, a read at the head (by number or by
    # hash) can answer from the new block's state (320 of 18,000 reads during evm_mine here; seen
    # as the next bundle's profit in the last block's balance)
    while int(await client.call("eth_blockNumber", []), 16) <= max(by_block) + 1:
        await asyncio.sleep(0.05)
    for block, kept in by_block.items():  # two of ours may land in one block
        after, before = [
            int(await client.call("eth_call", [{"to": token, "data": data}, hex(n)]), 16)
            for n in (block, block - 1)
        ]
        assert kept == after - before, block
