"""The live terminal view of a run: head block, pools in sync, latency, the best opportunities.

On a terminal it redraws in place (rich); elsewhere (CI, a pipe, a log file) it prints one plain
line per block, so logs stay readable.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Mapping
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from arbx.engine.pipeline import BlockResult, RunSummary
from arbx.store.repo import percentile

WEI_PER_ETH = 10**18


def eth(wei: int) -> str:
    """An amount of wei as ETH with 6 decimals."""
    return f"{wei / WEI_PER_ETH:.6f}"


class RunView:
    """Renders each processed block; call ``close`` at the end."""

    def __init__(
        self,
        title: str,
        symbols: Mapping[str, str],
        stream: TextIO | None = None,
        live: bool | None = None,
    ) -> None:
        self.title = title
        self.symbols = symbols
        self.stream = stream or sys.stdout
        self.console = Console(file=self.stream)
        self.live_mode = self.console.is_terminal if live is None else live
        self.latencies: deque[float] = deque(maxlen=1000)
        self.found = 0
        self.expected = 0
        self.blocks = 0
        self.reorgs = 0
        self._live: Live | None = None
        if self.live_mode:
            self._live = Live(console=self.console, refresh_per_second=8, transient=False)
            self._live.start()

    def update(self, block: BlockResult) -> None:
        """Show one block."""
        self.blocks += 1
        self.found += len(block.opportunities)
        self.expected += sum(o.net_profit for o in block.opportunities)
        self.reorgs += 1 if block.update.reorg_depth else 0
        self.latencies.append(block.latency_ms)
        if self._live is not None:
            self._live.update(self._render(block))
            return
        best = block.opportunities[0] if block.opportunities else None
        line = (
            f"block {block.head.number}  pools {block.pools}  changed {len(block.update.changed)}"
            f"  found {len(block.opportunities)}  latency {block.latency_ms:.1f} ms"
        )
        if best is not None:
            line += f"  best {eth(best.net_profit)} ETH via {self._path(best.route.tokens)}"
        if block.update.reorg_depth:
            line += f"  reorg depth {block.update.reorg_depth}"
        print(line, file=self.stream, flush=True)

    def _path(self, tokens: tuple[str, ...]) -> str:
        return ">".join(self.symbols.get(t, t[:6]) for t in tokens)

    def _render(self, block: BlockResult) -> Group:
        ordered = sorted(self.latencies)
        head = Text.assemble(
            (f"{self.title}  ", "bold"),
            f"block {block.head.number}   pools in sync {block.pools}   ",
            f"blocks {self.blocks}   reorgs {self.reorgs}   found {self.found}   ",
            f"sum of all found {eth(self.expected)} ETH (overlapping)   ",
            f"latency p50 {percentile(ordered, 50) or 0:.1f} ms  "
            f"p99 {percentile(ordered, 99) or 0:.1f} ms",
        )
        table = Table(title="best opportunities of this block", expand=True)
        table.add_column("route")
        table.add_column("in (ETH)", justify="right")
        table.add_column("gross", justify="right")
        table.add_column("gas", justify="right")
        table.add_column("net (ETH)", justify="right")
        for o in block.opportunities[:8]:
            table.add_row(
                self._path(o.route.tokens),
                eth(o.amount_in),
                eth(o.gross_profit),
                eth(o.gas_cost),
                eth(o.net_profit),
            )
        return Group(head, table)

    def close(self, summary: RunSummary) -> None:
        """Stop redrawing and print the run's summary."""
        if self._live is not None:
            self._live.stop()
        ordered = sorted(summary.latencies_ms)
        p50, p99 = percentile(ordered, 50), percentile(ordered, 99)
        print(
            f"stopped ({summary.stopped_by}): {summary.blocks} blocks, "
            f"{summary.opportunities} opportunities, sum of all found "
            f"{eth(summary.expected_net_profit_wei)} ETH (overlapping routes: the capturable "
            f"part is in arbx report), reorgs {summary.reorgs}, "
            f"parity {summary.parity_checks} of {summary.blocks} blocks checked / "
            f"{summary.parity_failures} failures, "
            f"latency p50 {p50 or 0:.1f} ms p99 {p99 or 0:.1f} ms",
            file=self.stream,
            flush=True,
        )
