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
import json
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
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
    rebootstraps_before = _logged(engine, "re-bootstrapped")
    replaced_before = _logged(engine, "a reorg replaced it")
    dropped_before = _logged(engine, "dropped, the next head")
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
    # a reorg within the journal is unwound in memory; a re-bootstrap here is the engine's to
    # explain (a head replaced while in hand is followed, or dropped, not re-bootstrapped: ADR
    # 0029). Fewer reorgs are seen than made: one that replaces only blocks the engine's book
    # had not applied yet is none for the book.
    rebootstraps = _logged(engine, "re-bootstrapped") - rebootstraps_before
    replaced = _logged(engine, "a reorg replaced it") - replaced_before
    dropped = _logged(engine, "dropped, the next head") - dropped_before
    return Fault(
        name, True, round(worst, 3),
        f"{seen} reorgs seen by the engine, {rebootstraps} re-bootstraps, heads in hand "
        f"{replaced} replaced and {dropped} dropped",
        {"reorgs_seen": seen, "rebootstraps": rebootstraps, "heads_replaced": replaced,
         "heads_dropped": dropped},
    )  # fmt: skip


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


def _logged(engine: EngineProcess, words: str) -> int:
    """How many of the engine's log events say ``words``."""
    return sum(1 for _, e in engine.log.events if words in str(e.get("message")))


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

# "The engine's latency is not affected" (ADR 0038): with the load, against without it, in
# windows taken alternately (the machine's other work drifts within a run), the head-to-bundle
# p50 at most LATENCY_FACTOR times its quiet value plus LATENCY_SLACK_MS, the p99 at most
# TAIL_FACTOR times plus TAIL_SLACK_MS, and bundles sent per block processed at least SENT_FLOOR
# of the quiet share (a late trade is dropped unsent, so latencies alone would hide it).
LATENCY_FACTOR, LATENCY_SLACK_MS = 1.5, 5.0
TAIL_FACTOR, TAIL_SLACK_MS = 2.0, 20.0
SENT_FLOOR = 0.7
ROUNDS = 6  # quiet and loaded windows, alternately
SETTLE_S = 0.5  # after switching the load on or off, before a window starts
LOAD_CLIENTS = 16
# The generator's nice value. It runs in a session of its own, so that under the kernel's
# autogroups it is one more session with its share, as traffic from other machines takes the
# API's CPU and not the engine's; at 19 on a busy machine it offered the API so little (5 to 24
# requests/s) that an API at the engine's priority passed too (ADR 0038).
LOAD_NICE = 0


@dataclass
class Window:
    """What the engine did in one condition (the windows of that condition together)."""

    latencies_ms: list[float] = field(default_factory=list)  # head to bundle, bundles sent
    detection_ms: list[float] = field(default_factory=list)  # head to opportunities, each block
    blocks: int = 0
    seconds: float = 0.0
    engine_cpu_s: float = 0.0

    def figures(self) -> dict[str, Any]:
        """Samples, percentiles, bundles per block, the engine's CPU share."""
        values = sorted(self.latencies_ms)
        detection = sorted(self.detection_ms)
        return {
            "samples": len(values),
            "p50": _rank(values, 0.50),
            "p90": _rank(values, 0.90),
            "p99": _rank(values, 0.99),
            "blocks": self.blocks,
            "sent_per_block": round(len(values) / self.blocks, 3) if self.blocks else None,
            "detection_p50": _rank(detection, 0.50),
            "detection_p99": _rank(detection, 0.99),
            "engine_cpu_share": round(self.engine_cpu_s / self.seconds, 3)
            if self.seconds
            else None,
        }


