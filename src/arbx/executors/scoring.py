"""Self-scoring during a run: each opportunity is judged once ``window`` blocks have passed.

At every head N, the run's opportunities found at or before N - window that have no score are
classified (:func:`arbx.domain.scoring.classify`) from the swaps of the blocks after them
(:class:`arbx.chain.swaps.SwapReader`, kept for the blocks still needed), the blocks where the
run found the same route again, shadow mode's simulation of the trade it would have sent
(``executors.simulation``, in the opportunity's own status) and the run's own bundles (matched
by the routes they list): a failed simulation makes it ``never_real``, one sent for it alone
and included makes it ours, one that carried it among several routes and landed makes it ours
only if its transaction swapped through the route's pools (a route the batch skipped is not),
and our addresses (the signing key and the executor, in live modes) and our transactions'
hashes mark our arbitrages (a bundle's row may be written after the block that includes it is
scored: the addresses do not wait for it).
Scores are stored in ``opportunity_scores``, and each opportunity someone else took is a
sighting of a rival on its pools for the bidding (``competition``, ADR 0033), with what the
rival's transaction paid the coinbase per gas (``chain.swaps.coinbase_payments``). A failure to read
the chain or write the store is logged and counted, and the same opportunities are tried at the
next head: scoring never stops the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.rpc import RpcClient
from arbx.chain.swaps import MAX_RANGE, SwapReader, coinbase_payments
from arbx.domain.bidding import Competition
from arbx.domain.errors import ArbxError
from arbx.domain.pools import Pool
from arbx.domain.scoring import Found, Score, TxSwaps, classify
from arbx.engine.pipeline import BlockResult
from arbx.store import score_repo
from arbx.store.score_repo import FAILED_SIMULATION, OurBundle, ToScore

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 3


class Scorer:
    """Scores a run's opportunities as their windows pass."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: RpcClient,
        pools: Mapping[str, Pool],
        run_id: int,
        chain_id: int,
        window: int = DEFAULT_WINDOW,
        weth: str | None = None,
    ) -> None:
        if not 1 <= window <= MAX_RANGE // 2:
            raise ValueError(f"the scoring window must be 1..{MAX_RANGE // 2} blocks")
        self.sessions = sessions
        self.reader = SwapReader(client, pools)
        self.run_id = run_id
        self.chain_id = chain_id
        self.window = window
        self.weth = weth  # the token rivals unwrap to pay the coinbase (None: not read)
        self.addresses: set[str] = set()  # ours (lower case): the signing key, the executor
        self.competition = Competition()  # rivals seen per pool (the live executor bids on it)
        self.scored = 0
        self.failures = 0
        self._swaps: dict[int, list[TxSwaps]] = {}

    def forget_swaps(self) -> None:
        """Drop the swaps read so far (a reorg may have replaced their blocks)."""
        self._swaps.clear()

    async def on_block(self, block: BlockResult) -> None:
        """Score what the head ``block`` completes the window of."""
        head = block.head.number
        if block.update.reorg_depth:
            self._swaps.clear()  # the blocks read before may have been replaced
        try:
            await self.score_to(head)
        except (ArbxError, SQLAlchemyError, ValueError, OSError) as exc:
            self.failures += 1
            log.warning("self-scoring at block %d failed (retried at the next): %s", head, exc)

    async def score_to(self, head: int) -> int:
        """Score the oldest opportunities whose window ends at or before ``head``, as many as
        one read of the chain's swaps covers (``MAX_RANGE`` blocks); how many. Called again, it
        goes on with the next: the scoring fell behind by more than that only when it failed
        for a while, and then its oldest windows are read, not skipped."""
        up_to = head - self.window
        pending = await asyncio.to_thread(self._pending, up_to)
        if pending is None:
            return 0
        waiting, found_again, bundles = pending
        first = waiting[0].block + 1  # oldest first
        last = min(head, first + MAX_RANGE - 1)
        waiting = [o for o in waiting if o.block + self.window <= last]
        missing = [n for n in range(first, last + 1) if n not in self._swaps]
        if missing:
            read = await self.reader.read(missing[0], missing[-1])
            for number in range(missing[0], missing[-1] + 1):
                self._swaps[number] = read.get(number, [])
        ours = self.addresses | {h for b in bundles for h in b.tx_hashes}
        scores: list[tuple[ToScore, Score]] = []
        for opportunity in waiting:
            blocks = range(opportunity.block + 1, opportunity.block + self.window + 1)
            window = [self._swaps.get(n, []) for n in blocks]
            found = _found(opportunity, bundles, self.window)
            again = found_again.get(opportunity.route_key, set())
            scores.append((opportunity, classify(found, window, ours, again)))
        await self._see_rivals(scores)
        await asyncio.to_thread(self._store, scores)
        self.scored += len(scores)
        for number in [n for n in self._swaps if n < first]:
            del self._swaps[number]
        return len(scores)

    async def _see_rivals(self, scores: Sequence[tuple[ToScore, Score]]) -> None:
        """Each opportunity someone else took is a sighting of a rival on its pools, with what
        its transaction paid the coinbase per gas when ``weth`` is known and the node tells it
        (a failure to read it leaves the sightings without payments)."""
        taken = [
            (o, s) for o, s in scores
            if s.outcome == "captured_other" and s.decided_block is not None
        ]  # fmt: skip
        paid: dict[str, int] = {}
        if taken and self.weth is not None:
            wanted = {s.taker_tx for _, s in taken if s.taker_tx is not None}
            called = {
                tx.tx_hash: tx.to
                for block in self._swaps.values()
                for tx in block
                if tx.tx_hash in wanted
            }
            try:
                paid = await coinbase_payments(self.reader.client, called, self.weth)
            except (ArbxError, ValueError, OSError) as exc:
                log.warning("the rivals' payments were not read: %s", exc)
        for opportunity, score in taken:
            payment = paid.get(score.taker_tx) if score.taker_tx is not None else None
            self.competition.saw(opportunity.pools, score.decided_block or 0, payment)

    def _pending(
        self, up_to: int
    ) -> tuple[list[ToScore], dict[str, set[int]], list[OurBundle]] | None:
        with self.sessions() as session:
            waiting = score_repo.unscored(session, self.run_id, up_to)
            if not waiting:
                return None
            first = waiting[0].block
            last = waiting[-1].block + self.window
            keys = [o.route_key for o in waiting]
            found_again = score_repo.found_blocks(session, self.run_id, keys, first + 1, last)
            bundles = score_repo.our_bundles(session, self.run_id, first + 1)
        return waiting, found_again, bundles

    def _store(self, scores: Sequence[tuple[ToScore, Score]]) -> None:
        with self.sessions.begin() as session:
            for opportunity, score in scores:
                score_repo.add_score(
                    session,
                    opportunity,
                    self.run_id,
                    self.chain_id,
                    self.window,
                    score,
                )


def _found(opportunity: ToScore, bundles: Sequence[OurBundle], window: int) -> Found:
    """What our simulations and bundles say of ``opportunity``: those sent for it (its route
    among theirs) for a block in its window. A failed simulation marks it never real: shadow
    mode's of the trade it would have sent (the opportunity's own status), or any bundle's (a
    batch fails only when none of its routes runs); one sent alone and included makes it ours;
    one that carried it among several routes and landed names the transaction whose swaps must
    show it ran."""
    carriers = [
        b
        for b in bundles
        if opportunity.block < b.target_block <= opportunity.block + window
        and b.carries(opportunity.route_key, opportunity.net_profit)
    ]
    landed = [b for b in carriers if b.status == "included"]
    return Found(
        opportunity.block,
        opportunity.pools,
        simulation_failed=opportunity.status in FAILED_SIMULATION
        or any(b.status in FAILED_SIMULATION for b in carriers),
        included=any(not b.batch for b in landed),
        batch_txs=tuple(h for b in landed if b.batch for h in b.tx_hashes),
    )
