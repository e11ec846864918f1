"""Profit after costs: gas, the builder's payment and a threshold turn a sized route into an
``Opportunity``.

Gas is counted in units per hop kind (measured on the real contracts, see ``GasModel``), priced at
base fee plus priority fee, and converted to the base token. The builder is paid a share of the
gross profit, exactly as the executor contract pays it to ``block.coinbase`` (only on success).
Sizing maximises gross profit; with a fixed gas cost and a proportional builder share, that
input also maximises net profit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from arbx.domain.pools import Pool, V2Pool
from arbx.domain.routes import Route
from arbx.domain.sizing import Sized

BPS = 10_000


@dataclass(frozen=True, slots=True)
class GasModel:
    """Gas units of one atomic route through the executor contract, by hop kind.

    Fitted to whole routes through our executor on anvil with the real Uniswap bytecode
    (V2-V2 168.3k, V2-V3 179.9k, V3-V2 168.3k, V3-V3 196.5k, V2-V3-V2 232.3k, V3-V2-V3
    240.2k gas, the builder paid); tests/integration/test_executor.py checks every shape
    within 20%. Each initialized
    tick crossed costs ~24k more (up to ~60k for a tick never crossed before, rare in an
    established pool; tests/integration/test_gas.py measures both).
    """

    overhead: int = 62_500  # intrinsic 21k, calldata, balance checks, the builder's payment
    v2_hop: int = 52_000
    v3_hop: int = 65_000
    v3_tick_crossed: int = 24_000

    def units(self, pools: Sequence[Pool], ticks_crossed: Sequence[int]) -> int:
        """Total gas units for a route through ``pools`` with the given ticks crossed per hop."""
        total = self.overhead
        for pool, crossed in zip(pools, ticks_crossed, strict=True):
            if isinstance(pool, V2Pool):
                total += self.v2_hop
            else:
                total += self.v3_hop + self.v3_tick_crossed * crossed
        return total


@dataclass(frozen=True, slots=True)
class Costs:
    """What a trade costs besides the pools' own fees, and the least net profit worth taking."""

    base_fee_wei: int = 0
    priority_fee_wei: int = 0
    builder_share_bps: int = 0
    min_net_profit: int = 1
    base_per_wei: tuple[int, int] = (1, 1)  # base-token units per wei of gas money (1/1 for WETH)
    gas: GasModel = field(default_factory=GasModel)

    def gas_cost(self, units: int) -> int:
        """Gas money for ``units``, in the base token, rounded up."""
        num, den = self.base_per_wei
        return -(-(units * (self.base_fee_wei + self.priority_fee_wei) * num) // den)


def builder_payment(profit: int, builder_share_bps: int) -> int:
    """What the executor pays ``block.coinbase`` on a gross ``profit`` (rounded down, 0 if none).

    The one copy of the contract's ``profit * builderShareBps / 10_000``: sizing, the bundle's
    ``minProfit`` and the tests all use it.
    """
    return profit * builder_share_bps // BPS if profit > 0 else 0


def kept_profit(profit: int, builder_share_bps: int) -> int:
    """What stays in the contract after the builder's payment; ``minProfit`` bounds it."""
    return profit - builder_payment(profit, builder_share_bps)


def builder_share_for(payment: int, gross_profit: int) -> int:
    """The largest share (bps) whose contract payment on ``gross_profit`` is at most ``payment``."""
    if gross_profit <= 0 or payment <= 0:
        return 0
    return min(BPS, payment * BPS // gross_profit)


@dataclass(frozen=True, slots=True)
class Opportunity:
    """A sized route with its expected profit after every cost."""

    route: Route
    amount_in: int
    amounts: tuple[int, ...]
    gross_profit: int
    gas_units: int
    gas_cost: int
    builder_payment: int
    net_profit: int

    @property
    def amount_out(self) -> int:
        """What the route returns in the base token."""
        return self.amounts[-1]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; integers as decimal strings."""
        return {
            "pools": list(self.route.pools),
            "tokens": list(self.route.tokens),
            "amount_in": str(self.amount_in),
            "amounts": [str(a) for a in self.amounts],
            "amount_out": str(self.amount_out),
            "profit": str(self.gross_profit),
            "gas_units": self.gas_units,
            "gas_cost": str(self.gas_cost),
            "builder_payment": str(self.builder_payment),
            "net_profit": str(self.net_profit),
        }


def assess(
    route: Route, pools: Mapping[str, Pool], sized: Sized, costs: Costs
) -> Opportunity | None:
    """The opportunity after costs, or None when its net profit is under the threshold."""
    units = costs.gas.units([pools[a] for a in route.pools], sized.ticks_crossed)
    gas_cost = costs.gas_cost(units)
    gross = sized.profit
    builder = builder_payment(gross, costs.builder_share_bps)
    net = gross - builder - gas_cost
    if net < costs.min_net_profit:
        return None
    return Opportunity(
        route=route,
        amount_in=sized.amount_in,
        amounts=sized.amounts,
        gross_profit=gross,
        gas_units=units,
        gas_cost=gas_cost,
        builder_payment=builder,
        net_profit=net,
    )
