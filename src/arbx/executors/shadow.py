"""Shadow mode's executor: it records every block and what was found in it, and never signs.

Writes go to the store from one worker thread, in order, so a slow disk never delays the next
block's detection; they are serialised through one lock (SQLite has a single writer). A write the
database cannot take now (restarting, a connection cut, locked) is tried again in place for up
to ``RETRY_FOR`` seconds (``executors.records``); the block waits for it, and a database gone
for longer stops the run with that error rather than losing its records.

Every block also leaves a result under the engine's release and role (``block_results``: the
routes found with their sizes and expected profits, detection latency, errors, and later its
parity check), which ``arbx release compare`` reads to compare a preview with the active engine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from arbx import __version__
from arbx.chain.parity import ParityResult
from arbx.chain.sync import hex_hash
from arbx.engine.pipeline import BlockResult
from arbx.executors.records import RETRY_FOR, RecordWriter
from arbx.store import api_repo, release_repo, repo

log = logging.getLogger(__name__)


class ShadowExecutor:
    """Records blocks, reorgs and opportunities of one run."""

    mode = "shadow"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        run_id: int,
        chain_id: int,
        *,
        release: str = __version__,
        role: str = "active",
        retry_for: float = RETRY_FOR,
    ) -> None:
        self.sessions = sessions
        self.run_id = run_id
        self.chain_id = chain_id
        self.release = release
        self.role = role  # 'active' or 'standby': what the block results say of this engine
        self._lock = threading.Lock()
        self._writes = RecordWriter("arbx-shadow", retry_for, strict=True)

    async def on_block(self, block: BlockResult) -> None:
        """Store the block (marking a reorged branch) and its opportunities."""
        await self._writes.submit(self.write_block, block)

    async def on_parity(self, result: ParityResult) -> None:
        """Store one parity check."""
        await self._writes.submit(self._write_parity, result)

    async def on_simulated(
        self, number: int, block_hash: str, route_keys: Sequence[str], status: str
    ) -> None:
        """Store what the simulation of the trade of block ``number`` (``block_hash``) said of
        its routes (after the block's own record: the writes keep their order)."""
        await self._writes.submit(self._write_status, number, block_hash, route_keys, status)

    def _write_status(
        self, number: int, block_hash: str, route_keys: Sequence[str], status: str
    ) -> None:
        with self._lock, self.sessions.begin() as session:
            repo.set_route_status(session, self.run_id, number, block_hash, route_keys, status)

    def close(self) -> None:
        """Stop the writer's thread (after the writes already queued)."""
        self._writes.close()

    def write_block(self, block: BlockResult) -> None:
        """Store the block and its opportunities (blocking: call from a worker thread)."""
        head = block.head
        header = repo.BlockHeader(
            chain_id=self.chain_id,
            number=head.number,
            hash=hex_hash(head.hash),
            parent_hash=hex_hash(head.parent_hash),
            timestamp=head.timestamp,
        )
        with self._lock, self.sessions.begin() as session:
            if block.update.reorg_depth:
                repo.mark_reorged(
                    session, self.chain_id, head.number - block.update.blocks_applied + 1
                )
            repo.record_block(
                session,
                header,
                block.seen_at,
                run_id=self.run_id,
                processed_at=datetime.now(UTC),
                latency_ms=block.latency_ms,
            )
            if block.opportunities:
                ids = repo.add_opportunities(
                    session,
                    self.run_id,
                    header,
                    block.opportunities,
                    detected_at=datetime.now(UTC),
                    latency_ms=block.latency_ms,
                )
                api_repo.notify_event(session, "opportunity", {"ids": ids})
            release_repo.record_block_result(
                session,
                release_repo.BlockResultRecord(
                    chain_id=self.chain_id,
                    run_id=self.run_id,
                    release=self.release,
                    role=self.role,
                    block_number=head.number,
                    block_hash=header.hash,
                    routes=[
                        (repo.route_key(o.route), o.amount_in, o.net_profit)
                        for o in block.opportunities
                    ],
                    latency_ms=block.latency_ms,
                    errors=block.errors,
                    recorded_at=datetime.now(UTC),
                ),
            )
            api_repo.beat(
                session,
                self.chain_id,
                run_id=self.run_id,
                head_block=head.number,
                synced_block=head.number,
            )
        block_event(self.run_id, block)

    def _write_parity(self, result: ParityResult) -> None:
        with self._lock, self.sessions.begin() as session:
            repo.add_parity_check(
                session,
                self.run_id,
                result.block,
                result.checked,
                result.failures,
                detail=dict(list(result.differences.items())[:20]) or None,
            )
            if not result.skipped:
                release_repo.record_parity(session, self.run_id, result.block, result.failures)


def block_event(run_id: int, block: BlockResult) -> None:
    """One log event per block: its number, hash, run, timings and what was found."""
    head, update = block.head, block.update
    block_hash = hex_hash(head.hash)
    recorded_ms = (datetime.now(UTC) - block.seen_at).total_seconds() * 1000
    log.info(
        "block %d %s run %d: %d opportunities, %d pools changed, found in %.1f ms, "
        "recorded in %.1f ms",
        head.number,
        block_hash,
        run_id,
        len(block.opportunities),
        len(update.changed),
        block.latency_ms,
        recorded_ms,
        extra={
            "event": "block",
            "run_id": run_id,
            "block": head.number,
            "block_hash": block_hash,
            "opportunities": len(block.opportunities),
            "pools_changed": len(update.changed),
            "reorg_depth": update.reorg_depth,
            "latency_ms": round(block.latency_ms, 3),
            "recorded_ms": round(recorded_ms, 3),
        },
    )
