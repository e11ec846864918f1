"""Profit after costs: gas, the builder's payment and a threshold turn a sized route into an
``Opportunity``.

Gas is counted in units per hop kind (measured on the real contracts, see ``GasModel``), priced at
base fee plus priority fee, and converted to the base token. The builder is paid a share of what
is left after gas (paid only on success, by the executor contract). Sizing maximises gross profit;
with a fixed gas cost and a proportional builder share, that input also maximises net profit.
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

    Measured on anvil with the real Uniswap bytecode (tests/integration/test_gas.py checks them):
    a V2 pair swap executes in ~52k gas plus ~13k for the token transfer into the pair; a V3 pool
    swap with its callback payment ~84k, and each initialized tick crossed ~24k more (up to ~60k
    for a tick never crossed before, which is rare in an established pool).
    """

    overhead: int = 21_000 + 35_000  # intrinsic cost and the executor's own checks and payment
    v2_hop: int = 65_000
    v3_hop: int = 85_000
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
    after_gas = gross - gas_cost
    builder = after_gas * costs.builder_share_bps // BPS if after_gas > 0 else 0
    net = after_gas - builder
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
