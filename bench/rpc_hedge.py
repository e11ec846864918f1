"""What a hung RPC endpoint costs the reads, with and without hedging (``chain.hedge_after``).

The first of two endpoints answers ``eth_blockNumber`` (the client's health probe) at once and
holds every other request unanswered (a node whose backend hangs behind a balancer that answers
the block number). For ``SECONDS``, one caller reads the latest block again and again, as the
engine's sync does; each read's time is measured. Without hedging, each time the probe brings
the endpoint back a read waits out the whole ``timeout``; with it, a read the endpoint has not
answered in ``hedge_after`` goes to the second endpoint too.

    python -m bench.rpc_hedge

Prints a table; JSON in ``build/bench/rpc_hedge.json``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from arbx.chain.rpc import RpcClient
from arbx.devnet.anvil import free_port, start_anvil

RESULTS = Path(__file__).resolve().parents[1] / "build" / "bench" / "rpc_hedge.json"
SECONDS = 30.0
TIMEOUT = 2.0  # the chaos suite's chain.timeout
STALLED = 0.1  # a read slower than this counts as stalled


class HalfHung:
    """Answers ``eth_blockNumber`` from ``upstream``; holds the rest for 10 s, then a 504."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if json.loads(body).get("method") != "eth_blockNumber":
            await asyncio.sleep(10)
            return web.Response(status=504)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self.upstream, data=body, headers={"Content-Type": "application/json"}
            ) as answer,
        ):
            return web.Response(body=await answer.read(), content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        await self.runner.cleanup()


async def reads(hung: str, node: str, hedge_after: float | None) -> dict[str, float]:
    """Read for ``SECONDS`` through [hung, node]; the reads' times."""
    times: list[float] = []
    async with RpcClient([hung, node], timeout=TIMEOUT, hedge_after=hedge_after) as client:
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            started = time.perf_counter()
            await client.call("eth_getBlockByNumber", ["latest", False])
            times.append(time.perf_counter() - started)
        stats = client.stats
    stalled = [t for t in times if t > STALLED]
    return {
        "reads": len(times),
        "stalled_reads": len(stalled),
        "stalled_s": round(sum(stalled), 2),
        "worst_ms": round(max(times) * 1000, 1),
        "median_ms": round(statistics.median(times) * 1000, 2),
        "hedges": stats.hedges,
        "timeouts": stats.timeouts,
    }


async def main() -> None:
    with start_anvil() as anvil:
        server = HalfHung(anvil.url)
        await server.start()
        try:
            print(f"A hung endpoint first of two, {SECONDS:g} s of reads, timeout {TIMEOUT:g} s:")
            results = {}
            for label, hedge in (("no hedging", None), ("hedge_after 0.5 s", 0.5)):
                figures = results[label] = await reads(server.url, anvil.url, hedge)
                shown = ", ".join(f"{k} {v}" for k, v in figures.items())
                print(f"  {label:>18}: {shown}")
        finally:
            await server.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"seconds": SECONDS, "timeout": TIMEOUT, **results}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
