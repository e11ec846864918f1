"""Releases, pure: the pre-promotion comparison of two engines on the same blocks, and the audit
of the signer lock's epochs and the signatures made under them.

``compare`` takes what the active and the preview (standby) engine recorded of each block and
keeps the blocks both processed with the same hash, leaving out the first ``warmup_blocks`` of
each run of either engine (a book just loaded, or reloaded, sees a block's changes from another
starting point than an engine that has followed every block). The preview passes when every
rule holds:

- at least ``min_blocks`` common blocks;
- the same routes found in each block, with input sizes and expected profits equal within
  ``tolerance_bps``; at most ``max_differing_ratio`` of the common blocks may differ (an engine
  that just started, or reloaded pools, evaluates a few blocks on more routes);
- detection latency: the preview's median at most ``latency_ratio`` times the active's plus
  ``latency_slack_ms`` (both measured on the same blocks);
- no parity failure and no error in the preview on those blocks.

``audit`` checks that no two epochs of a key overlap in time, that only the newest epoch of a
key may still be open, and that every signature lies inside the epoch it names, made by the
holder of that epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median

BPS = 10_000


@dataclass(frozen=True, slots=True)
class RouteFound:
    """One opportunity of a block, as compared: its route, input size and expected profit."""

    route: str
    amount_in: int
    net_profit: int


@dataclass(frozen=True, slots=True)
class BlockRecord:
    """What one engine made of one block."""

    number: int
    hash: str
    routes: tuple[RouteFound, ...]
    latency_ms: float
    parity_failures: int = 0
    errors: int = 0
    run: int = 0  # the run that recorded it


@dataclass(frozen=True, slots=True)
class CompareRules:
    """When a preview passes (see the module docstring)."""

    min_blocks: int = 20
    tolerance_bps: int = 10
    max_differing_ratio_bps: int = 500
    latency_ratio_bps: int = 20_000
    latency_slack_ms: float = 10.0
    warmup_blocks: int = 2


@dataclass(frozen=True, slots=True)
class Condition:
    """One rule of the comparison with its measured value, its requirement and the verdict."""

    name: str
    measured: str
    required: str
    ok: bool


@dataclass(frozen=True, slots=True)
class Comparison:
    """The verdict of ``compare`` and its conditions."""

    conditions: tuple[Condition, ...]
    common_blocks: int
    first_block: int | None
    last_block: int | None
    differing: tuple[str, ...] = ()  # a few examples of blocks that differ, for the operator

    @property
    def passed(self) -> bool:
        """Whether every condition holds."""
        return all(c.ok for c in self.conditions)


def _within(a: int, b: int, tolerance_bps: int) -> bool:
    """Whether ``b`` is within ``tolerance_bps`` of ``a`` (exact when 0)."""
    return abs(a - b) * BPS <= abs(a) * tolerance_bps


def block_difference(active: BlockRecord, preview: BlockRecord, tolerance_bps: int) -> str | None:
    """Why two records of the same block differ (routes, sizes, profits), else None."""
    ours = {r.route: r for r in active.routes}
    theirs = {r.route: r for r in preview.routes}
    if ours.keys() != theirs.keys():
        missing, extra = len(ours.keys() - theirs.keys()), len(theirs.keys() - ours.keys())
        return f"block {active.number}: {missing} routes missing, {extra} more in the preview"
    for key, a in ours.items():
        b = theirs[key]
        if not _within(a.amount_in, b.amount_in, tolerance_bps):
            return f"block {active.number}: route {key} sized {b.amount_in}, active {a.amount_in}"
        if not _within(a.net_profit, b.net_profit, tolerance_bps):
            return (
                f"block {active.number}: route {key} expects {b.net_profit}, active {a.net_profit}"
            )
    return None


def compare(
    active: Iterable[BlockRecord], preview: Iterable[BlockRecord], rules: CompareRules
) -> Comparison:
    """The preview against the active engine over the blocks both processed (same hash)."""
    by_block = {(r.number, r.hash): r for r in _settled(active, rules.warmup_blocks)}
    pairs = [
        (by_block[(p.number, p.hash)], p)
        for p in _settled(preview, rules.warmup_blocks)
        if (p.number, p.hash) in by_block
    ]
    pairs.sort(key=lambda pair: pair[0].number)
    n = len(pairs)
    conditions = [
        Condition("common blocks", str(n), f">= {rules.min_blocks}", n >= rules.min_blocks)
    ]
    differences = [
        why for a, p in pairs if (why := block_difference(a, p, rules.tolerance_bps)) is not None
    ]
    allowed = n * rules.max_differing_ratio_bps // BPS
    conditions.append(
        Condition(
            "blocks with other routes, sizes or profits",
            f"{len(differences)} of {n}",
            f"<= {allowed} ({rules.max_differing_ratio_bps / 100:g}%, "
            f"sizes and profits within {rules.tolerance_bps / 100:g}%)",
            len(differences) <= allowed,
        )
    )
    if n:
        ours = median(a.latency_ms for a, _ in pairs)
        theirs = median(p.latency_ms for _, p in pairs)
        bound = ours * rules.latency_ratio_bps / BPS + rules.latency_slack_ms
        conditions.append(
            Condition(
                "median detection latency (ms)",
                f"{theirs:.2f} (active {ours:.2f})",
                f"<= {bound:.2f}",
                theirs <= bound,
            )
        )
    else:
        conditions.append(Condition("median detection latency (ms)", "-", "common blocks", False))
    failures = sum(p.parity_failures for _, p in pairs)
    errors = sum(p.errors for _, p in pairs)
    conditions.append(Condition("preview parity failures", str(failures), "0", failures == 0))
    conditions.append(Condition("preview errors", str(errors), "0", errors == 0))
    return Comparison(
        tuple(conditions),
        n,
        pairs[0][0].number if pairs else None,
        pairs[-1][0].number if pairs else None,
        tuple(differences[:5]),
    )


def _settled(records: Iterable[BlockRecord], warmup: int) -> list[BlockRecord]:
    """The records past the first ``warmup`` blocks of their run."""
    first: dict[int, list[int]] = {}
    ordered = sorted(records, key=lambda r: (r.run, r.number))
    for r in ordered:
        numbers = first.setdefault(r.run, [])
        if len(numbers) < warmup:
            numbers.append(r.number)
    return [r for r in ordered if r.number not in first.get(r.run, ())]


@dataclass(frozen=True, slots=True)
class Epoch:
    """One holding of a key, as recorded."""

    key: str
    epoch: int
    holder: str
    release: str | None
    acquired_at: datetime
    released_at: datetime | None


@dataclass(frozen=True, slots=True)
class Signature:
    """One transaction signed under an epoch."""

    key: str
    epoch: int
    holder: str
    tx_hash: str
    signed_at: datetime


@dataclass(frozen=True, slots=True)
class Audit:
    """What ``audit`` found: the problems (none: the history proves one signer at a time)."""

    epochs: int
    signatures: int
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """No overlap and no signature outside its epoch."""
        return not self.problems


def audit(epochs: Sequence[Epoch], signatures: Sequence[Signature]) -> Audit:
    """Check the epochs of every key and every signature against them."""
    problems: list[str] = []
    by_key: dict[str, list[Epoch]] = {}
    for e in epochs:
        by_key.setdefault(e.key, []).append(e)
    for key, held in by_key.items():
        held.sort(key=lambda e: e.epoch)
        for e in held:
            if e.released_at is not None and e.released_at < e.acquired_at:
                problems.append(f"key {key} epoch {e.epoch}: released before it was acquired")
        for i, a in enumerate(held):
            if a.released_at is None and i != len(held) - 1:
                problems.append(f"key {key} epoch {a.epoch}: still open after a later epoch")
            for b in held[i + 1 :]:
                if _overlap(a, b):
                    problems.append(
                        f"key {key}: epoch {a.epoch} ({a.holder}, {_span(a)}) overlaps epoch "
                        f"{b.epoch} ({b.holder}, {_span(b)})"
                    )
    index: Mapping[tuple[str, int], Epoch] = {(e.key, e.epoch): e for e in epochs}
    for s in signatures:
        under = index.get((s.key, s.epoch))
        if under is None:
            problems.append(f"tx {s.tx_hash}: signed under epoch {s.epoch} of {s.key}, unknown")
        elif s.holder != under.holder:
            problems.append(
                f"tx {s.tx_hash}: signed by {s.holder} under epoch {s.epoch} held by {under.holder}"
            )
        elif s.signed_at < under.acquired_at or (
            under.released_at is not None and s.signed_at > under.released_at
        ):
            problems.append(
                f"tx {s.tx_hash}: signed at {s.signed_at.isoformat()}, outside epoch "
                f"{s.epoch} ({_span(under)})"
            )
    return Audit(len(epochs), len(signatures), tuple(problems))


def _overlap(a: Epoch, b: Epoch) -> bool:
    a_end, b_end = a.released_at, b.released_at
    return (b_end is None or a.acquired_at < b_end) and (a_end is None or b.acquired_at < a_end)


def _span(e: Epoch) -> str:
    end = e.released_at.isoformat() if e.released_at is not None else "open"
    return f"{e.acquired_at.isoformat()} .. {end}"
