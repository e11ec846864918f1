"""Hostile answers from nodes (HTTP and WebSocket) and builders, served by a real server on
loopback: each is refused as one counted failure of that endpoint, and the client goes on with the
next one. A sound endpoint on the same server answers ``eth_blockNumber``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from aiohttp import web
from eth_account import Account

from arbx.chain.rpc import Endpoint, RpcClient, to_data
from arbx.chain.transport import AiohttpTransport
from arbx.execution.flashbots import BuilderSpec, FlashbotsSigner
from arbx.execution.rawtx import tx_hash
from arbx.execution.relay import RelayClient, SubmitStatus

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

MB = 1024 * 1024
HEAD = 0x1234
BIG_WEI = 2**64 + 7
SENDER = Account.from_key("0x" + "45" * 32)
RAW = bytes(
    SENDER.sign_transaction(
        {
            "chainId": 1,
            "nonce": 0,
            "to": "0x000000000000000000000000000000000000dEaD",
            "value": 1,
            "gas": 21_000,
            "gasPrice": 10**9,
        }
    ).raw_transaction
)


def reply(request_id: int, result: str) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"result":%s}' % (request_id, result.encode())


# What a hostile peer sends for request ``id``: the families every entry point is tried with.
HOSTILE: dict[str, Callable[[int], bytes]] = {
    "deep_nesting": lambda i: b'{"jsonrpc":"2.0","id":%d,"result":' % i + b"[" * 200_000,
    "deep_but_closed": lambda i: reply(i, "[" * 2000 + "]" * 2000),
    "quadratic_bait": lambda i: b"[" * 600 + b'"' + b'\\"' * (MB // 2),
    "not_utf8": lambda i: reply(i, '"0x1"').replace(b"0x1", b"\xff\xfe"),
    "lone_surrogate": lambda i: reply(i, '"\\ud800"'),
    "nan": lambda i: reply(i, "NaN"),
    "infinity": lambda i: reply(i, "-Infinity"),
    "huge_integer": lambda i: reply(i, "9" * 5000),
    "big_json_integer": lambda i: reply(i, str(2**70)),  # a quantity must be a hex string
    "float_quantity": lambda i: reply(i, "1e3"),
    "superscript": lambda i: reply(i, '"0x\u00b2"'),
    "wrong_type": lambda i: reply(i, '{"number": "0x1"}'),
    "empty": lambda i: b"",
}


class Peer:
    """A node and a builder on loopback: ``/good`` answers, ``/<family>`` answers with that."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}

    async def post(self, request: web.Request) -> web.Response:
        family = request.match_info["family"]
        self.hits[family] = self.hits.get(family, 0) + 1
        doc = json.loads(await request.read())
        if family == "good":
            body = reply(doc["id"], f'"{hex(HEAD)}"')
        elif family == "simulation":  # amounts past 2^64 as JSON numbers: they must stay exact
            item = {"txHash": to_data(tx_hash(RAW)), "gasUsed": 21000, "coinbaseDiff": BIG_WEI}
            result = {"results": [item], "totalGasUsed": 21000, "coinbaseDiff": BIG_WEI}
            body = reply(doc["id"], json.dumps(result))
        else:
            body = HOSTILE[family](doc["id"])
        return web.Response(body=body, content_type="application/json")

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        family = request.match_info["family"]
        sock = web.WebSocketResponse(max_msg_size=0)
        await sock.prepare(request)
        async for message in sock:
            doc = json.loads(message.data)
            await sock.send_bytes(HOSTILE[family](doc["id"]))
        return sock


@pytest_asyncio.fixture
async def peer() -> AsyncIterator[tuple[Peer, str]]:
    server = Peer()
    app = web.Application(client_max_size=4 * MB)
    app.router.add_post("/{family}", server.post)
    app.router.add_get("/ws/{family}", server.ws)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield server, f"127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize("family", list(HOSTILE))
async def test_node_answers_over_http(peer: tuple[Peer, str], family: str) -> None:
    server, host = peer
    transport = AiohttpTransport(max_response_bytes=2 * MB)
    urls = [f"http://{host}/{family}", f"http://{host}/good"]
    async with RpcClient(urls, timeout=5, transport=transport, probe_interval=60) as client:
        assert await client.block_number() == HEAD
        assert await client.block_number() == HEAD
    assert client.stats.malformed == 1
    assert not client.health[0].healthy
    assert client.health[1].answered == 2
    assert server.hits == {family: 1, "good": 2}


@pytest.mark.parametrize("family", ["deep_nesting", "quadratic_bait", "not_utf8", "nan"])
async def test_node_answers_over_websocket(peer: tuple[Peer, str], family: str) -> None:
    _, host = peer
    hostile = Endpoint(f"http://{host}/dead", ws_url=f"ws://{host}/ws/{family}")
    transport = AiohttpTransport(max_response_bytes=2 * MB)
    async with RpcClient(
        [hostile, f"http://{host}/good"],
        ws_calls=True,
        timeout=5,
        transport=transport,
        probe_interval=60,
    ) as client:
        assert await client.block_number() == HEAD
    assert client.stats.malformed == 1
    assert client.health[0].errors["malformed"] == 1


@pytest.mark.parametrize("family", list(HOSTILE))
async def test_builder_answers(peer: tuple[Peer, str], family: str) -> None:
    _, host = peer
    simulator = BuilderSpec("sim", f"http://{host}/simulation", supports_call_bundle=True)
    async with RelayClient(FlashbotsSigner("0x" + "46" * 32), timeout=5) as relay:
        hostile = await relay.send_bundle(BuilderSpec(family, f"http://{host}/{family}"), [RAW], 7)
        simulation = await relay.call_bundle(simulator, [RAW], 7)
    assert hostile.status is SubmitStatus.MALFORMED
    assert hostile.error
    assert simulation.coinbase_diff == BIG_WEI  # not rounded through a float
    assert simulation.results[0].coinbase_diff == BIG_WEI
    assert relay.stats.by_builder[family] == {"malformed": 1}
