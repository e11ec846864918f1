"""The builder's share per opportunity, from the competition seen on its pools.

Self-scoring names who took each opportunity we found; one taken by someone else is a sighting
of a rival on that opportunity's pools (:class:`Competition` keeps them, a bounded memory per
pool), with what the rival's transaction paid the block's coinbase per unit of gas when the
chain told it. The local builder, like a real one, ranks bundles by what they pay the coinbase
per gas, so where rivals are seen a bundle that pays nothing loses to any of them, and where
none is seen paying the builder only gives profit away. :func:`share_bps` is that rule, bounded
by the settings (:class:`BidPolicy`): ``quiet_bps`` on pools where no rival was seen within
``memory_blocks``; where one was and its payment is known, the least share that pays more per
gas than the highest payment seen there, by ``outbid_bps`` (with our priority fee counted);
where only sightings are known, ``contested_bps`` plus ``step_bps`` for each further sighting;
never above ``max_bps``, and never so high that what is left after the builder does not pay the
gas and the least net profit (the share is lowered to fit, and may reach 0).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final

from arbx.domain.profit import BPS, builder_payment

MAX_POOLS: Final = 4_096  # pools remembered; the oldest sightings go first past it
MAX_SIGHTINGS: Final = 16  # per pool


@dataclass(frozen=True, slots=True)
class BidPolicy:
    """The bounds of the builder's share, in basis points of an opportunity's gross profit."""

    quiet_bps: int = 0
    contested_bps: int = 5_000
    step_bps: int = 1_000
    max_bps: int = 8_000
    memory_blocks: int = 100
    follow_payments: bool = True  # outbid the rivals' payments seen, where known
    outbid_bps: int = 1_000  # over the highest payment per gas seen

    def __post_init__(self) -> None:
        for name in ("quiet_bps", "contested_bps", "step_bps", "max_bps", "outbid_bps"):
            value = getattr(self, name)
            if not 0 <= value <= BPS:
                raise ValueError(f"{name} {value} is outside 0..{BPS}")
        if self.memory_blocks < 1:
            raise ValueError(f"memory_blocks {self.memory_blocks} must be at least 1")


class Competition:
    """Rivals' arbitrages seen per pool: the blocks they took them at and, when known, what
    they paid the coinbase per gas (bounded memory)."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[tuple[int, int | None]]] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def saw(self, pools: Iterable[str], block: int, paid_per_gas: int | None = None) -> None:
        """A rival took an arbitrage through ``pools`` (or one of them) at ``block``, paying the
        coinbase ``paid_per_gas`` wei per gas (None: not known)."""
        for pool in {p.lower() for p in pools}:
            blocks = self._seen.pop(pool, None) or deque(maxlen=MAX_SIGHTINGS)
            blocks.append((block, paid_per_gas))
            self._seen[pool] = blocks  # the most recently seen pool last
        while len(self._seen) > MAX_POOLS:
            del self._seen[next(iter(self._seen))]

    def sightings(self, pools: Collection[str], at: int, memory_blocks: int) -> int:
        """Rivals' arbitrages on any of ``pools`` within ``memory_blocks`` before ``at``."""
        return len({b for b, _ in self._within(pools, at, memory_blocks)})

    def highest_payment(self, pools: Collection[str], at: int, memory_blocks: int) -> int | None:
        """The most a rival seen on any of ``pools`` within ``memory_blocks`` before ``at`` paid
        the coinbase per gas; None when no payment was known."""
        paid = [p for _, p in self._within(pools, at, memory_blocks) if p is not None]
        return max(paid) if paid else None

    def _within(
        self, pools: Collection[str], at: int, memory_blocks: int
    ) -> list[tuple[int, int | None]]:
        since = at - memory_blocks
        return [s for p in pools for s in self._seen.get(p.lower(), ()) if since < s[0] <= at]


def share_bps(
    pools: Collection[str],
    gross_profit: int,
    gas_cost: int,
    competition: Competition,
    at: int,
    policy: BidPolicy,
    *,
    min_net_profit: int = 1,
    gas_units: int = 0,
    priority_fee_wei: int = 0,
) -> int:
    """The builder's share for an opportunity through ``pools`` found at block ``at``.

    Where a rival's payment per gas was seen (and ``gas_units``, the route's gas, is given),
    the least share whose payment, with ``priority_fee_wei`` per gas, beats the highest one by
    ``outbid_bps``; else the policy's share for the sightings. Then lowered until what the
    opportunity keeps after the builder and gas is at least ``min_net_profit`` (0 if even
    nothing paid does not leave that).
    """
    seen = competition.sightings(pools, at, policy.memory_blocks)
    rival = competition.highest_payment(pools, at, policy.memory_blocks) if seen else None
    if rival is not None and policy.follow_payments and gas_units > 0 and gross_profit > 0:
        per_gas = rival * (BPS + policy.outbid_bps) // BPS + 1 - priority_fee_wei
        need = max(0, per_gas) * gas_units  # wei to the coinbase, beyond the priority fee
        wanted = max(policy.quiet_bps, -(-need * BPS // gross_profit))  # ceil(need / gross)
    elif seen:
        wanted = policy.contested_bps + policy.step_bps * (seen - 1)
    else:
        wanted = policy.quiet_bps
    wanted = min(wanted, policy.max_bps)
    room = gross_profit - gas_cost - min_net_profit  # the most the builder may be paid
    if room <= 0 or gross_profit <= 0:
        return 0
    if builder_payment(gross_profit, wanted) <= room:
        return wanted
    # the largest share whose payment (rounded down, as the contract does) fits in ``room``
    # (gross * share // BPS <= room  <=>  share <= ((room + 1) * BPS - 1) // gross)
    return min(((room + 1) * BPS - 1) // gross_profit, wanted)