def _rank(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile ``q`` of sorted ``values`` (None when there are none)."""
    if not values:
        return None
    return round(values[min(len(values) - 1, max(0, int(len(values) * q + 0.999999) - 1))], 1)


def judge(quiet: dict[str, Any], loaded: dict[str, Any]) -> list[str]:
    """What the loaded figures miss of the bound against the quiet ones (empty: not affected)."""
    if not quiet["samples"]:
        return ["no bundle sent without load: nothing to compare"]
    if not loaded["samples"]:
        return ["no bundle sent under load"]
    missed = []
    p50_cap = LATENCY_FACTOR * quiet["p50"] + LATENCY_SLACK_MS
    if loaded["p50"] > p50_cap:
        missed.append(f"p50 {loaded['p50']} ms > {p50_cap:.1f}")
    p99_cap = TAIL_FACTOR * quiet["p99"] + TAIL_SLACK_MS
    if loaded["p99"] > p99_cap:
        missed.append(f"p99 {loaded['p99']} ms > {p99_cap:.1f}")
    floor = SENT_FLOOR * quiet["sent_per_block"]
    if loaded["sent_per_block"] < floor:
        missed.append(f"{loaded['sent_per_block']} bundles per block < {floor:.3f}")
    return missed


async def api_load(stage: Stage, engine: EngineProcess, seconds: float = 60.0) -> Fault:
    """The engine's head-to-bundle latency without and with a loopback load generator flat out
    on the API (a process and session of its own), ``seconds`` of each in alternate windows:
    against the API served as in production, by a process of its own (``arbx api``, in a session
    of its own, at its default lower CPU priority) on the engine's database, which decides the
    verdict; and, when the engine serves the API in its own loop too (``api.serve_in_run``),
    against that one, whose figures and verdict are reported beside it."""
    name = "api under load"
    env = {"ARBX_DATABASE_URL": stage.database_url}
    token = (await asyncio.to_thread(
        arbx, "token", "add", "--name", "chaos-load", "--role", "viewer", env=env
    )).strip()  # fmt: skip
    port = free_port()
    load_before = os.getloadavg()
    api = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "arbx.cli", "api", "--port", str(port),
        env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        await _until_up(url)
        process = await _compare(engine, url, token, seconds)
        process["api_cpu_s"] = _cpu_s(api.pid)
    finally:
        api.terminate()
        await api.wait()
    figures: dict[str, Any] = {"api_process": process}
    inside, inside_token = _api(engine)
    if inside is not None:
        figures["api_in_engine_loop"] = await _compare(engine, inside, inside_token, seconds)
    figures["load_average"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    missed = process["missed"]
    detail = "API process: " + _said(process)
    if inside is not None:
        detail += "; API in the engine's loop: " + _said(figures["api_in_engine_loop"])
    return Fault(name, engine.running and not missed, 0.0, detail, figures)


def _said(c: dict[str, Any]) -> str:
    quiet, loaded = c["without_load"], c["with_load"]
    verdict = "not affected" if not c["missed"] else "AFFECTED: " + ", ".join(c["missed"])
    return (
        f"head->bundle p50/p99 {quiet['p50']}/{quiet['p99']} ms and "
        f"{quiet['sent_per_block']} bundles/block ({quiet['blocks']} blocks) quiet, "
        f"{loaded['p50']}/{loaded['p99']} ms and {loaded['sent_per_block']} "
        f"({loaded['blocks']} blocks) with {c['api_rps']} requests/s "
        f"({c['shed_share']:.0%} shed), {verdict}"
    )


async def _compare(engine: EngineProcess, url: str, token: str, seconds: float) -> dict[str, Any]:
    """Quiet and loaded windows, alternately, ``seconds`` of each in all; the figures."""
    generator = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "chaos.loadgen", url,
        "--clients", str(LOAD_CLIENTS), "--nice", str(LOAD_NICE),
        env={**os.environ, "CHAOS_API_TOKEN": token}, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    assert generator.stdin is not None
    assert generator.stdout is not None
    quiet, loaded = Window(), Window()
    each = seconds / ROUNDS
    try:
        for _ in range(ROUNDS):
            await _window(engine, quiet, each)
            generator.stdin.write(b"run\n")
            await generator.stdin.drain()
            await _window(engine, loaded, each)
            generator.stdin.write(b"pause\n")
            await generator.stdin.drain()
        generator.stdin.close()
        out = await asyncio.wait_for(generator.stdout.read(), 60)
    finally:
        if generator.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                generator.kill()
        await generator.wait()
    counts: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    cpu = counts.pop("cpu_s", 0.0)
    requests = sum(counts.values())
    shed = counts.get("429", 0) + counts.get("503", 0)
    without, with_ = quiet.figures(), loaded.figures()
    return {
        "without_load": without,
        "with_load": with_,
        "api_rps": round(requests / loaded.seconds, 1),
        "api_served_rps": round(counts.get("200", 0) / loaded.seconds, 1),
        "shed_share": round(shed / requests, 3) if requests else 0.0,
        "answers": counts,
        "load_generator_cpu_s": cpu,
        "missed": judge(without, with_),
    }


async def _window(engine: EngineProcess, into: Window, seconds: float) -> None:
    """Add what ``engine`` does in the next ``seconds`` (after SETTLE_S) to ``into``."""
    await asyncio.sleep(SETTLE_S)
    cpu = _cpu_s(engine.proc.pid if engine.proc else 0)
    start = time.monotonic()
    first = len(engine.log.events)
    await asyncio.sleep(seconds)
    into.seconds += time.monotonic() - start
    into.engine_cpu_s += _cpu_s(engine.proc.pid if engine.proc else 0) - cpu
    for _, event in engine.log.events[first:]:
        if event.get("event") == "bundle_sent":
            into.latencies_ms.append(float(event["head_to_bundle_ms"]))
        elif event.get("event") == "block":
            into.blocks += 1
            into.detection_ms.append(float(event["latency_ms"]))


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def _api(engine: EngineProcess) -> tuple[str | None, str]:
    for line in engine.log.stdout:
        if line.startswith("dashboard: "):
            url = line.split()[1].rstrip("/")
            return url, line.rsplit(": ", 1)[1].rstrip(")")
    return None, ""
