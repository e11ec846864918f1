"""The cyclic-arbitrage strategy: on each block, re-evaluate only the routes its changes touch.

It owns the route index over the pool book; the pool book itself is kept by the chain sync.
Costs depend on the block (its base fee), so they are built per block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from arbx.domain.arbitrage import Rankings, evaluate_touched
from arbx.domain.journal import PoolBook
from arbx.domain.profit import Costs, GasModel, Opportunity
from arbx.domain.routes import RouteIndex, connector_tokens, find_cycles


@dataclass(frozen=True, slots=True)
class StrategyLimits:
    """What the strategy may do: base tokens, route length, per-base input caps, thresholds."""

    base_tokens: tuple[str, ...]
    max_hops: int = 3
    max_input: Mapping[str, int] | None = None
    min_net_profit_wei: int = 1
    builder_share_bps: int = 0
    priority_fee_wei: int = 0
    max_routes: int = 200_000
    # routes of 4 hops or more pass only through tokens paired with at least this many distinct
    # tokens (the hubs); None: through any token
    connector_min_pairs: int | None = None
    max_sized: int | None = 64  # live routes sized exactly per block, best estimate first
    gas: GasModel = field(default_factory=GasModel)


class CyclicArbitrage:
    """Finds and sizes profitable cycles through the pools a block changed."""

    def __init__(
        self,
        book: PoolBook,
        limits: StrategyLimits,
        caps: Callable[[], Mapping[str, int] | None] | None = None,
    ) -> None:
        self.book = book
        self.limits = limits
        self.caps = caps  # live input caps per base token (the risk stage's), read every block;
        # None from it (or no caps at all): the limits' own max_input
        self.index = RouteIndex(())
        self.rankings: Rankings = {}  # detection's per-edge rankings, kept between blocks
        self.rebuild()

    def rebuild(self) -> None:
        """Enumerate the routes again (after pools were added)."""
        pools = self.book.pools.values()
        min_pairs = self.limits.connector_min_pairs
        routes = find_cycles(
            pools,
            self.limits.base_tokens,
            max_hops=self.limits.max_hops,
            limit=self.limits.max_routes,
            connectors=None if min_pairs is None else connector_tokens(pools, min_pairs),
        )
        self.index = RouteIndex(routes)
        self.rankings = {}

    def costs(self, base_fee_wei: int) -> Costs:
        """The block's costs."""
        return Costs(
            base_fee_wei=base_fee_wei,
            priority_fee_wei=self.limits.priority_fee_wei,
            builder_share_bps=self.limits.builder_share_bps,
            min_net_profit=self.limits.min_net_profit_wei,
            gas=self.limits.gas,
        )

    def on_block(self, changed: Iterable[str], base_fee_wei: int) -> list[Opportunity]:
        """Opportunities through the changed pools, best net profit first."""
        caps = self.caps() if self.caps is not None else None
        if caps is None:
            caps = self.limits.max_input
        return evaluate_touched(
            self.index,
            changed,
            self.book.pools,
            self.costs(base_fee_wei),
            caps,
            self.limits.max_sized,
            self.rankings,
        )
