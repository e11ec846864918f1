"""The stack the dashboard tests run against: a seeded database (SQLite or a fresh PostgreSQL
one), the engine's heartbeat in a thread, the API on a free loopback port, a plain static server
for the dashboard's files, and a small client for checking what the API says.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy import make_url
from sqlalchemy.orm import Session, sessionmaker

from arbx.domain.capture import best_disjoint
from arbx.domain.limits import Limits
from arbx.domain.pools import Token
from arbx.store import api_repo, repo
from arbx.store import execution_repo as erepo
from arbx.store.models import OpportunityRow
from arbx.store.repo import PoolRecord

PG_ADMIN_ENV = "ARBX_TEST_POSTGRES_URL"
PG_ADMIN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"

CHAIN = 31337
HEAD = 1_204_000
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
DAI = "0x6B175474E89094C44Da98b954EedeAC495271d0F"
WBTC = "0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599"
TOKENS = {WETH: ("WETH", 18), USDC: ("USDC", 6), DAI: ("DAI", 18), WBTC: ("WBTC", 8)}
ETH = 10**18
OPPORTUNITIES = 140
CONFIGURED_LIMITS = Limits(
    max_input={"*": 10 * 10**18},
    daily_gas_cap_wei=5 * 10**16,
    daily_loss_cap_wei=10**17,
    max_consecutive_failures=5,
)
DAYS = 5  # the seeded rows cover the last five UTC days, today included
BUNDLES = 16
BUILDERS = ["flashbots", "beaverbuild", "titan", "rsync"]


# --- the database -----------------------------------------------------------------------------


def _address(label: str) -> str:
    return str(to_checksum_address(keccak(text=label)[-20:]))


def _hash(label: str) -> str:
    return "0x" + keccak(text=label).hex()


@dataclass(frozen=True, slots=True)
class Seeded:
    """What the seed wrote, for the assertions."""

    run_id: int
    pools: list[str]
    last_opportunity: int
    bundles: list[int]


def seed(sessions: sessionmaker[Session], now: datetime) -> Seeded:
    """A chain, tokens, pools, a running shadow run, opportunities and settled bundles."""
    rng = random.Random(7)
    pools = [
        PoolRecord(
            CHAIN,
            _address(f"pool-{i}"),
            family,
            t0,
            t1,
            fee,
            tick_spacing=spacing,
            venue=venue,
            created_block=HEAD - 900_000,
            last_synced_block=HEAD,
        )
        for i, (family, venue, t0, t1, fee, spacing) in enumerate(
            [
                ("uniswap_v2", "uniswap", WETH, USDC, 30, None),
                ("uniswap_v2", "sushiswap", WETH, USDC, 30, None),
                ("uniswap_v2", "uniswap", WETH, DAI, 30, None),
                ("uniswap_v2", "sushiswap", USDC, DAI, 30, None),
                ("uniswap_v3", "uniswap_v3", WETH, USDC, 500, 10),
                ("uniswap_v3", "uniswap_v3", WETH, USDC, 3000, 60),
                ("uniswap_v3", "uniswap_v3", WBTC, WETH, 3000, 60),
                ("uniswap_v3", "uniswap_v3", DAI, USDC, 100, 1),
            ]
        )
    ]
    routes = [
        ([pools[0].address, pools[4].address], [WETH, USDC, WETH]),
        ([pools[1].address, pools[5].address], [WETH, USDC, WETH]),
        ([pools[2].address, pools[3].address, pools[4].address], [WETH, DAI, USDC, WETH]),
        ([pools[0].address, pools[7].address, pools[2].address], [WETH, USDC, DAI, WETH]),
    ]
    with sessions.begin() as session:
        repo.upsert_chain(session, CHAIN, "devnet")
        repo.upsert_tokens(session, CHAIN, [Token(a, s, d) for a, (s, d) in TOKENS.items()])
        repo.upsert_pools(session, pools)
        run_id = repo.start_run(session, CHAIN, "shadow", started_at=now - timedelta(days=5))
        rows = []
        for i in range(OPPORTUNITIES):
            block = HEAD - OPPORTUNITIES + i
            detected = _moment(now, i, OPPORTUNITIES)
            route_pools, route_tokens = routes[i % len(routes)]
            amount_in = rng.randint(2, 80) * ETH // 10
            gross = rng.randint(2_000, 90_000) * 10**12
            gas = rng.randint(1_500, 9_000) * 10**12
            builder = gross // 10
            rows.append(
                OpportunityRow(
                    run_id=run_id,
                    chain_id=CHAIN,
                    block_number=block,
                    block_hash=_hash(f"block-{block}"),
                    route_key=_route_key(pools, route_pools, route_tokens),
                    pools_json=route_pools,
                    tokens_json=route_tokens,
                    amount_in=amount_in,
                    amounts_json=[str(amount_in + gross)],
                    amount_out=amount_in + gross,
                    gross_profit=gross,
                    gas_units=180_000,
                    gas_cost=gas,
                    builder_payment=builder,
                    net_profit=gross - gas - builder,
                    detected_at=detected,
                    latency_ms=rng.uniform(3.0, 40.0),
                    status=rng.choice(["found", "found", "simulated_ok", "simulated_revert"]),
                    # one opportunity per block: its own best set when it pays at all
                    capturable=best_disjoint([(route_pools, gross - gas - builder)]) == (0,),
                )
            )
        session.add_all(rows)
        session.flush()
        opportunity_ids = [r.id for r in rows]
        outcomes = ["included", "included", "not_included", "reverted", "included", "state_moved"]
        bundles = []
        for i in range(BUNDLES):
            opp = rows[(i * 7) % len(rows)]
            sent = _moment(now, i, BUNDLES)
            txs = [_hash(f"tx-{i}-{k}") for k in range(1 + i % 2)]
            bundle_id = erepo.record_bundle(
                session,
                run_id,
                target_block=opp.block_number + 1,
                builders=BUILDERS[: 1 + i % len(BUILDERS)],
                tx_hashes=txs,
                expected_net_profit=opp.net_profit,
                sent_at=sent,
                opportunity_id=opp.id,
                signer=_address("signer"),
                replacement_uuid=str(uuid.UUID(int=i + 1)),
                bundle_hash=_hash(f"bundle-{i}"),
            )
            for k, tx in enumerate(txs):
                erepo.record_tx(
                    session,
                    bundle_id,
                    erepo.TxRecord(
                        hash=tx,
                        nonce=40 + i,
                        from_address=_address("signer"),
                        to_address=_address("executor"),
                        gas_limit=400_000,
                        max_fee=30 * 10**9 + k,
                        priority_fee=2 * 10**9,
                    ),
                )
            if i == BUNDLES - 1:
                bundles.append(bundle_id)  # the newest stays open ('sent')
                continue
            status = outcomes[i % len(outcomes)]
            landed = status in ("included", "reverted")
            gas_cost = 190_000 * 31 * 10**9 if landed else None
            realized = None
            if status == "included":
                realized = opp.net_profit * rng.randint(70, 105) // 100
            elif status == "reverted":
                realized = -(gas_cost or 0)
            erepo.update_bundle_outcome(
                session,
                bundle_id,
                status,
                included_block=opp.block_number + 1 if landed else None,
                included_block_hash=_hash(f"block-{opp.block_number + 1}") if landed else None,
                gas_used=190_000 if landed else None,
                gas_cost=gas_cost,
                realized_profit=realized,
                settled_at=sent + timedelta(seconds=14),
            )
            for tx in txs:
                erepo.update_tx(
                    session,
                    bundle_id,
                    tx,
                    "included" if status == "included" else "reverted" if landed else "dropped",
                    gas_used=95_000 if landed else None,
                    effective_gas_price=31 * 10**9 if landed else None,
                )
            bundles.append(bundle_id)
        api_repo.beat(session, CHAIN, run_id=run_id, head_block=HEAD, synced_block=HEAD, at=now)
    return Seeded(run_id, [p.address for p in pools], max(opportunity_ids), bundles)


def _moment(now: datetime, index: int, count: int) -> datetime:
    """The time of row ``index`` of ``count``: spread over the last DAYS UTC days (today's up to
    ``now``), in order, so that each day has rows whatever the time of day the test runs."""
    day, rank = divmod(index * DAYS, count)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=DAYS - 1 - day)
    span = timedelta(days=1) if day < DAYS - 1 else max(now - start, timedelta(seconds=1))
    return start + span * (rank + 0.5) / count


def _route_key(pools: list[PoolRecord], path: list[str], tokens: list[str]) -> str:
    """The engine's route key: pools joined by '>', '|', then 1 where a hop sells token0."""
    by_address = {p.address: p for p in pools}
    bits = "".join(
        "1" if by_address[a].token0 == t else "0" for a, t in zip(path, tokens[:-1], strict=True)
    )
    return ">".join(path) + "|" + bits


