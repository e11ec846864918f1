"""Live-mode benchmark on the embedded devnet: what `arbx run --mode limited` captures.

Starts a devnet with ``arbx devnet up`` (anvil, the market and the local builder in their own
processes, as a real chain and builder would be), runs the live pipeline for a fixed number of
blocks and prints opportunities found, bundles sent and their outcomes, expected against
realized profit of the included bundles, and block-to-bundle latency (head seen -> bundle
sent) p50/p99. ``.venv/bin/python -m bench.live``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from arbx.chain.book import load_book
from arbx.chain.heads import heads
from arbx.chain.rpc import RpcClient
from arbx.chain.sync import ChainSync
from arbx.cli.live import devnet_keys, live_executor, stage_caps
from arbx.cli.run import DEVNET_RISK, devnet_spec
from arbx.config import load_settings
from arbx.devnet.anvil import free_port
from arbx.devnet.deployment import load_deployment
from arbx.engine.pipeline import Pipeline
from arbx.executors.shadow import ShadowExecutor
from arbx.store import execution_repo, make_engine, make_session_factory, migrate, repo
from arbx.store.repo import percentile
from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits

BLOCKS = 300
PACE = 0.1
RESULTS = Path("build") / "bench" / "live.json"


async def measure(devnet: Any, key_file: Path, folder: Path) -> dict[str, Any]:
    """The live pipeline for BLOCKS blocks; its figures.

    ``devnet`` has ``deployment``, ``url`` and ``builder_url`` (an embedded devnet or one
    started with ``arbx devnet up``).
    """
    url = f"sqlite:///{folder / 'live.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    execution = load_settings().execution.model_copy(update={"blocks_ahead": 1})
    settings = load_settings().model_copy(
        update={"mode": "limited", "risk": DEVNET_RISK, "execution": execution}
    )
    spec = devnet_spec(devnet.deployment)
    async with RpcClient([devnet.url], timeout=10.0) as client:
        book = (await load_book(client, spec)).book
        with sessions.begin() as session:
            repo.upsert_chain(session, 31337, "devnet")
            run_id = repo.start_run(session, 31337, mode="limited")
        recorder = ShadowExecutor(sessions, run_id, 31337)
        environ = {**os.environ, **devnet_keys(folder, key_file)}
        executor, risk, relay = await live_executor(
            settings=settings, mode="limited", engine=engine, sessions=sessions, client=client,
            chain_id=31337, base_token=spec.base_tokens[0], pools=book.pools, recorder=recorder,
            builder_url=devnet.builder_url, environ=environ, deploy=True,
        )  # fmt: skip
        strategy = CyclicArbitrage(book, StrategyLimits(base_tokens=spec.base_tokens))
        strategy.caps = lambda: stage_caps(risk, spec.base_tokens)
        pipeline = Pipeline(
            heads(client, poll_interval=0.02, use_ws=False), ChainSync(client, book),
            strategy, executor, pools=lambda: len(book),
        )  # fmt: skip
        try:
            summary = await pipeline.run(asyncio.Event(), max_blocks=BLOCKS)
        finally:
            await executor.close()
            risk.stop()
            await relay.close()
    with sessions.begin() as session:
        bundles = execution_repo.bundle_summary(session, run_id)
    ordered = sorted(executor.stats.bundle_latencies_ms)
    expected = bundles["included_expected_net_profit_wei"]
    realized = bundles["included_realized_profit_wei"]
    return {
        "blocks": summary.blocks,
        "opportunities": summary.opportunities,
        "bundles": {k: v for k, v in bundles.items() if not k.startswith("included_")},
        "included_expected_net_profit_wei": str(expected),
        "included_realized_profit_wei": str(realized),
        "realized_over_expected": realized / expected if expected else None,
        "block_to_bundle_ms": {
            "samples": len(ordered),
            "p50": percentile(ordered, 50),
            "p99": percentile(ordered, 99),
        },
        "stale_blocks_skipped": executor.stats.stale,
    }


class _Detached:
    """A devnet from ``arbx devnet up``: anvil, the market and its builder in other processes."""

    def __init__(self, file: Path) -> None:
        self.deployment = load_deployment(file)
        self.url = self.deployment.rpc_url
        self.builder_url = self.deployment.builder_url


def main() -> int:
    """Run the live benchmark and print its figures."""
    print(f"bench.live: {BLOCKS} blocks of limited mode on the devnet...", file=sys.stderr)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        key_file = folder / "devnet-searcher.key"
        file = folder / "devnet.json"
        arbx = [sys.executable, "-m", "arbx.cli", "devnet"]
        subprocess.run(
            [*arbx, "up", "--port", str(free_port()), "--block-time", "0", "--pace", str(PACE),
             "--seed", "5", "--file", str(file), "--searcher-key-file", str(key_file)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            result = asyncio.run(measure(_Detached(file), key_file, folder))
        finally:
            subprocess.run([*arbx, "down", "--file", str(file)], check=False)
    b, lat = result["bundles"], result["block_to_bundle_ms"]
    print("\nlive benchmark (limited mode, embedded devnet, local builder)\n")
    print(f"blocks                       {result['blocks']}")
    print(f"opportunities found          {result['opportunities']}")
    print(
        f"bundles                      {b['sent']} sent, {b['included']} included, "
        f"{b['not_included']} not included, {b['reverted']} reverted, "
        f"{b['state_moved']} state moved, {b['sim_failed']} failed simulation"
    )
    print(f"included: expected net       {result['included_expected_net_profit_wei']} wei")
    print(f"included: realized           {result['included_realized_profit_wei']} wei")
    ratio = result["realized_over_expected"]
    print(f"realized / expected          {ratio:.4f}" if ratio is not None else "-")
    print(
        f"block -> bundle latency      p50 {lat['p50'] or 0:.1f} ms, p99 {lat['p99'] or 0:.1f} ms"
        f" ({lat['samples']} bundles)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
