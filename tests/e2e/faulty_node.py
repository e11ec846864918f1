"""A JSON-RPC node in front of a real one that misbehaves the way real nodes do, on command.

Modes (``proxy.mode``):
- ``ok``: every request goes to the node and back unchanged.
- ``ahead``: the node announces a head it does not serve yet (``eth_blockNumber`` two blocks
  ahead, so ``eth_getBlockByNumber`` of it is null).
- ``no_logs``: the node has no logs for the blocks it serves (``eth_getLogs`` by block hash
  answers geth's "unknown block" error): a load-balanced backend behind the one that answered
  the head.
- ``inconsistent``: logs answer for another block hash than the one asked for, and headers name a
  parent hash that is no block of the chain: a node on a fork, or a cache mixing two answers.
- ``no_receipts``: the node has not indexed receipts yet (``eth_getTransactionReceipt``
  answers null), as a backend that lags behind the one that served the block.
- ``no_method``: ``eth_getLogs`` is a method the node does not serve (-32601).
- ``pruned``: blocks more than ``keep`` below the head are not served (``eth_getBlockByNumber``
  answers null), as a node that prunes its history.
- ``no_blocks``: the node announces its head but has no block at any number
  (``eth_getBlockByNumber`` answers null, ``eth_getLogs`` "unknown block"): a backend that lost
  its chain behind a balancer that answers ``eth_blockNumber`` from elsewhere.
- ``no_balances``: the node no longer has the state of the blocks a token balance is asked at
  (``eth_call`` of ``balanceOf`` at a block number answers geth's "missing trie node"), as a
  node that prunes state past its last blocks.
- ``down``: the port is closed: connections are refused (``stop_listening`` / ``listen``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

from aiohttp import web
from chaos.proxy import LoopbackProxy

JSON = {"Content-Type": "application/json"}
UNKNOWN_BLOCK = {"code": -32000, "message": "unknown block"}
MISSING_STATE = {"code": -32000, "message": "missing trie node"}
BALANCE_OF = "0x70a08231"


class FaultyNode(LoopbackProxy):
    """An HTTP JSON-RPC proxy to ``upstream`` whose faults are switched by ``mode``."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.keep = 8  # pruned mode: blocks served below the head
        self._head = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "down":  # a connection kept alive from before: cut it
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        doc = json.loads(await request.read())
        answer = await self._forward(doc)
        mode = self.mode
        if mode != "ok":
            if isinstance(doc, list):
                answer = [
                    self._alter(mode, q, a) for q, a in zip(doc, _by_id(doc, answer), strict=True)
                ]
            else:
                answer = self._alter(mode, doc, answer)
        return web.json_response(answer)

    async def _forward(self, doc: Any) -> Any:
        assert self._session is not None
        async with self._session.post(self.upstream, json=doc, headers=JSON) as upstream:
            return json.loads(await upstream.read())

    def _alter(self, mode: str, request: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        method, result = request.get("method"), reply.get("result")
        if mode == "pruned":
            if method == "eth_blockNumber" and isinstance(result, str):
                self._head = max(self._head, int(result, 16))
            number = (request.get("params") or [None])[0]
            old = isinstance(number, str) and number[:2] == "0x"
            if (
                method == "eth_getBlockByNumber"
                and old
                and int(number, 16) < self._head - self.keep
            ):
                self.faults += 1
                return {**reply, "result": None}
        if mode == "no_balances" and method == "eth_call":
            call, block = (request.get("params") or [{}, None])[:2]
            data = (
                str(call.get("data") or call.get("input") or "") if isinstance(call, dict) else ""
            )
            if data.startswith(BALANCE_OF) and isinstance(block, str) and block[:2] == "0x":
                self.faults += 1
                return {"jsonrpc": "2.0", "id": reply.get("id"), "error": MISSING_STATE}
        if mode == "ahead" and method == "eth_blockNumber" and isinstance(result, str):
            self.faults += 1
            return {**reply, "result": hex(int(result, 16) + 2)}
        if mode == "no_receipts" and method == "eth_getTransactionReceipt":
            self.faults += 1
            return {**reply, "result": None}
        if mode == "no_method" and method == "eth_getLogs":
            self.faults += 1
            error = {"code": -32601, "message": "the method eth_getLogs does not exist"}
            return {"jsonrpc": "2.0", "id": reply["id"], "error": error}
        if mode == "no_blocks" and method == "eth_getBlockByNumber":
            self.faults += 1
            return {**reply, "result": None}
        if mode in ("no_logs", "no_blocks") and method == "eth_getLogs":
            self.faults += 1
            return {"jsonrpc": "2.0", "id": reply["id"], "error": UNKNOWN_BLOCK}
        if mode == "inconsistent":
            if method == "eth_getLogs" and isinstance(result, list):
                self.faults += 1
                other = "0x" + secrets.token_hex(32)
                forged = [{**item, "blockHash": other} for item in result]
                if not forged:  # no logs in this block: answer one of another block
                    forged = [_foreign_log(request, other)]
                return {**reply, "result": forged}
            if method == "eth_getBlockByNumber" and isinstance(result, dict):
                self.faults += 1
                return {**reply, "result": {**result, "parentHash": "0x" + secrets.token_hex(32)}}
        return reply


def _by_id(requests: list[dict[str, Any]], replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batch replies in request order."""
    index = {reply["id"]: reply for reply in replies}
    return [index[request["id"]] for request in requests]


def _foreign_log(request: dict[str, Any], block_hash: str) -> dict[str, Any]:
    """A Sync log of a pool-shaped address in another block."""
    topic = request["params"][0]["topics"][0][0]
    return {
        "address": "0x" + "11" * 20,
        "topics": [topic],
        "data": "0x" + "00" * 64,
        "blockNumber": "0x1",
        "blockHash": block_hash,
        "transactionHash": "0x" + "22" * 32,
        "transactionIndex": "0x0",
        "logIndex": "0x0",
        "removed": False,
    }


async def wait_for(condition: Any, timeout: float = 120.0) -> None:
    """Poll ``condition()`` until it is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)
