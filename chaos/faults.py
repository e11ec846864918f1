"""The faults, each injected into the running stage and then taken away.

Each returns a :class:`Fault`: whether the run survived it (the engine carried on, or stopped
with one clear message and was started again, and caught up with the chain once the fault was
gone), how long recovery took (from the fault's end to the first block the engine processed at
or past the chain's head of that moment), and what was seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sqlite3
import statistics
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from arbx.chain.rpc import RpcClient
from arbx.devnet.anvil import free_port
from chaos.run import Stage
from chaos.world import PYTHON, EngineProcess, arbx

CATCH_UP_TIMEOUT = 60.0
HOLD_LEASE = 60.0  # seconds the market's builder stays held if the suite dies holding it
HOLD = {"seconds": 10.0}  # how long a fault lasts (the short form in make test holds less)


@dataclass
class Fault:
    """One fault's outcome."""

    name: str
    survived: bool
    recover_s: float | None
    detail: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


async def caught_up(stage: Stage, engine: EngineProcess, since: float) -> float:
    """Seconds from ``since`` until ``engine`` processed a block at or past the chain's head of
    now (TimeoutError if it does not within CATCH_UP_TIMEOUT)."""
    target = await stage.head()
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while engine.log.last_block() < target:
        if not engine.running:
            raise RuntimeError(f"{engine.name} ended: {engine.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{engine.name} is not back at block {target}")
        await asyncio.sleep(0.02)
    at = next(t for t, n in reversed(engine.log.blocks) if n >= target)
    return max(0.0, at - since)


async def _while(
    name: str,
    stage: Stage,
    engine: EngineProcess,
    seconds: float,
    inject: Callable[[], Awaitable[None]],
    remove: Callable[[], Awaitable[None]],
) -> Fault:
    """Inject, hold for ``seconds``, remove; then wait for the engine to catch up."""
    sent_before = len(engine.log.named("bundle_sent"))
    await inject()
    try:
        await asyncio.sleep(seconds)
    finally:
        await remove()
    ended = time.monotonic()
    try:
        recover = await caught_up(stage, engine, ended)
    except (TimeoutError, RuntimeError) as exc:
        return Fault(name, False, None, str(exc))
    sent = len(engine.log.named("bundle_sent")) - sent_before
    return Fault(name, True, round(recover, 3), f"{sent} bundles sent meanwhile and since")


# --- RPC endpoints ---------------------------------------------------------------------------


async def rpc_endpoint_killed(stage: Stage, engine: EngineProcess) -> Fault:
    """The first RPC endpoint's port closed for 10 s: the client fails over to the second."""
    first = stage.rpcs[0]
    blocks_before = len(engine.log.blocks)
    fault = await _while(
        "rpc endpoint killed", stage, engine, HOLD["seconds"], first.stop_listening, first.listen
    )
    during = len(engine.log.blocks) - blocks_before
    fault.detail += f"; {during} blocks processed across the outage"
    fault.survived = fault.survived and during > 0  # it kept following through the other one
    return fault


async def rpc_all_down(stage: Stage, engine: EngineProcess, seconds: float = 30.0) -> Fault:
    """Every RPC endpoint gone for ``seconds``."""

    async def down() -> None:
        for proxy in stage.rpcs:
            await proxy.stop_listening()

    async def up() -> None:
        for proxy in stage.rpcs:
            await proxy.listen()

    return await _while(f"all rpc endpoints down {seconds:g} s", stage, engine, seconds, down, up)


async def rpc_latency(stage: Stage, engine: EngineProcess) -> Fault:
    """300 ms added to every RPC answer for 10 s."""

    async def slow() -> None:
        for proxy in stage.rpcs:
            proxy.delay, proxy.mode = 0.3, "latency"

    async def fast() -> None:
        for proxy in stage.rpcs:
            proxy.mode = "ok"

    return await _while("rpc latency 300 ms", stage, engine, HOLD["seconds"], slow, fast)


async def rpc_dropped(stage: Stage, engine: EngineProcess) -> Fault:
    """One RPC request in three loses its connection, for 10 s."""

    async def drop() -> None:
        for proxy in stage.rpcs:
            proxy.every, proxy.mode = 3, "drop"

    async def keep() -> None:
        for proxy in stage.rpcs:
            proxy.mode = "ok"

    return await _while("rpc dropped connections", stage, engine, HOLD["seconds"], drop, keep)


