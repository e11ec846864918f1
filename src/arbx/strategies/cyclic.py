"""The cyclic-arbitrage strategy: on each block, re-evaluate only the routes its changes touch.

It owns the route index over the pool book; the pool book itself is kept by the chain sync.
Costs depend on the block (its base fee), so they are built per block.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from arbx.domain.arbitrage import LiveRoutes, Rankings, detect_touched
from arbx.domain.errors import InputError
from arbx.domain.journal import PoolBook
from arbx.domain.poolfile import checksum
from arbx.domain.profit import Costs, GasModel, Opportunity
from arbx.domain.routes import RouteIndex, connector_tokens, find_cycles

_UINT256: Final = 2**256


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


def limits_record(limits: StrategyLimits) -> dict[str, Any]:
    """``limits`` as JSON (amounts as decimal strings): what a recorded window keeps of them."""
    return {
        "base_tokens": list(limits.base_tokens),
        "max_hops": limits.max_hops,
        "max_input": None
        if limits.max_input is None
        else {k: str(v) for k, v in sorted(limits.max_input.items())},
        "min_net_profit_wei": str(limits.min_net_profit_wei),
        "builder_share_bps": limits.builder_share_bps,
        "priority_fee_wei": str(limits.priority_fee_wei),
        "max_routes": limits.max_routes,
        "connector_min_pairs": limits.connector_min_pairs,
        "max_sized": limits.max_sized,
        "gas": {k: str(v) for k, v in asdict(limits.gas).items()},
    }


def limits_from_record(doc: Mapping[str, Any]) -> StrategyLimits:
    """The limits ``limits_record`` wrote; InputError names a missing or bad field."""
    bases = doc.get("base_tokens")
    if type(bases) is not list or not 1 <= len(bases) <= 16:
        raise InputError("settings: 'base_tokens' must list 1 to 16 addresses")
    caps = doc.get("max_input")
    if caps is not None and (type(caps) is not dict or len(caps) > 64):
        raise InputError("settings: 'max_input' must be an object of at most 64 caps")
    gas = doc.get("gas")
    if type(gas) is not dict:
        raise InputError("settings: 'gas' must be an object")
    pairs = doc.get("connector_min_pairs")
    sized = doc.get("max_sized")
    return StrategyLimits(
        base_tokens=tuple(checksum(b, "settings base token") for b in bases),
        max_hops=_whole(doc, "max_hops", 2, 6),
        max_input=None
        if caps is None
        else {str(k)[:42]: _whole(caps, k, 1, _UINT256 - 1) for k in caps},
        min_net_profit_wei=_whole(doc, "min_net_profit_wei", 0, _UINT256 - 1),
        builder_share_bps=_whole(doc, "builder_share_bps", 0, 10_000),
        priority_fee_wei=_whole(doc, "priority_fee_wei", 0, _UINT256 - 1),
        max_routes=_whole(doc, "max_routes", 1, 10_000_000),
        connector_min_pairs=None if pairs is None else _whole(doc, "connector_min_pairs", 1, 10**6),
        max_sized=None if sized is None else _whole(doc, "max_sized", 1, 10**6),
        gas=GasModel(**{k: _whole(gas, k, 0, 10**9) for k in asdict(GasModel())}),
    )


def _whole(doc: Mapping[str, Any], key: str, lo: int, hi: int) -> int:
    value = doc.get(key)
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 78:
        value = int(value)
    if type(value) is not int or not lo <= value <= hi:
        raise InputError(f"settings: {str(key)[:40]!r} must be a whole number in [{lo}, {hi}]")
    return value


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
        self.rankings = Rankings()  # detection's per-edge rankings, kept between blocks
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
        self.rankings = Rankings()
        self.rankings.update(self.index, self.book.pools, {})  # every edge, once, now
        # The index (hundreds of thousands of routes at mainnet scale) lives until the next
        # rebuild: keep it, and all else alive now, out of the collector's full passes, which
        # otherwise walk it every few dozen blocks and double that block's detection time.
        gc.collect()
        gc.freeze()

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
        return self.detect(changed, base_fee_wei).all()

    def detect(self, changed: Iterable[str], base_fee_wei: int) -> LiveRoutes:
        """The live routes through the changed pools, to size the best few first and the rest
        after (``on_block`` is ``detect(...).all()``)."""
        caps = self.caps() if self.caps is not None else None
        if caps is None:
            caps = self.limits.max_input
        return detect_touched(
            self.index,
            changed,
            self.book.pools,
            self.costs(base_fee_wei),
            caps,
            self.limits.max_sized,
            self.rankings,
        )
