"""What the chain, the builder and the database say after the faults, side by side.

- double sends: two different transactions of the searcher with the same nonce handed to the
  builder for the same block (two could have landed), and, on the chain, two included
  transactions for one opportunity;
- lost records: a transaction of the searcher the chain included or the builder received that
  no bundle record of the database holds;
- records contradicting the chain: a bundle recorded as included that is not in that block, or
  a transaction the chain included whose record says otherwise (counted with parity failures);
- parity failures: the engine's own parity checks (pools against the chain) in every run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from arbx.chain.rpc import RpcClient
from arbx.execution.rawtx import decode_raw_tx
from arbx.store import make_engine, make_session_factory
from arbx.store.models import BundleRow, Run

SETTLED_INCLUDED = "included"
Row = tuple[int, list[str], str, int | None, str, int | None]


@dataclass
class Audit:
    """The counts the report keeps, and one line per finding."""

    double_sends: int = 0
    lost_records: int = 0
    wrong_records: int = 0
    parity_failures: int = 0
    parity_checks: int = 0
    chain_txs: int = 0
    builder_txs: int = 0
    records: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)


async def chain_txs(rpc_url: str, sender: str, to: str) -> dict[str, tuple[int, str, int]]:
    """Every transaction of ``sender`` to ``to`` on the chain: hash -> (block, block hash,
    nonce)."""
    found: dict[str, tuple[int, str, int]] = {}
    unreadable: list[int] = []
    async with RpcClient([rpc_url], timeout=30.0) as client:
        head = int(await client.call("eth_blockNumber", []), 16)
        for start in range(0, head + 1, 100):
            numbers = range(start, min(head, start + 99) + 1)
            blocks = await client.batch([("eth_getBlockByNumber", [hex(n), True]) for n in numbers])
            for block in blocks:
                if not isinstance(block, dict):  # a block the node no longer serves
                    unreadable.append(1)
                    continue
                for tx in block["transactions"]:
                    if tx["from"].lower() == sender and (tx.get("to") or "").lower() == to:
                        found[tx["hash"].lower()] = (
                            int(block["number"], 16),
                            block["hash"].lower(),
                            int(tx["nonce"], 16),
                        )
    if unreadable:
        found["unreadable_blocks"] = (len(unreadable), "", 0)
    return found


def builder_txs(sent: list[tuple[str, Any]], sender: str) -> list[tuple[str, int, int]]:
    """(tx hash, nonce, target block) of each searcher transaction in each ``eth_sendBundle``
    the builder received."""
    out: list[tuple[str, int, int]] = []
    for method, params in sent:
        if method != "eth_sendBundle" or not params or not isinstance(params[0], dict):
            continue
        bundle = params[0]
        target = int(bundle.get("blockNumber", "0x0"), 16)
        for raw in bundle.get("txs", []):
            tx = decode_raw_tx(raw)
            if tx.sender == sender:
                out.append(("0x" + tx.hash.hex(), tx.nonce, target))
    return out


async def audit(
    *,
    rpc_url: str,
    database_urls: list[str],
    searcher: str,
    executor: str,
    sent: list[tuple[str, Any]],
) -> Audit:
    """Compare the chain, the builder's received bundles and the database."""
    searcher, executor = searcher.lower(), executor.lower()
    result = Audit()
    on_chain = await chain_txs(rpc_url, searcher, executor)
    unreadable = on_chain.pop("unreadable_blocks", (0, "", 0))[0]
    if unreadable:
        result.findings.append(f"the node did not serve {unreadable} blocks (not audited)")
    received = builder_txs(sent, searcher)
    rows: list[Row] = []
    for database_url in database_urls:
        _read_database(database_url, rows, result)
    result.chain_txs, result.builder_txs, result.records = len(on_chain), len(received), len(rows)

    recorded: dict[str, list[tuple[int, str, int | None, str, int | None]]] = defaultdict(list)
    for bundle_id, hashes, status, block, block_hash, opportunity in rows:
        for h in hashes:
            recorded[h].append((bundle_id, status, block, block_hash, opportunity))

    for h in sorted({h for h, _, _ in received} | set(on_chain)):
        if h not in recorded:
            result.lost_records += 1
            where = "the chain included" if h in on_chain else "the builder received"
            result.findings.append(f"lost record: {where} {h} and no bundle record holds it")

    for h, (block, block_hash, _) in on_chain.items():
        records = recorded.get(h, [])
        if records and not any(r[1] == SETTLED_INCLUDED and r[3] == block_hash for r in records):
            result.wrong_records += 1
            states = ", ".join(f"bundle {r[0]} {r[1]}" for r in records)
            result.findings.append(
                f"record contradicts the chain: {h} is in block {block}, recorded as {states}"
            )
    for h, records in recorded.items():
        for bundle_id, status, block, block_hash, _ in records:
            if status == SETTLED_INCLUDED and on_chain.get(h, (0, "", 0))[1] != block_hash:
                result.wrong_records += 1
                result.findings.append(
                    f"record contradicts the chain: bundle {bundle_id} recorded as included in "
                    f"block {block}, and {h} is not there"
                )

    by_slot: dict[tuple[int, int], set[str]] = defaultdict(set)
    for h, nonce, target in received:
        by_slot[(nonce, target)].add(h)
    for (nonce, target), slot in sorted(by_slot.items()):
        if len(slot) > 1:
            result.double_sends += len(slot) - 1
            result.findings.append(
                f"double send: {len(slot)} transactions with nonce {nonce} sent for block {target}"
            )
    per_opportunity: dict[int, set[str]] = defaultdict(set)
    for h in on_chain:
        for _, _, _, _, opportunity in recorded.get(h, []):
            if opportunity is not None:
                per_opportunity[opportunity].add(h)
    for opportunity, landed in per_opportunity.items():
        if len(landed) > 1:
            result.double_sends += len(landed) - 1
            result.findings.append(
                f"double send: opportunity {opportunity} has {len(landed)} transactions on chain"
            )
    result.parity_failures += result.wrong_records
    return result


def _read_database(url: str, rows: list[Row], result: Audit) -> None:
    """The bundle records and run summaries of one database, into ``rows`` and ``result``."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            rows.extend(
                (b.id, [h.lower() for h in b.tx_hashes_json], b.status, b.included_block,
                 (b.included_block_hash or "").lower(), b.opportunity_id)
                for b in session.scalars(select(BundleRow))
            )  # fmt: skip
            for run in session.scalars(select(Run).order_by(Run.id)):
                summary = run.summary_json or {}
                parity = summary.get("parity") or {}
                result.parity_failures += int(parity.get("failures") or 0)
                result.parity_checks += int(parity.get("blocks_checked") or 0)
                result.runs.append(
                    {"run": run.id, "status": run.status, "reason": summary.get("reason"),
                     "blocks": summary.get("blocks"), "parity": parity}
                )  # fmt: skip
    finally:
        engine.dispose()
