"""After a re-bootstrap: the bundle rows recorded as landed in blocks the chain has replaced.

The live executor follows a settled bundle for the journal's depth only (``KEEP_SETTLED_BLOCKS``):
a reorg deeper than that, which makes the engine re-bootstrap its book, can take out bundles it
no longer remembers, and their rows would stay ``included`` (ADR 0029). The re-bootstrap knows
the depth only as "more than the journal", and a real deep reorg can exceed any window kept in
memory, so the rows themselves are checked against the chain, from the database:

1. :func:`replaced_rows` reads the key's rows recorded as included or reverted, newest block
   first, a page at a time, and compares each row's block hash with the chain's block at that
   number (a number past the chain's head is replaced too). The first row found canonical ends
   the walk: the chain below a canonical block is the one the rows saw, so the walk stops at the
   fork point whatever the reorg's depth, after one page when nothing was replaced.
2. :func:`decide` reads a replaced row's transactions' receipts: every one in one block of the
   new chain, it landed there (included, or reverted if a receipt failed); none, and the node
   still holds the transaction unmined, it is pending again (its row goes back to ``sent``);
   otherwise it was not included (its nonce is free again).

The executor applies what ``decide`` says to the row, to the risk limits (what was counted
when the row settled is taken back, the new settlement counted) and to its nonces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.receipts import receipts
from arbx.chain.rpc import RpcClient, to_quantity
from arbx.domain.limits import Counted, Outcome, utc_day
from arbx.store import execution_repo as xrepo
from arbx.store.execution_repo import LandedRow

PAGE = 64  # rows read and checked per step of the walk


@dataclass(frozen=True, slots=True)
class Decision:
    """What the chain now says of a row recorded as landed in a replaced block."""

    status: str  # 'included' | 'reverted' | 'not_included' | 'pending'
    details: dict[str, Any]  # block, block hash, gas of a landed one (empty otherwise)
    reason: str
    kept: int | None = None  # of a landed one: what its logs moved of the token to the holder


async def replaced_rows(
    sessions: sessionmaker[Session],
    client: RpcClient,
    chain_id: int,
    signer: str,
    *,
    known: Callable[[str], bool] = lambda _: False,
    page: int = PAGE,
) -> list[LandedRow]:
    """The key's rows recorded as landed whose block the chain no longer has, newest first,
    down to the fork point; rows with a transaction ``known`` says the caller follows itself
    (its bundle still in memory) are left out."""
    replaced: list[LandedRow] = []
    below: tuple[int, int] | None = None
    while True:
        rows = await asyncio.to_thread(_page, sessions, chain_id, signer, below, page)
        if not rows:
            return replaced
        numbers = sorted({r.included_block for r in rows})
        hashes = await client.batch(
            [("eth_getBlockByNumber", [to_quantity(n), False]) for n in numbers],
            decode=lambda raw: None if raw is None else str(raw["hash"]).lower(),
        )
        chain = dict(zip(numbers, hashes, strict=True))
        canonical = False
        for row in rows:
            if chain[row.included_block] == row.included_block_hash:
                canonical = True
            elif not any(known(h) for h in row.tx_hashes):
                replaced.append(row)
        if canonical or len(rows) < page:
            return replaced
        below = (rows[-1].included_block, rows[-1].bundle_id)


def _page(
    sessions: sessionmaker[Session],
    chain_id: int,
    signer: str,
    below: tuple[int, int] | None,
    page: int,
) -> list[LandedRow]:
    with sessions() as session:
        return xrepo.landed_newest_first(session, chain_id, signer, below=below, limit=page)


async def decide(
    client: RpcClient, row: LandedRow, balance: tuple[str, str] | None = None
) -> Decision:
    """Where the chain has ``row``'s transactions now (see the module); with ``balance``
    (token, holder), what a landed row's logs moved of that token to that holder."""
    found = await receipts(client, row.tx_hashes)
    landed = [r for r in found if r is not None]
    if landed and len(landed) == len(found) and len({r.block_hash for r in landed}) == 1:
        first = landed[0]
        number = first.block_number
        changes = [r.balance_change(*balance) if balance else None for r in landed]
        known = [c for c in changes if c is not None]
        return Decision(
            "included" if all(r.succeeded for r in landed) else "reverted",
            {
                "included_block": number,
                "included_block_hash": first.block_hash_hex,
                "gas_used": sum(r.gas_used for r in landed),
                "gas_cost": sum(r.gas_cost for r in landed),
            },
            f"in block {number} of the new chain (found by its receipts after a deep reorg)",
            sum(known) if len(known) == len(changes) else None,
        )
    if landed:
        return Decision("not_included", {}, "partially included after a deep reorg")
    tx = await client.call("eth_getTransactionByHash", [row.tx_hashes[0]])
    if isinstance(tx, dict) and tx.get("blockHash") is None:
        return Decision("pending", {}, "reorged out, still pending at the node")
    return Decision("not_included", {}, "reorged out by a deep reorg, in no block of the chain")


def counted_of(row: LandedRow, run_id: int, now: datetime) -> Counted:
    """What the risk limits counted when ``row`` settled, as the executor counts it: its gas and
    realized profit on the UTC day it settled (an unknown profit as the gas lost; a row without
    a settlement time as of ``now``). A row of another run counted no failure in this run's
    count (a start reads only the day's gas and profit back, an unknown profit as 0): it is
    taken back as an outcome that moves no failure count."""
    ours = row.run_id == run_id
    gas = row.gas_cost or 0
    pnl = row.realized_profit
    if pnl is None:
        pnl = -gas if ours else 0
    day = utc_day(row.settled_at if row.settled_at is not None else now)
    outcome: Outcome = "not_included"
    if ours and row.status in ("included", "reverted"):
        outcome = "included" if row.status == "included" else "reverted"
    return Counted(outcome, gas, pnl, day, 0)
