"""The shadow run end to end on the embedded devnet: long runs stay exact, a dead RPC endpoint
does not stop the run, and the command line behaves for a new user."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from arbx.chain.book import load_book
from arbx.chain.heads import heads
from arbx.chain.parity import check_parity
from arbx.chain.rpc import RpcClient
from arbx.chain.sync import ChainSync
from arbx.chain.verify import follow_and_verify
from arbx.cli.run import devnet_spec
from arbx.devnet.commands import EmbeddedDevnet
from arbx.engine.pipeline import BlockResult, Pipeline
from arbx.store import api_repo, make_engine, make_session_factory
from arbx.store.models import BlockResultRow, Run
from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits

pytestmark = pytest.mark.e2e


class _Recorder:
    """An executor that keeps what it is given (the shadow executor's store is tested elsewhere)."""

    def __init__(self) -> None:
        self.blocks: list[BlockResult] = []

    async def on_block(self, block: BlockResult) -> None:
        self.blocks.append(block)


@pytest.fixture(scope="module")
def devnet() -> Iterator[EmbeddedDevnet]:
    with EmbeddedDevnet.start(seed=11, pace=0.02) as running:
        yield running


@pytest_asyncio.fixture
async def engine(devnet: EmbeddedDevnet) -> AsyncIterator[tuple[RpcClient, Any]]:
    async with RpcClient([devnet.url], timeout=10.0) as client:
        yield client, devnet_spec(devnet.deployment)


async def run_blocks(client: RpcClient, spec: Any, blocks: int) -> tuple[Any, Any, _Recorder]:
    loaded = await load_book(client, spec)
    book, metas = loaded.book, loaded.metas
    strategy = CyclicArbitrage(book, StrategyLimits(base_tokens=spec.base_tokens, max_hops=3))
    recorder = _Recorder()
    pipeline = Pipeline(
        heads(client, poll_interval=0.02, use_ws=False),
        ChainSync(client, book),
        strategy,
        recorder,
        pools=lambda: len(book),
    )
    summary = await pipeline.run(asyncio.Event(), max_blocks=blocks)
    return summary, (book, metas), recorder


@pytest.mark.asyncio
async def test_200_blocks_of_market_end_in_exact_parity(engine: tuple[RpcClient, Any]) -> None:
    client, spec = engine
    summary, (book, metas), recorder = await run_blocks(client, spec, 200)
    assert summary.blocks == 200
    numbers = [b.head.number for b in recorder.blocks]
    assert numbers == list(range(numbers[0], numbers[0] + 200))  # every block, once, in order
    assert sum(len(b.update.changed) for b in recorder.blocks) > 200  # the market moved pools
    assert summary.opportunities > 0
    result = await check_parity(client, book, metas)
    assert result.checked == len(metas) > 30
    assert result.differences == {}


class _Proxy:
    """A TCP forwarder in front of the node: an endpoint that can die mid-run."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for task in (pipe(reader, up_writer), pipe(up_reader, writer)):
            handle = asyncio.ensure_future(task)
            self.tasks.add(handle)
            handle.add_done_callback(self.tasks.discard)

    async def kill(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await self.server.wait_closed()


@pytest.mark.asyncio
async def test_the_run_goes_on_when_one_endpoint_dies(devnet: EmbeddedDevnet) -> None:
    proxy = _Proxy(int(devnet.url.rsplit(":", 1)[1]))
    port = await proxy.start()
    endpoints = [f"http://127.0.0.1:{port}", devnet.url]  # the proxy is preferred
    async with RpcClient(endpoints, timeout=2.0, probe_interval=60.0) as client:
        spec = devnet_spec(devnet.deployment)
        loaded = await load_book(client, spec)
        book, metas = loaded.book, loaded.metas
        strategy = CyclicArbitrage(book, StrategyLimits(base_tokens=spec.base_tokens))
        recorder = _Recorder()
        stop = asyncio.Event()

        async def kill_after_ten() -> None:
            while len(recorder.blocks) < 10:
                await asyncio.sleep(0.01)
            await proxy.kill()

        killer = asyncio.ensure_future(kill_after_ten())
        pipeline = Pipeline(
            heads(client, poll_interval=0.02, use_ws=False),
            ChainSync(client, book),
            strategy,
            recorder,
        )
        summary = await pipeline.run(stop, max_blocks=40)
        await killer
        assert summary.blocks == 40
        assert client.stats.failovers >= 1
        result = await check_parity(client, book, metas)
        assert result.differences == {}


TEN_MINUTES = timedelta(minutes=10)


def _arbx(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arbx.cli", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_bad_settings_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[chain]\nrpc = ["http://127.0.0.1:1"]\n[[venues]]\nname = "x"\nkind = "curve"\n'
    )
    proc = _arbx("run", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "venues.0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_embedded_run_then_report(tmp_path: Path) -> None:
    env = {"ARBX_DATABASE_URL": f"sqlite:///{tmp_path / 'arbx.db'}"}
    proc = _arbx("run", "--max-blocks", "8", "--plain", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "stopped (8 blocks)" in proc.stdout
    report = _arbx("report", "--json", cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["blocks"] == 8
    assert data["run"]["mode"] == "shadow"
    assert data["parity"]["failures"] == 0
    assert data["parity"]["checks"] == 8  # every block, once settled
    assert data["parity"]["coverage"] == 1.0
    assert data["run"]["summary"]["parity"]["blocks_checked"] == 8
    assert set(data["latency_ms"]) >= {"p50", "p90", "p99"}
    # The run's operator token no longer authenticates once the run is over.
    token = re.search(r"operator token for this run: (\S+)\)", proc.stdout)
    assert token is not None, proc.stdout
    engine = make_engine(env["ARBX_DATABASE_URL"])
    with make_session_factory(engine)() as session:
        stored = api_repo.find_token(session, token.group(1))
    engine.dispose()
    assert stored is not None
    assert stored.revoked_at is not None


def test_a_run_killed_without_a_stop_is_closed_by_the_next_start(tmp_path: Path) -> None:
    env = {"ARBX_DATABASE_URL": f"sqlite:///{tmp_path / 'arbx.db'}"}
    killed = subprocess.Popen(
        [sys.executable, "-m", "arbx.cli", "run", "--plain"],
        cwd=tmp_path, env={**os.environ, **env}, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert killed.stdout is not None
        blocks = 0
        for line in killed.stdout:
            blocks += line.startswith("block ")
            if blocks == 3:
                break
    finally:
        os.killpg(killed.pid, signal.SIGKILL)  # the engine and its devnet, with no stop
        killed.wait()
    engine = make_engine(env["ARBX_DATABASE_URL"])
    sessions = make_session_factory(engine)
    with sessions.begin() as session:  # ten minutes pass
        (run_id,) = session.scalars(select(Run.id).where(Run.status == "running")).all()
        for row in session.scalars(select(BlockResultRow)):
            row.recorded_at -= TEN_MINUTES
        for run in session.scalars(select(Run)):
            run.started_at -= TEN_MINUTES
    proc = _arbx("run", "--max-blocks", "3", "--plain", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    with sessions() as session:
        runs = {run.id: run for run in session.scalars(select(Run))}
    engine.dispose()
    assert runs[run_id].status == "failed"
    assert (runs[run_id].summary_json or {})["reason"] == "ended without a stop: killed"
    assert [r.status for i, r in sorted(runs.items()) if i != run_id] == ["stopped"]


@pytest.mark.asyncio
async def test_follow_and_verify_finds_the_book_equal_to_the_chain(
    engine: tuple[RpcClient, Any],
) -> None:
    client, spec = engine
    verified = await follow_and_verify(client, spec, 5, poll_interval=0.05)
    assert verified.blocks == 5
    assert verified.sync.blocks >= 5
    loaded = await load_book(client, spec)
    assert verified.parity.checked == len(loaded.metas)  # every pool of the book compared
    assert verified.parity.failures == 0, verified.parity.differences
