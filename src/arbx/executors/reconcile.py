"""What an earlier process left behind with the same key, settled before a live run trades.

A live engine killed between a send and its records (SIGKILL, the OOM killer, a lost node)
leaves bundles the builder may still include: rows recorded as ``sent`` that nothing will
settle, and, if it died before the row was written, transactions on chain that no record holds.
Before the first trade of a live run (the signer lock held, so no other process sends with the
key), :func:`settle_earlier`:

1. waits until ``blocks_ahead + 1`` blocks have passed since its start: whatever the dead
   process sent targeted those blocks at most, so it has now landed or can no longer land, and
   the nonce read next is final (no second transaction for a nonce in flight);
2. settles each ``sent`` row of the key from its receipt: included or reverted (block, gas) or,
   its blocks past, not included;
3. records, as recovered bundles of this run, the key's transactions on chain since the oldest
   block it may have missed (bounded by ``scan_back`` blocks) that no record holds, with their
   block and gas, so that the chain and the database agree and the day's gas counts them.

With the kill switch engaged at start (engaged while the earlier process was dead, or the reason
it was stopped), :func:`cancel_left_open` first cancels, at every builder, each copy of those
bundles for a block not built yet, by the replacement uuid recorded with their intent: the
switch takes back what was sent for later blocks whether or not the process that sent it lives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.receipts import Receipt, receipt, receipts
from arbx.chain.rpc import RpcClient
from arbx.execution.relay import BuilderSpec, RelayClient
from arbx.store import execution_repo as xrepo
from arbx.store.models import BundleRow

log = logging.getLogger(__name__)
SCAN_BACK = 256  # blocks searched for unrecorded transactions of the key at most
POLL = 0.25  # seconds between two head reads while waiting


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What was settled: rows found open, and transactions recorded anew."""

    settled: int = 0
    recovered: int = 0
    waited_blocks: int = 0


async def settle_earlier(
    sessions: sessionmaker[Session],
    client: RpcClient,
    signer: str,
    run_id: int,
    *,
    blocks_ahead: int,
    scan_back: int = SCAN_BACK,
    poll: float = POLL,
) -> Reconciled:
    """Settle the key's open bundles and record its unrecorded transactions (see the module)."""
    signer = signer.lower()
    start = await _head(client)
    head = start
    while head <= start + blocks_ahead:
        await asyncio.sleep(poll)
        head = await _head(client)
    settled = await _settle_open(sessions, client, signer, head, blocks_ahead)
    recovered = await _recover(sessions, client, signer, run_id, head, scan_back)
    if settled or recovered:
        log.warning(
            "settled %d bundles an earlier process left open; recorded %d transactions of the "
            "key no record held",
            settled,
            recovered,
        )
    return Reconciled(settled, recovered, head - start)


async def cancel_left_open(
    sessions: sessionmaker[Session],
    client: RpcClient,
    relay: RelayClient,
    builders: Sequence[BuilderSpec],
    signer: str,
    *,
    blocks_ahead: int,
) -> int:
    """Cancel every copy, for a block after the head, of the key's bundles still recorded as
    ``sent``; the number of cancellations a builder acknowledged."""
    head = await _head(client)
    with sessions() as session:
        open_rows = [
            (row.replacement_uuid, row.target_block)
            for row in session.scalars(
                select(BundleRow).where(
                    BundleRow.signer == signer.lower(),
                    BundleRow.status == "sent",
                    BundleRow.replacement_uuid.is_not(None),
                    BundleRow.target_block + blocks_ahead > head,
                )
            )
        ]
    acknowledged = 0
    for key, target in open_rows:
        blocks = [b for b in range(target, target + blocks_ahead + 1) if b > head]
        answers = await relay.cancel_fan_out(builders, str(key), blocks)
        acknowledged += sum(1 for a in answers if a.ok)
    if open_rows:
        log.warning(
            "kill switch engaged: cancelled %d bundles an earlier process left open "
            "(%d cancellations acknowledged)",
            len(open_rows),
            acknowledged,
        )
    return acknowledged


async def _head(client: RpcClient) -> int:
    return int(await client.call("eth_blockNumber", []), 16)


async def _settle_open(
    sessions: sessionmaker[Session], client: RpcClient, signer: str, head: int, ahead: int
) -> int:
    with sessions() as session:
        open_rows = [
            (row.id, list(row.tx_hashes_json), row.target_block)
            for row in session.scalars(
                select(BundleRow).where(BundleRow.signer == signer, BundleRow.status == "sent")
            )
        ]
    settled = 0
    for bundle_id, hashes, target in open_rows:
        landed = [r for r in await receipts(client, hashes) if r is not None]
        if landed:
            details = _details(landed[0])
            status = "included" if landed[0].succeeded else "reverted"
        elif target + ahead < head:
            details, status = {}, "not_included"
        else:
            continue
        with sessions.begin() as session:
            xrepo.update_bundle_outcome(
                session, bundle_id, status, settled_at=datetime.now(UTC), **details
            )
        settled += 1
    return settled


async def _recover(
    sessions: sessionmaker[Session],
    client: RpcClient,
    signer: str,
    run_id: int,
    head: int,
    scan_back: int,
) -> int:
    with sessions() as session:
        newest = session.scalar(
            select(func.max(BundleRow.target_block)).where(BundleRow.signer == signer)
        )
        known = {
            h.lower()
            for hashes in session.scalars(
                select(BundleRow.tx_hashes_json).where(BundleRow.signer == signer)
            )
            for h in hashes
        }
    if newest is None:  # the key never traded here: nothing can be missing
        return 0
    first = max(0, head - scan_back, min(int(newest), head) - 2)
    blocks = await client.batch(
        [("eth_getBlockByNumber", [hex(n), True]) for n in range(first, head + 1)]
    )
    missing = [
        tx
        for block in blocks
        if isinstance(block, dict)
        for tx in block.get("transactions", [])
        if isinstance(tx, dict)
        and str(tx.get("from", "")).lower() == signer
        and str(tx.get("hash", "")).lower() not in known
    ]
    for tx in missing:
        found = await receipt(client, str(tx["hash"]))
        if found is None:
            continue
        status = "included" if found.succeeded else "reverted"
        with sessions.begin() as session:
            bundle_id = xrepo.record_bundle(
                session,
                run_id,
                target_block=found.block_number,
                builders=[],
                tx_hashes=[str(tx["hash"]).lower()],
                expected_net_profit=0,
                signer=signer,
            )
            xrepo.update_bundle_outcome(
                session, bundle_id, status, settled_at=datetime.now(UTC), **_details(found)
            )
    return len(missing)


def _details(found: Receipt) -> dict[str, Any]:
    return {
        "included_block": found.block_number,
        "included_block_hash": found.block_hash_hex,
        "gas_used": found.gas_used,
        "gas_cost": found.gas_cost,
    }