# --- reorgs ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def held(stage: Stage) -> AsyncIterator[None]:
    """No block is built and the market makes no step meanwhile (``devnet_hold`` of the market's
    builder, reached directly, not through the proxy a fault may be breaking): anvil rewriting
    its chain while a block is built leaves blocks it no longer serves under the new head."""
    builder = stage.deployment.builder_url
    assert builder is not None
    async with RpcClient([builder], timeout=60.0, retries=0) as client:
        await client.call("devnet_hold", [HOLD_LEASE])
        try:
            yield
        finally:
            await client.call("devnet_release", [])


async def _reorg(stage: Stage, depth: int) -> None:
    async with held(stage), RpcClient([stage.deployment.rpc_url], timeout=30.0) as client:
        await client.call("anvil_reorg", [depth, []])


async def reorgs(stage: Stage, engine: EngineProcess, depths: range) -> Fault:
    """A reorg of each depth, one after the other; the engine catches up after each.

    Anvil replaces the last ``depth`` blocks with empty ones (``anvil_reorg``); it cannot reorg
    through blocks an earlier ``anvil_reorg`` made, so each reorg waits until the chain has grown
    past the previous one by its depth.
    """
    name = f"reorgs depth {depths.start}..{depths.stop - 1}"
    worst = 0.0
    reorged_before = _reorg_count(engine)
    last = 0  # the head the previous reorg happened at
    for depth in depths:
        while await stage.head() < max(depth + 2, last + depth + 1):
            await asyncio.sleep(0.1)
        try:
            last = await stage.head()
            await _reorg(stage, depth)
            worst = max(worst, await caught_up(stage, engine, time.monotonic()))
        except Exception as exc:
            return Fault(name, False, None, f"depth {depth}: {exc}")
    seen = _reorg_count(engine) - reorged_before
    return Fault(
        name, True, round(worst, 3), f"{seen} reorgs seen by the engine", {"reorgs_seen": seen}
    )


async def reorg_past_journal(stage: Stage, engine: EngineProcess, depth: int = 72) -> Fault:
    """The chain goes back ``depth`` blocks, past the engine's journal (64): a snapshot taken,
    ``depth`` blocks mined on it, then reverted to, and the market mines a new branch. Anvil
    cannot ``anvil_reorg`` that deep (its history is pruned at 64), a snapshot it can. The engine
    must re-bootstrap."""
    name = f"reorg depth {depth} (past the journal)"
    try:
        async with RpcClient([stage.deployment.rpc_url], timeout=30.0) as client:
            snapshot = await client.call("evm_snapshot", [])
            start = await stage.head()
            while await stage.head() < start + depth:
                await asyncio.sleep(0.1)
            async with held(stage):
                reverted_ok = await client.call("evm_revert", [snapshot]) is True
            if not reverted_ok:
                return Fault(name, False, None, "anvil refused to revert")
        reverted = time.monotonic()
        while await stage.head() <= start + depth:  # the new branch overtakes the old one
            await asyncio.sleep(0.1)
        recover = await caught_up(stage, engine, reverted)
    except Exception as exc:
        return Fault(name, False, None, str(exc))
    rebootstraps = [e for _, e in engine.log.events if "re-bootstrapped" in str(e.get("message"))]
    alive = stage.devnet.market_alive()
    return Fault(
        name, bool(rebootstraps) and alive, round(recover, 3),
        f"{len(rebootstraps)} re-bootstraps logged; market {'alive' if alive else 'dead'}",
    )  # fmt: skip


def _reorg_count(engine: EngineProcess) -> int:
    return sum(1 for line in engine.log.stdout if "reorg depth" in line)


# --- databases -------------------------------------------------------------------------------


async def postgres_restart(stage: Stage, engine: EngineProcess, down_s: float = 5.0) -> Fault:
    """PostgreSQL stopped (every session cut) and started again ``down_s`` later."""
    postgres = stage.postgres
    assert postgres is not None

    async def stop() -> None:
        await asyncio.to_thread(postgres.stop, "fast")

    async def start() -> None:
        await asyncio.to_thread(postgres.start)

    fault = await _while("postgresql restarted", stage, engine, down_s, stop, start)
    if fault.survived:  # after the restart, bundles are sent and recorded again
        try:
            await engine.wait_event("bundle_sent", len(engine.log.named("bundle_sent")) + 2, 120)
        except (TimeoutError, RuntimeError) as exc:
            return Fault(fault.name, False, fault.recover_s, f"no bundle after: {exc}")
    return fault


async def sqlite_locked(stage: Stage, engine: EngineProcess, seconds: float = 5.0) -> Fault:
    """Another process holds SQLite's write lock for ``seconds``."""
    path = stage.database_url.removeprefix("sqlite:///")
    release = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            release.wait(seconds)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    holder: list[asyncio.Future[None]] = []

    async def lock() -> None:
        holder.append(asyncio.ensure_future(asyncio.to_thread(hold)))

    async def unlock() -> None:
        release.set()
        await holder[0]

    return await _while("sqlite file locked", stage, engine, seconds, lock, unlock)


