"""The trade the live engine sends for a block: its routes, each route's builder share, the
executor contract's calldata and the gas limit.

The live executor (``executors.bundle``) signs this and sends it; shadow mode simulates the
same call without a key (``executors.simulation``): both build it here, so what shadow mode
judges is what a live engine would have sent.

A block's trade is its best opportunity (if it starts in the base token), or with
``routes_per_block`` above 1 its best pool-disjoint opportunities (``capture.routes_to_send``)
in one ``executeMany`` call (ADR 0033). Each route pays the builder the configured share, or with
a ``bidding`` policy the share for the rivals self-scoring saw on its pools.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from arbx.domain.bidding import BidPolicy, Competition, share_bps
from arbx.domain.capture import routes_to_send
from arbx.domain.pools import Pool
from arbx.domain.profit import Opportunity, builder_payment, kept_profit
from arbx.domain.sizing import Sized
from arbx.execution.relay import BuilderSpec
from arbx.execution.route_codec import encode_execute, encode_execute_many
from arbx.execution.tx import gas_limit_from

# The gas limit over the gas model's figure. The model estimates gas used (up to 18% under on
# the devnet); a call needs more than it uses (refunds come at the end, a call forwards only
# 63/64 of what is left), and a limit too low fails simulation: 20% lost about one bundle in
# six there, 50% none. A higher limit costs nothing: only gas used is paid.
MODEL_GAS_MARGIN_BPS = 10_000


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """How the live executor trades."""

    executor: str  # the deployed ArbExecutor, owned by the signing key
    base_token: str  # the wrapped native token the executor pays the builder in
    builders: tuple[BuilderSpec, ...]
    builder_share_bps: int = 0
    priority_fee_wei: int = 1_000_000_000
    slippage_bps: int = 0  # how far under the expected profit the contract may still accept
    blocks_ahead: int = 0  # target blocks after the next one
    gas_margin_bps: int = MODEL_GAS_MARGIN_BPS  # over the gas model's figure, for the limit
    simulate_at_builders: bool = False  # also wait for a builder's eth_callBundle (ADR 0023)
    routes_per_block: int = 1  # pool-disjoint routes sent together (executeMany past 1)
    extra_routes: str = "all"  # which join the best: "all", or "contested" ones
    contested_memory_blocks: int = 100  # a rival seen this recently makes a pool contested
    extra_min_net_wei: int = 0  # the least expected net profit of a route joining the best
    bidding: BidPolicy | None = None  # the builder's share per route; None: builder_share_bps


@dataclass(frozen=True, slots=True)
class Trade:
    """One block's trade: the routes in order, each one's builder share, the calldata for the
    executor contract and the transaction's gas limit."""

    routes: tuple[Opportunity, ...]
    shares: tuple[int, ...]
    calldata: bytes
    gas_limit: int

    @property
    def expected_net_profit(self) -> int:
        """The routes' expected net profit together, at the shares paid."""
        return sum(
            o.gross_profit - builder_payment(o.gross_profit, share) - o.gas_cost
            for o, share in zip(self.routes, self.shares, strict=True)
        )


def choose_routes(
    opportunities: Sequence[Opportunity],
    block: int,
    settings: LiveSettings,
    competition: Competition,
) -> list[Opportunity]:
    """A block's trade before the risk limits: its best opportunity (if it is in the base
    token) and, up to ``routes_per_block``, the best pool-disjoint others ``extra_routes`` lets
    join it."""
    if not opportunities or opportunities[0].route.base != settings.base_token:
        return []
    ours = [o for o in opportunities if o.route.base == settings.base_token]
    memory = settings.contested_memory_blocks

    def extra(i: int) -> bool:
        if ours[i].net_profit < settings.extra_min_net_wei:
            return False
        if settings.extra_routes == "all":
            return True
        return competition.sightings(ours[i].route.pools, block, memory) > 0

    chosen = routes_to_send(
        [(o.route.pools, o.net_profit) for o in ours],
        limit=settings.routes_per_block,
        extra=extra,
    )
    return [ours[i] for i in chosen]


def route_share(
    opportunity: Opportunity, block: int, settings: LiveSettings, competition: Competition
) -> int:
    """The builder's share for one route: the configured one, or the bidding policy's."""
    policy = settings.bidding
    if policy is None:
        return settings.builder_share_bps
    return share_bps(
        opportunity.route.pools,
        opportunity.gross_profit,
        opportunity.gas_cost,
        competition,
        block,
        policy,
        gas_units=opportunity.gas_units,
        priority_fee_wei=settings.priority_fee_wei,
    )


def build_trade(
    routes: Sequence[Opportunity],
    block: int,
    settings: LiveSettings,
    pools: Mapping[str, Pool],
    competition: Competition,
) -> Trade:
    """The trade of ``routes`` (chosen, and let through by the limits) at head ``block``:
    ``execute`` for one route, ``executeMany`` over each route's ``execute`` past one; the gas
    limit is the sum of the routes' (the gas model's figure plus the margin). InputError when
    a route does not fit the contract (see ``route_codec.execute_call``)."""
    shares = tuple(route_share(o, block, settings, competition) for o in routes)
    calls = [_execute(o, share, settings, pools) for o, share in zip(routes, shares, strict=True)]
    calldata = calls[0] if len(calls) == 1 else encode_execute_many(calls)
    gas_limit = sum(gas_limit_from(o.gas_units, settings.gas_margin_bps) for o in routes)
    return Trade(tuple(routes), shares, calldata, gas_limit)


def _execute(
    opportunity: Opportunity, share: int, settings: LiveSettings, pools: Mapping[str, Pool]
) -> bytes:
    kept = kept_profit(opportunity.gross_profit, share)
    min_profit = max(1, kept * (10_000 - settings.slippage_bps) // 10_000)
    sized = Sized(opportunity.amount_in, opportunity.amounts, (0,) * len(opportunity.amounts))
    return encode_execute(opportunity.route, pools, sized, settings.base_token, min_profit, share)