def add_live_opportunity(sessions: sessionmaker[Session], run_id: int, block: int) -> int:
    """Write one more opportunity as the engine does (row, then notification). -> its id."""
    gross = 123_456_789_012_345_678
    with sessions.begin() as session:
        row = OpportunityRow(
            run_id=run_id,
            chain_id=CHAIN,
            block_number=block,
            block_hash=_hash(f"block-{block}"),
            route_key=f"{_address('pool-0')}>{_address('pool-4')}|10",
            pools_json=[_address("pool-0"), _address("pool-4")],
            tokens_json=[WETH, USDC, WETH],
            amount_in=5 * ETH,
            amounts_json=[str(5 * ETH + gross)],
            amount_out=5 * ETH + gross,
            gross_profit=gross,
            gas_units=180_000,
            gas_cost=4_000_000_000_000_000,
            builder_payment=gross // 10,
            net_profit=gross - 4_000_000_000_000_000 - gross // 10,
            detected_at=datetime.now(UTC),
            latency_ms=7.25,
            status="found",
        )
        session.add(row)
        session.flush()
        api_repo.notify_event(session, "opportunity", {"ids": [row.id]})
        return row.id


class Heartbeat:
    """The engine's heartbeat, one block a second, in a thread (the API reads it as status)."""

    def __init__(self, sessions: sessionmaker[Session], run_id: int) -> None:
        self.sessions = sessions
        self.run_id = run_id
        self.head = HEAD
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            self.head += 1
            with self.sessions.begin() as session:
                api_repo.beat(
                    session,
                    CHAIN,
                    run_id=self.run_id,
                    head_block=self.head,
                    synced_block=self.head - 1,
                )

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped at the end; fails with a clear line if unreachable."""
    admin = make_url(os.environ.get(PG_ADMIN_ENV, PG_ADMIN_DEFAULT))
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {admin.render_as_string()} "
            f"({str(exc).splitlines()[0]}): start it, or point ${PG_ADMIN_ENV} at one",
            pytrace=False,
        )
    name = f"arbx_e2e_{uuid.uuid4().hex[:12]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the API ----------------------------------------------------------------------------------


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@contextlib.contextmanager
def serve_api(sessions: sessionmaker[Session], cors_origin: str) -> Iterator[str]:
    """The API (with the dashboard at /) on a free loopback port, in a thread. -> base URL.

    ``cors_origin`` may call it from a browser: the static host of the dashboard's copy.
    """
    import uvicorn  # noqa: PLC0415
    from fastapi.middleware.cors import CORSMiddleware  # noqa: PLC0415

    from arbx.api import create_app  # noqa: PLC0415

    app = create_app(
        sessions,
        chain_id=CHAIN,
        poll_interval=0.2,
        configured_mode="limited",  # operators may lower it, never raise it
        configured_limits=CONFIGURED_LIMITS,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[cors_origin],
        allow_methods=["GET", "PUT", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
    )
    sock = _free_socket()
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the API did not start within 15 s", pytrace=False)
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.contextmanager
def serve_static(directory: Path) -> Iterator[str]:
    """The dashboard files from a plain static server (as a CDN would serve them). -> URL."""
    handler = partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def api_call(base: str, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request to the API (outside the browser). -> (status, JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
