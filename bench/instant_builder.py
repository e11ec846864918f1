"""A builder that answers at once: the Flashbots bundle protocol on loopback, building no blocks.

A mainnet builder cannot run here, and the devnet's local builder (``arbx.devnet.builder``) takes
the time a real block builder takes. This double speaks the same protocol with the same checks,
and answers as soon as it can, so that a benchmark measures the searcher's own head-to-bundle
time: every request must carry a valid ``X-Flashbots-Signature`` (HTTP 403 otherwise);
``eth_sendBundle`` is validated (``parse_send_bundle``), kept by signer and uuid and acknowledged
with its bundle hash; ``eth_cancelBundle`` drops the signer's bundle with that uuid;
``eth_callBundle`` runs the bundle with ``eth_simulateV1`` on the node (the devnet builder's
simulation) and answers as the Flashbots relay does. It builds no blocks: nothing it is sent is
ever included. Run it in its own process (``python -m bench.instant_builder --node URL``), as a
builder is: it prints ``listening on URL`` once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from eth_utils.crypto import keccak

from arbx.chain.rpc import RpcClient, hex_int
from arbx.chain.transport import TransportError, decode_json, dumps
from arbx.devnet.builder import BUILDER_COINBASE
from arbx.devnet.builder_sim import BlockEnv, call_bundle_answer, simulate
from arbx.execution.flashbots import (
    FLASHBOTS_HEADER,
    parse_call_bundle_request,
    parse_cancel,
    parse_send_bundle,
    verify_flashbots_signature,
)

MAX_REQUEST_BYTES = 1024 * 1024


@dataclass(slots=True)
class DoubleStats:
    """What the double was asked."""

    sent: int = 0
    called: int = 0
    cancelled: int = 0
    refused: int = 0
    bundles: dict[tuple[str, str | None], int] = field(default_factory=dict)
    answer_ms: dict[str, list[float]] = field(default_factory=dict)  # request read -> answer


class InstantBuilder:
    """The double's state and handlers."""

    def __init__(self, node_url: str) -> None:
        self.rpc = RpcClient([node_url], timeout=10.0, retries=0)
        self.stats = DoubleStats()
        self.chain_id = 0

    async def handle(self, request: web.Request) -> web.Response:
        """One JSON-RPC request, timed from its body read to its answer."""
        body = await request.read()
        started = time.perf_counter()
        answer = await self._dispatch(request, body)
        elapsed = (time.perf_counter() - started) * 1000
        method = "?"
        with contextlib.suppress(TransportError, TypeError, KeyError):
            method = str(decode_json(body)["method"])
        self.stats.answer_ms.setdefault(method, []).append(elapsed)
        return answer

    async def _dispatch(self, request: web.Request, body: bytes) -> web.Response:
        try:
            doc = decode_json(body)
        except TransportError:
            return _answer(None, error=(-32700, "parse error"), status=400)
        if type(doc) is not dict or type(doc.get("method")) is not str:
            return _answer(None, error=(-32600, "invalid request"), status=400)
        request_id, method, params = doc.get("id"), doc["method"], doc.get("params")
        try:
            signer = verify_flashbots_signature(request.headers.get(FLASHBOTS_HEADER), body)
        except ValueError as exc:
            self.stats.refused += 1
            return _answer(request_id, error=(-32600, str(exc)), status=403)
        try:
            if method == "eth_sendBundle":
                bundle = parse_send_bundle(params)
                self.stats.sent += 1
                if not bundle.txs:
                    self._drop(signer, bundle.uuid)
                    return _answer(request_id, None)
                self.stats.bundles[(signer, bundle.uuid)] = bundle.block_number
                digest = keccak(b"".join(tx.hash for tx in bundle.txs))
                return _answer(request_id, {"bundleHash": "0x" + digest.hex()})
            if method == "eth_cancelBundle":
                self._drop(signer, parse_cancel(params))
                return _answer(request_id, None)
            if method == "eth_callBundle":
                call = parse_call_bundle_request(params)
                self.stats.called += 1
                if not self.chain_id:
                    self.chain_id = await self.rpc.chain_id()
                senders = sorted({tx.sender for tx in call.txs})
                env, counts = await self._env(
                    call.state_block, call.block_number, call.timestamp, senders
                )
                run = await simulate(self.rpc, call.txs, env, self.chain_id, counts=counts)
                if run.error is not None:
                    return _answer(request_id, error=(-32000, run.error))
                return _answer(request_id, call_bundle_answer(call.txs, run, env))
        except ValueError as exc:
            return _answer(request_id, error=(-32602, str(exc)))
        return _answer(request_id, error=(-32601, f"method {method} not offered"))

    async def _env(
        self, state: int | str, number: int, timestamp: int | None, senders: list[str]
    ) -> tuple[BlockEnv, dict[str, int]]:
        """The simulated block's environment and the senders' nonces, in one batch."""
        tag = hex(state) if isinstance(state, int) else state
        block, history, *counts = await self.rpc.batch(
            [
                ("eth_getBlockByNumber", [tag, False]),
                ("eth_feeHistory", ["0x1", tag, []]),
                *(("eth_getTransactionCount", [s, tag]) for s in senders),
            ]
        )
        if block is None:
            raise ValueError(f"no block {state}")
        parent, parent_time = hex_int(block["number"]), hex_int(block["timestamp"])
        when = timestamp if timestamp is not None else max(parent_time + 1, int(time.time()))
        base_fee = hex_int(history["baseFeePerGas"][-1])
        nonces = {s: hex_int(c) for s, c in zip(senders, counts, strict=True)}
        return BlockEnv(parent, number, when, base_fee, BUILDER_COINBASE), nonces

    def _drop(self, signer: str, uuid: str | None) -> None:
        if self.stats.bundles.pop((signer, uuid), None) is not None:
            self.stats.cancelled += 1


def _answer(
    request_id: Any, result: Any = None, *, error: tuple[int, str] | None = None, status: int = 200
) -> web.Response:
    doc: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if error is None:
        doc["result"] = result
    else:
        doc["error"] = {"code": error[0], "message": error[1]}
    return web.Response(body=bytes(dumps(doc)), status=status, content_type="application/json")


@contextlib.asynccontextmanager
async def serving(node_url: str, port: int = 0) -> AsyncIterator[tuple[InstantBuilder, str]]:
    """The double serving on 127.0.0.1:``port`` (0: any free port); it and its URL."""
    double = InstantBuilder(node_url)
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app.router.add_post("/", double.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        yield double, f"http://127.0.0.1:{int(runner.addresses[0][1])}"
    finally:
        await runner.cleanup()
        await double.rpc.close()


async def serve(node_url: str, port: int) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM or SIGINT; print its figures at the end."""
    async with serving(node_url, port) as (double, url):
        print(f"listening on {url}", flush=True)
        await _until_signalled()
    s = double.stats
    times = {m: round(statistics.median(v), 2) for m, v in s.answer_ms.items() if v}
    print(
        json.dumps(
            {"sent": s.sent, "called": s.called, "cancelled": s.cancelled,
             "refused": s.refused, "answer_ms_p50": times}
        ),
        flush=True,
    )  # fmt: skip


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.instant_builder --node URL [--port P]``."""
    parser = argparse.ArgumentParser(prog="bench.instant_builder")
    parser.add_argument("--node", required=True, help="the node's JSON-RPC URL (for callBundle)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.node, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
