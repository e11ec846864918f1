"""Self-scoring: what became of an opportunity we found, judged from the blocks that followed.

An MEV inspector's rule finds the arbitrages (:func:`find_arbitrages`): within one transaction,
swaps in log order where each takes the token the previous one gave, ending in the token the
first one took, with more of it than went in; the profit is the difference, in that token, and
the transaction's sender is who took it. :func:`classify` then names the outcome of one
opportunity found at block B over the window B+1..B+K, first rule that applies:

- ``never_real``: our own simulation of it failed (it was never there to take);
- ``captured_us``: our bundle for it alone was included; or it rode with other routes in one
  transaction of ours (``executeMany``) that landed and swapped through its pools (a route the
  batch skipped swaps nothing and is judged by the rules below); or one of our addresses ran an
  arbitrage through any of its pools in the window;
- ``captured_other``: someone else's arbitrage went through any of its pools (the first one in
  the window: its sender, transaction and profit);
- ``still_open``: no swap touched its pools in the window, or the route was found again at the
  last block that touched them;
- ``closed``: ordinary trading touched its pools and the route was not found again after.

``pending`` is not an outcome: an opportunity is scored only once its window has passed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final, Literal

Outcome = Literal["never_real", "captured_us", "captured_other", "still_open", "closed"]
OUTCOMES: Final[tuple[Outcome, ...]] = (
    "captured_us",
    "captured_other",
    "still_open",
    "closed",
    "never_real",
)
MAX_SWAPS_PER_TX: Final = 64  # a transaction with more swaps is not searched for cycles


@dataclass(frozen=True, slots=True)
class Swap:
    """One pool swap as its log tells it: the pool, what went in and what came out."""

    pool: str
    token_in: str
    amount_in: int
    token_out: str
    amount_out: int


@dataclass(frozen=True, slots=True)
class TxSwaps:
    """The swaps of one transaction, in log order, with who sent it."""

    block: int
    index: int  # the transaction's position in its block
    tx_hash: str
    sender: str
    to: str | None
    swaps: tuple[Swap, ...]


@dataclass(frozen=True, slots=True)
class Arbitrage:
    """A cycle of swaps in one transaction: who ran it, through which pools, for what profit."""

    block: int
    index: int
    tx_hash: str
    sender: str
    to: str | None
    pools: tuple[str, ...]
    token: str
    profit: int


@dataclass(frozen=True, slots=True)
class Found:
    """An opportunity to score: its block, the pools of its route, what we know of our side."""

    block: int
    pools: tuple[str, ...]
    simulation_failed: bool = False
    included: bool = False  # our bundle for it alone (one route) landed
    # our landed transactions (hashes, lower case) that carried it among several routes: it was
    # ours only if one of them swapped through its pools (else the batch skipped it)
    batch_txs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Score:
    """The outcome of one opportunity, the block that decided it, and who took it if not us."""

    outcome: Outcome
    decided_block: int | None = None
    taker: str | None = None
    taker_tx: str | None = None
    taker_profit: int | None = None
    token: str | None = None


def find_arbitrages(tx: TxSwaps) -> list[Arbitrage]:
    """The arbitrage cycles in one transaction's swaps.

    Logs are not in route order: a pool emits ``Swap`` after its callback returns, so a flash
    swap's event comes after those of the hops run inside it. A cycle is grown from each swap
    not yet used by taking the earliest unused swap that takes the token the last one gave,
    until the token the first one took comes back. At most ``MAX_SWAPS_PER_TX`` swaps are
    searched (quadratic in them); a transaction with more is not an arbitrage we name.
    """
    swaps = tx.swaps if len(tx.swaps) <= MAX_SWAPS_PER_TX else ()
    used = [False] * len(swaps)
    found: list[Arbitrage] = []
    for start, first in enumerate(swaps):
        if used[start]:
            continue
        path = [start]
        token = first.token_out.lower()
        while token != first.token_in.lower():
            step = next(
                (
                    j
                    for j, s in enumerate(swaps)
                    if not used[j] and j not in path and s.token_in.lower() == token
                ),
                None,
            )
            if step is None:
                break
            path.append(step)
            token = swaps[step].token_out.lower()
        last = swaps[path[-1]]
        if len(path) < 2 or token != first.token_in.lower() or last.amount_out <= first.amount_in:
            continue
        for index in path:
            used[index] = True
        found.append(
            Arbitrage(
                tx.block,
                tx.index,
                tx.tx_hash,
                tx.sender,
                tx.to,
                tuple(swaps[i].pool for i in path),
                first.token_in,
                last.amount_out - first.amount_in,
            )
        )
    return found


def classify(
    found: Found,
    window: Sequence[Sequence[TxSwaps]],
    ours: Collection[str],
    found_again: Collection[int] = (),
) -> Score:
    """The outcome of ``found`` over ``window`` (the transactions of blocks B+1..B+K, each block
    in order); ``ours``: our addresses and transaction hashes (lower case); ``found_again``:
    the blocks where the engine found the same route again."""
    if found.simulation_failed:
        return Score("never_real")
    if found.included:
        return Score("captured_us")
    pools = {p.lower() for p in found.pools}
    if found.batch_txs:
        carriers = {h.lower() for h in found.batch_txs}
        for block in window:
            for tx in block:
                if tx.tx_hash.lower() in carriers and {s.pool.lower() for s in tx.swaps} & pools:
                    return Score("captured_us", tx.block, tx.sender, tx.tx_hash)
    last_touch: int | None = None
    for block in window:
        for tx in sorted(block, key=lambda t: t.index):
            touched = {s.pool.lower() for s in tx.swaps} & pools
            if not touched:
                continue
            last_touch = tx.block
            for arbitrage in find_arbitrages(tx):
                if not {p.lower() for p in arbitrage.pools} & pools:
                    continue
                who = {arbitrage.sender.lower(), arbitrage.tx_hash.lower()}
                outcome: Outcome = "captured_us" if who & set(ours) else "captured_other"
                return Score(
                    outcome,
                    arbitrage.block,
                    arbitrage.sender,
                    arbitrage.tx_hash,
                    arbitrage.profit,
                    arbitrage.token,
                )
    if last_touch is None or last_touch in found_again:
        return Score("still_open", last_touch)
    return Score("closed", last_touch)