# --- builders --------------------------------------------------------------------------------


async def builder_fault(stage: Stage, engine: EngineProcess, mode: str) -> Fault:
    """The builder answers ``mode`` (5xx, timeout, garbage) for 10 s, then bundles flow again."""
    builder = stage.builder

    async def bad() -> None:
        builder.hang, builder.mode = 5.0, mode

    async def good() -> None:
        builder.mode = "ok"

    fault = await _while(f"builder {mode}", stage, engine, HOLD["seconds"], bad, good)
    if fault.survived:
        try:
            await engine.wait_event("bundle_sent", len(engine.log.named("bundle_sent")) + 2, 120)
        except (TimeoutError, RuntimeError) as exc:
            return Fault(fault.name, False, fault.recover_s, f"no bundle after: {exc}")
    return fault


# --- the engine killed -----------------------------------------------------------------------


async def sigkill_mid_bundle(stage: Stage, engine: EngineProcess) -> tuple[Fault, EngineProcess]:
    """SIGKILL the engine the moment a bundle reaches the builder, then start it again."""
    name = "engine SIGKILLed mid-bundle"
    fired = asyncio.Event()

    def kill(method: str, _: Any) -> None:
        if method == "eth_sendBundle" and not fired.is_set():
            engine.sigkill()
            fired.set()

    stage.builder.on_request = kill
    try:
        await asyncio.wait_for(fired.wait(), 120)
    finally:
        stage.builder.on_request = None
    await engine.stop()
    killed_at = time.monotonic()
    try:
        restarted = await stage.engine(engine.name + "-restarted")
        recover = await caught_up(stage, restarted, killed_at)
        await restarted.wait_event("bundle_sent", 2, 120)
    except (TimeoutError, RuntimeError) as exc:
        return Fault(name, False, None, str(exc)), stage.engines[-1]
    return Fault(name, True, round(recover, 3), "restarted; bundles sent again"), restarted


# --- the signer lock -------------------------------------------------------------------------


async def signer_lock_cut(stage: Stage, engine: EngineProcess) -> tuple[Fault, EngineProcess]:
    """A standby (``arbx run --standby``, another release) waits on the same key while the
    active engine holds the signer lock; every database connection is cut (the PostgreSQL
    session holding the lock ends with it); then the standby is promoted. From the lock's own
    history: no signature outside its signer's epoch, epochs never overlap, and the standby
    signs only under an epoch higher than every one of the first engine's."""
    name = "signer lock connection cut"
    assert stage.db_proxy is not None
    stage.env_extra = {"ARBX_STANDBY": "true", "ARBX_RELEASE": "chaos-standby"}
    try:
        standby = await stage.engine("standby")
    finally:
        stage.env_extra = {}
    cut_at = time.monotonic()
    stage.db_proxy.cut()
    try:
        recover = await caught_up(stage, engine, cut_at)
        await engine.wait_event("bundle_sent", len(engine.log.named("bundle_sent")) + 2, 120)
        settings = stage.settings("standby")
        await asyncio.to_thread(
            arbx, "release", "promote", "--to", "chaos-standby", "--config", str(settings),
            "--timeout", "120", env={"ARBX_DATABASE_URL": stage.database_url},
        )  # fmt: skip
        await standby.wait_event("bundle_sent", 2, 120)
    except (TimeoutError, RuntimeError) as exc:
        return Fault(name, False, None, str(exc)), engine
    await engine.stop()
    problems, epochs = await asyncio.to_thread(_lock_history, stage)
    detail = f"epochs {epochs}; " + ("; ".join(problems[:3]) or "every signature in its epoch")
    return Fault(name, not problems, round(recover, 3), detail), standby


