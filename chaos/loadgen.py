"""``python -m chaos.loadgen URL [--clients N] [--nice N]``: outside traffic on the API, with
the bearer token in ``CHAOS_API_TOKEN``.

``N`` clients on loopback read the API flat out, each sending its next request as soon as the
last is answered, whatever the answer (a 429's ``Retry-After`` is not honoured: the worst
client, not a polite one). It starts paused: a line ``run`` on standard input starts the load,
``pause`` stops it, and the end of the input ends it; it then prints one JSON line, the answers
counted by status (``"error"``: no answer) and its CPU seconds (``"cpu_s"``).

It runs in a process of its own, in a session of its own (the fault starts it so), at the nice
value ``--nice`` (0 by default; its session's autogroup's too when it leads one): it stands for
traffic from other machines, which takes the API's CPU but not the engine's, so that the fault
measures the engine against the API, not against the load generator's place in the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
from collections import Counter
from pathlib import Path

import aiohttp

PATHS = ("/api/v1/opportunities?limit=50", "/api/v1/bundles?limit=50", "/api/v1/status")


async def load(url: str, token: str, clients: int) -> Counter[str]:
    """Run the clients while standard input says ``run``; the answers by status."""
    counts: Counter[str] = Counter()
    going = asyncio.Event()
    done = asyncio.Event()

    async def client(session: aiohttp.ClientSession, first: int) -> None:
        i = first
        while not done.is_set():
            if not going.is_set():
                await _either(going, done)
                continue
            try:
                async with session.get(url + PATHS[i % len(PATHS)]) as response:
                    await response.read()
                    counts[str(response.status)] += 1
            except (aiohttp.ClientError, TimeoutError):
                counts["error"] += 1
            i += 1

    async def control() -> None:
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "run":
                going.set()
            elif line.strip() == "pause":
                going.clear()
        going.clear()
        done.set()

    timeout = aiohttp.ClientTimeout(total=10)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        workers = [asyncio.ensure_future(client(session, i)) for i in range(clients)]
        await control()
        await asyncio.gather(*workers, return_exceptions=True)
    return counts


async def _either(a: asyncio.Event, b: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


def lower_priority(nice: int) -> None:
    """Nice ``nice``, and its autogroup's when this process leads its session."""
    os.nice(max(0, nice - os.nice(0)))
    if os.getsid(0) == os.getpid():
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(f"{nice}\n")


def main() -> int:
    """Parse, lower the priority, run until standard input ends; print the counts."""
    parser = argparse.ArgumentParser(prog="python -m chaos.loadgen")
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args()
    lower_priority(args.nice)
    token = os.environ.get("CHAOS_API_TOKEN", "")
    counts: dict[str, float] = dict(asyncio.run(load(args.url.rstrip("/"), token, args.clients)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    counts["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
