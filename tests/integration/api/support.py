"""Helpers of the API tests: the harness around the app under test, test data (runs,
opportunities, bundles with transactions), and checks of refusals and pages.
"""

from __future__ import annotations

import socket
import subprocess
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import Engine, Table
from sqlalchemy.orm import Session, sessionmaker

from arbx.domain.limits import Limits
from arbx.domain.profit import Opportunity
from arbx.domain.routes import Route
from arbx.store import api_repo, db, repo
from arbx.store import execution_repo as xrepo
from arbx.store.models import Base

# The test modules import TestClient from here, where starlette's wish for httpx2 is silenced
# (httpx 0.28 works).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient as TestClient  # noqa: PLC0414 (re-exported)

CHAIN = 31337
NOW = datetime(2025, 3, 2, 12, 0, 0, tzinfo=UTC)
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
DAI = "0x6B175474E89094C44Da98b954EedeAC495271d0F"
POOL_A = "0x0000000000000000000000000000000000000A01"
POOL_B = "0x0000000000000000000000000000000000000B02"
POOL_C = "0x0000000000000000000000000000000000000C03"
ROUTE_A = Route(pools=(POOL_A, POOL_B), zero_for_one=(True, False), tokens=(WETH, USDC, WETH))
ROUTE_B = Route(
    pools=(POOL_A, POOL_C, POOL_B), zero_for_one=(False, True, True), tokens=(WETH, DAI, USDC, WETH)
)
CONFIGURED_LIMITS = Limits(
    max_input={"*": 10**18}, daily_gas_cap_wei=5 * 10**16, daily_loss_cap_wei=10**17
)
BIG = 2**200 + 12345  # far past 2^53: must travel as a string, exactly


# --- the app under test ---------------------------------------------------------------------------


@dataclass
class Harness:
    """The app under test, its database and two tokens."""

    client: TestClient
    factory: sessionmaker[Session]
    engine: Engine
    tokens: dict[str, str]
    now: list[datetime] = field(default_factory=lambda: [NOW])

    @property
    def backend(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    def auth(self, role: str | None = "operator") -> dict[str, str]:
        """The Authorization header of a role's token (or of a made-up one)."""
        if role is None:
            return {}
        token = self.tokens.get(role, role)
        return {"Authorization": f"Bearer {token}"}

    def get(self, path: str, role: str | None = "viewer", **params: Any) -> httpx.Response:
        """GET as ``role``."""
        response: httpx.Response = self.client.get(path, params=params, headers=self.auth(role))
        return response

    def send(
        self, method: str, path: str, body: Any = None, role: str | None = "operator"
    ) -> httpx.Response:
        """A request with a JSON body as ``role``."""
        response: httpx.Response = self.client.request(
            method, path, json=body, headers=self.auth(role)
        )
        return response


def wipe(engine: Engine) -> None:
    """Empty every table (the schema stays)."""
    with engine.begin() as conn:  # DELETE: much faster than TRUNCATE on tiny tables
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(cast(Table, table).delete())


def seeded(engine: Engine) -> tuple[sessionmaker[Session], dict[str, str]]:
    """``engine``'s database emptied, with the test chain and two tokens (operator ``ops``,
    viewer ``dash``): its session factory and the tokens by role."""
    wipe(engine)
    factory = db.make_session_factory(engine)
    with factory.begin() as s:
        repo.upsert_chain(s, CHAIN, "devnet")
        tokens = {
            "operator": api_repo.add_token(s, "ops", "operator", at=NOW),
            "viewer": api_repo.add_token(s, "dash", "viewer", at=NOW),
        }
    return factory, tokens


# --- data -------------------------------------------------------------------------------------


def header(number: int, fork: str = "a") -> repo.BlockHeader:
    """A block header of the test chain."""
    return repo.BlockHeader(
        CHAIN, number, "0x" + f"{fork}{number}".encode().hex().rjust(64, "0"), "0x" + "0" * 64, 0
    )


def opportunity(route: Route, net: int, amount_in: int = 10**18) -> Opportunity:
    """An opportunity whose numbers add up."""
    gas_cost, builder = 1_000, 7
    gross = net + gas_cost + builder
    amounts = (*(amount_in + i for i in range(1, len(route.pools))), amount_in + gross)
    return Opportunity(route, amount_in, amounts, gross, 180_000, gas_cost, builder, net)


def add_run(h: Harness, started_at: datetime = NOW) -> int:
    """A new run on the test chain."""
    with h.factory.begin() as s:
        return repo.start_run(s, CHAIN, started_at=started_at)


def add_opportunities(
    h: Harness,
    run_id: int,
    block: int,
    nets: Sequence[int],
    route: Route = ROUTE_A,
    at: datetime = NOW,
    notify: bool = False,
) -> list[int]:
    """One block's opportunities (net profits as given). -> their ids."""
    with h.factory.begin() as s:
        ids = repo.add_opportunities(
            s, run_id, header(block), [opportunity(route, n) for n in nets], at, 12.5
        )
        if notify:
            api_repo.notify_event(s, "opportunity", {"ids": ids})
    return ids


def add_bundle(
    h: Harness,
    run_id: int,
    opportunity_id: int | None,
    *,
    status: str = "included",
    expected: int = 100,
    realized: int | None = 90,
    gas: int | None = 10,
    builders: Sequence[str] = ("flashbots", "titan"),
    sent_at: datetime = NOW,
    txs: int = 1,
) -> int:
    """A bundle sent, settled with ``status`` (unless 'sent'), with ``txs`` transactions."""
    with h.factory.begin() as s:
        bid = xrepo.record_bundle(
            s,
            run_id,
            target_block=101,
            builders=builders,
            tx_hashes=[f"0x{i:064x}" for i in range(txs)],
            expected_net_profit=expected,
            sent_at=sent_at,
            opportunity_id=opportunity_id,
            signer="0x00000000000000000000000000000000000000Aa",
        )
        for i in range(txs):
            tx = xrepo.TxRecord(f"0x{i:064x}", i, WETH, POOL_A, 300_000, BIG, 10**9)
            xrepo.record_tx(s, bid, tx)
        if status != "sent":
            xrepo.update_bundle_outcome(
                s,
                bid,
                status,
                included_block=101 if status == "included" else None,
                gas_used=150_000 if gas else None,
                gas_cost=gas,
                realized_profit=realized,
                settled_at=sent_at + timedelta(seconds=15),
            )
    return bid


def first_line(response: httpx.Response) -> str:
    """The refusal's message, checked to be one non-empty line."""
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail
    assert "\n" not in detail
    return detail


def ids(response: httpx.Response) -> list[int]:
    """The ids of a page's items."""
    return [item["id"] for item in response.json()["items"]]


# -- a real server process ------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def api_process(
    argv: Sequence[str], env: Mapping[str, str], port: int, *, timeout: float = 60.0, **popen: Any
) -> Iterator[subprocess.Popen[str]]:
    """``argv`` (an ``arbx api`` command on ``port``) running, once its /healthz answers 200;
    terminated afterwards. Its output is piped, and shown if it dies before it answers."""
    proc = subprocess.Popen(
        list(argv), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        **popen,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)