def _lock_history(stage: Stage) -> tuple[list[str], list[int]]:
    """What the signer lock's history shows wrong (signatures outside their epoch, overlapping
    epochs), and the epochs in order."""
    from sqlalchemy import create_engine, text  # noqa: PLC0415

    assert stage.postgres is not None
    engine = create_engine(stage.postgres.url())
    try:
        with engine.connect() as conn:
            epochs = conn.execute(
                text("SELECT epoch, holder_id, acquired_at, released_at FROM signer_epochs"
                     " ORDER BY epoch")
            ).all()  # fmt: skip
            signatures = conn.execute(
                text("SELECT epoch, holder_id, signed_at, tx_hash FROM signatures")
            ).all()
    finally:
        engine.dispose()
    problems: list[str] = []
    by_epoch = {row.epoch: row for row in epochs}
    for sig in signatures:
        epoch = by_epoch.get(sig.epoch)
        if epoch is None or epoch.holder_id != sig.holder_id:
            problems.append(f"{sig.tx_hash} signed under epoch {sig.epoch}, not its holder's")
        elif sig.signed_at < epoch.acquired_at or (
            epoch.released_at is not None and sig.signed_at > epoch.released_at
        ):
            problems.append(f"{sig.tx_hash} signed outside epoch {sig.epoch}")
    for earlier, later in itertools.pairwise(epochs):
        if earlier.released_at is not None and later.acquired_at < earlier.released_at:
            problems.append(f"epochs {earlier.epoch} and {later.epoch} overlap")
    return problems, [row.epoch for row in epochs]


# --- the API under load ----------------------------------------------------------------------


async def api_load(stage: Stage, engine: EngineProcess, seconds: float = 20.0) -> Fault:
    """Head-to-bundle latency of the engine for ``seconds`` without load, then as long while a
    loopback load generator hammers the API, served as in production by a process of its own
    (``arbx api``) on the engine's database, and, when the engine serves the API in its own
    loop too (``api.serve_in_run``), as long again against that one."""
    name = "api under load"
    env = {"ARBX_DATABASE_URL": stage.database_url}
    token = (await asyncio.to_thread(
        arbx, "token", "add", "--name", "chaos-load", "--role", "viewer", env=env
    )).strip()  # fmt: skip
    port = free_port()
    api = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "arbx.cli", "api", "--port", str(port),
        env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        await _until_up(url)
        quiet = await _latencies(engine, seconds)
        loaded, counts = await _under_load(engine, url, token, seconds)
    finally:
        api.terminate()
        await api.wait()
    figures: dict[str, Any] = {
        "without_load_ms": quiet,
        "with_load_ms": loaded,
        "api_rps": round(counts["requests"] / seconds, 1),
        "api_errors": counts["errors"],
    }
    inside, inside_token = _api(engine)
    if inside is not None:
        in_loop, in_counts = await _under_load(engine, inside, inside_token, seconds)
        figures["with_load_in_engine_process_ms"] = in_loop
        figures["api_in_engine_process_rps"] = round(in_counts["requests"] / seconds, 1)
    ok = engine.running and loaded["samples"] > 0
    detail = (
        f"head->bundle p50 {quiet['p50']} ms without load, {loaded['p50']} ms with "
        f"{figures['api_rps']} API requests/s (API process)"
    )
    if inside is not None:
        detail += (
            f"; {figures['with_load_in_engine_process_ms']['p50']} ms with "
            f"{figures['api_in_engine_process_rps']} requests/s to the API in the engine's loop"
        )
    return Fault(name, ok, 0.0, detail, figures)


async def _until_up(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no API at {url}")
            await asyncio.sleep(0.2)


async def _under_load(
    engine: EngineProcess, url: str, token: str, seconds: float
) -> tuple[dict[str, Any], dict[str, int]]:
    """The engine's latencies while 16 loopback clients read the API at ``url`` flat out."""
    stop = asyncio.Event()
    counts = {"requests": 0, "errors": 0}

    async def hammer(session: aiohttp.ClientSession) -> None:
        paths = ["/api/v1/opportunities?limit=50", "/api/v1/bundles?limit=50", "/api/v1/status"]
        i = 0
        while not stop.is_set():
            try:
                async with session.get(url + paths[i % len(paths)]) as response:
                    await response.read()
                    counts["errors"] += response.status >= 500
            except aiohttp.ClientError:
                counts["errors"] += 1
            counts["requests"] += 1
            i += 1

    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        workers = [asyncio.ensure_future(hammer(session)) for _ in range(16)]
        loaded = await _latencies(engine, seconds)
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
    return loaded, counts


def _api(engine: EngineProcess) -> tuple[str | None, str]:
    for line in engine.log.stdout:
        if line.startswith("dashboard: "):
            url = line.split()[1].rstrip("/")
            return url, line.rsplit(": ", 1)[1].rstrip(")")
    return None, ""


async def _latencies(engine: EngineProcess, seconds: float) -> dict[str, Any]:
    start = len(engine.log.named("bundle_sent"))
    await asyncio.sleep(seconds)
    values = sorted(float(e["head_to_bundle_ms"]) for e in engine.log.named("bundle_sent")[start:])
    if not values:
        return {"samples": 0, "p50": None, "p90": None}
    p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
    return {
        "samples": len(values),
        "p50": round(statistics.median(values), 1),
        "p90": round(p90, 1),
    }
