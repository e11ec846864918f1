"""The RPC client and the head stream against real anvil nodes and hostile servers on loopback.

Every test starts what it needs (anvil processes, an aiohttp server that corrupts answers, a fake
WebSocket node) and makes no timing assertions: waits are bounded loops on observable state.
"""

import asyncio
import itertools
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from arbx.chain import (
    AiohttpTransport,
    Endpoint,
    ExecutionRevertedError,
    Head,
    RpcClient,
    RpcError,
    eth_call,
    get_logs,
    heads,
)
from arbx.chain.resync import settled_block
from arbx.devnet.anvil import Anvil, AnvilOptions, find_anvil, free_port, rpc_chain_id, start_anvil
from arbx.errors import SimulationRevertedError, TransientError

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TOPIC = "0x" + "11" * 32
# Runtime: LOG1(memory[0:32], TOPIC); STOP. Init code copies it out and returns it.
LOGGER_RUNTIME = "7f" + TOPIC[2:] + "6020" + "6000" + "a1" + "00"
LOGGER_INIT = "0x6027600c60003960276000f3" + LOGGER_RUNTIME
REVERTER_INIT = "0x6001600052600160206000fd"  # revert(0, 32) with memory[31] = 1


def launch_anvil(port: int) -> Anvil:
    """Anvil on a given port (to restart a killed node where its clients expect it)."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 (owned by the Anvil object)
    options = AnvilOptions()
    process = subprocess.Popen(
        [str(find_anvil()), *options.arguments(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    node = Anvil(process, port, options.chain_id, log)
    deadline = time.monotonic() + 30
    while rpc_chain_id(node.url, timeout=0.5) is None:
        if not node.is_running() or time.monotonic() > deadline:
            node.stop()
            raise RuntimeError(f"anvil did not start on port {port}: {node.output()}")
        time.sleep(0.02)
    return node


def ws_url(node: Anvil) -> str:
    return node.url.replace("http://", "ws://")


@pytest.fixture(scope="module")
def node() -> Iterator[Anvil]:
    """This module's own anvil: its tests mine, snapshot and revert freely."""
    with start_anvil() as anvil:
        yield anvil


async def rpc(url: str, method: str, *params: Any) -> Any:
    """A raw JSON-RPC call, independent of the client under test."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        answer = await response.json()
    assert "error" not in answer, answer
    return answer["result"]


async def eventually(
    condition: Callable[[], Awaitable[bool]], what: str, limit: float = 15
) -> None:
    """Wait until ``condition`` holds (bounded, so a broken client fails instead of hanging)."""
    deadline = time.monotonic() + limit
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def receipt(client: RpcClient, tx: str) -> dict[str, Any]:
    """The receipt of ``tx`` once anvil has mined it."""
    found: dict[str, Any] | None = None

    async def mined() -> bool:
        nonlocal found
        found = await client.call("eth_getTransactionReceipt", [tx])
        return found is not None

    await eventually(mined, f"a receipt for {tx}")
    assert found is not None
    return found


# -- calls and batches --------------------------------------------------------------------------


@pytest.mark.parametrize("ws_calls", [False, True], ids=["http", "ws"])
async def test_calls_batches_errors_and_logs(node: Anvil, ws_calls: bool) -> None:
    endpoint = Endpoint(node.url, ws_url=ws_url(node))
    async with RpcClient([endpoint], ws_calls=ws_calls) as client:
        assert await client.chain_id() == 31337
        assert await client.chain_id() == 31337
        assert client.stats.requests == 1  # the chain id is cached
        number = await client.block_number()
        assert number == int(await rpc(node.url, "eth_blockNumber"), 16)

        many = [("eth_getBlockByNumber", [hex(n), False]) for n in range(number + 1)]
        blocks = await client.batch([("eth_chainId", []), *many, ("eth_blockNumber", [])])
        assert blocks[0] == "0x7a69"
        assert [int(block["number"], 16) for block in blocks[1:-1]] == list(range(number + 1))

        with pytest.raises(RpcError) as unknown:
            await client.call("eth_noSuchMethod")
        assert unknown.value.code in (-32601, -32602)  # anvil: HTTP -32601, WebSocket -32602
        mixed = await client.batch(
            [("eth_blockNumber", []), ("eth_noSuchMethod", [])], return_errors=True
        )
        assert isinstance(mixed[1], RpcError)
        with pytest.raises(RpcError):
            await client.batch([("eth_blockNumber", []), ("eth_noSuchMethod", [])])
        assert client.stats.retries == 0  # a node's error object is an answer, not a failure
        assert client.health[0].healthy

        with pytest.raises(ExecutionRevertedError) as reverted:
            await client.call("eth_call", [{"data": REVERTER_INIT}, "latest"])
        assert isinstance(reverted.value, SimulationRevertedError)
        assert reverted.value.data == "0x" + "00" * 31 + "01"

        sender = (await client.call("eth_accounts"))[0]
        deploy = await client.call("eth_sendTransaction", [{"from": sender, "data": LOGGER_INIT}])
        logger = (await receipt(client, deploy))["contractAddress"]
        assert await eth_call(client, logger, b"") == b""
        tx = await client.call("eth_sendTransaction", [{"from": sender, "to": logger}])
        mined = int((await receipt(client, tx))["blockNumber"], 16)
        logs = await get_logs(client, mined, mined, addresses=[logger], topics=[TOPIC])
        assert len(logs) == 1
        assert logs[0].address == logger.lower()
        assert logs[0].topics == (bytes.fromhex(TOPIC[2:]),)
        assert logs[0].data == bytes(32)
        assert logs[0].block_number == mined
        assert logs[0].transaction_hash == bytes.fromhex(tx[2:])
        assert await get_logs(client, mined, mined, topics=["0x" + "22" * 32]) == []


async def test_per_call_overhead_against_a_raw_request(
    node: Anvil, record_property: Callable[[str, object], None]
) -> None:
    """Measures (does not assert) our eth_blockNumber against a bare aiohttp request."""
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
    headers = {"Content-Type": "application/json"}
    endpoint = Endpoint(node.url, ws_url=ws_url(node))
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(node)) as ws,
        RpcClient([node.url]) as client,
        RpcClient([endpoint], ws_calls=True) as ws_client,
    ):

        async def raw() -> int:
            async with session.post(node.url, data=body, headers=headers) as response:
                return int(json.loads(await response.read())["result"], 16)

        async def raw_ws() -> int:
            await ws.send_str(body.decode())
            return int(json.loads((await ws.receive()).data)["result"], 16)

        calls: dict[str, Callable[[], Awaitable[int]]] = {
            "raw_http": raw,
            "client_http": client.block_number,
            "raw_ws": raw_ws,
            "client_ws": ws_client.block_number,
        }
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(100):
            assert len({await call() for call in calls.values()}) == 1
        for _ in range(1000):  # interleaved, so drift on a busy machine hits all alike
            for name, call in calls.items():
                started = time.perf_counter()
                await call()
                samples[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(times) * 1e6 for name, times in samples.items()}
    for name, value in medians.items():
        record_property(f"{name}_us", round(value, 1))
    print("\neth_blockNumber median µs: " + ", ".join(f"{k} {v:.1f}" for k, v in medians.items()))
    assert client.stats.requests == client.stats.calls  # one request per call, nothing more
    assert ws_client.stats.requests == ws_client.stats.calls


# -- failover -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ws_calls", [False, True], ids=["http", "ws"])
async def test_primary_dies_mid_run_and_comes_back(ws_calls: bool) -> None:
    port = free_port()
    primary = launch_anvil(port)
    with start_anvil() as secondary:
        try:
            await rpc(secondary.url, "anvil_mine", "0x5")  # numbers tell who answered: 0 or 5
            answers: list[int] = []
            stop = asyncio.Event()
            endpoints = [Endpoint(n.url, ws_url=ws_url(n)) for n in (primary, secondary)]
            client = RpcClient(endpoints, timeout=1.0, probe_interval=0.05, ws_calls=ws_calls)

            async def run() -> None:
                while not stop.is_set():
                    answers.append(await client.block_number())
                    await asyncio.sleep(0)

            async with client:
                worker = asyncio.create_task(run())

                async def answered(count: int, value: int) -> bool:
                    return answers[-count:] == [value] * count

                await eventually(lambda: answered(20, 0), "answers from the primary")
                primary.process.kill()  # mid-run: calls are in flight
                await eventually(lambda: answered(20, 5), "answers from the secondary")
                assert not client.health[0].healthy
                primary.stop()
                primary = launch_anvil(port)  # same URL: the client's probe finds it again
                await eventually(lambda: answered(20, 0), "answers from the revived primary")
                stop.set()
                await worker  # raises if any call failed: none may
            assert client.health[0].healthy
            assert client.stats.failovers >= 1
            assert client.stats.recoveries >= 1
            assert client.stats.exhausted == 0
            assert client.health[0].errors["connection"] + client.health[0].errors["timeout"] >= 1
            first_five = answers.index(5)
            assert set(answers[:first_five]) == {0}
        finally:
            primary.stop()


async def test_every_endpoint_down_raises_a_transient_error() -> None:
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    async with RpcClient(dead, retries=2, backoff_base=0.001, backoff_max=0.01) as client:
        with pytest.raises(TransientError, match="every RPC endpoint failed"):
            await client.block_number()
    assert client.stats.requests == 6  # 2 endpoints x (1 + 2 retry rounds)
    assert client.stats.exhausted == 1


async def test_an_endpoint_that_answers_probes_but_hangs_on_calls_is_probed_less_and_less(
    node: Anvil,
) -> None:
    """A node that answers ``eth_blockNumber`` (the probe) at once but never the calls the engine
    makes comes back at each probe and costs the next call a timeout. Each relapse doubles its
    probe interval (up to ``probe_max``): the calls meet its timeout less and less often, and
    every one of them is answered by the other endpoint."""
    server = Hostile(node.url)
    url = await server.start()
    server.mode = "half_hung"
    timeout, interval, cap = 0.2, 0.05, 0.8
    answered = 0
    try:
        async with RpcClient(
            [url, node.url], timeout=timeout, probe_interval=interval, probe_max=cap
        ) as client:
            deadline = time.monotonic() + 30
            while len(server.block_numbers) < 7:  # the first probe, then six after relapses
                assert time.monotonic() < deadline, server.block_numbers
                block = await client.call("eth_getBlockByNumber", ["latest", False])
                assert block is not None
                answered += 1
                await asyncio.sleep(0.005)
    finally:
        await server.stop()
    probes = server.block_numbers
    # after probe k (from 1), a call waits out the timeout (relapse k), and the next probe waits
    # the interval doubled k times: the gaps only grow (a loaded machine makes them longer)
    for k, (before, after) in enumerate(itertools.pairwise(probes), start=1):
        least = timeout + min(cap, interval * 2**k)
        gaps = [round(b - a, 3) for a, b in itertools.pairwise(probes)]
        assert after - before >= least * 0.95, (k, gaps)
    assert client.health[0].relapses >= 6
    assert client.health[0].errors["timeout"] == len(probes)  # one call's timeout per comeback
    assert client.stats.exhausted == 0
    assert answered > 20


async def test_a_read_the_first_endpoint_leaves_unanswered_is_hedged_to_the_next(
    node: Anvil,
) -> None:
    """With ``hedge_after``, a read the first endpoint holds is sent to the second as well, and
    its answer returns while the first request still hangs (not after the ``timeout``). Until
    the hung request ends, its endpoint is lagging and the next reads go to the other one first;
    it is left to time out, which marks its endpoint down until a probe brings it back."""
    server = Hostile(node.url)
    url = await server.start()
    server.mode = "half_hung"
    try:
        async with RpcClient(
            [url, node.url], timeout=1.0, hedge_after=0.05, probe_interval=60.0
        ) as client:
            block = await client.call("eth_getBlockByNumber", ["latest", False])
            assert block is not None
            assert server.hanging == 1  # answered by the other endpoint while this one hangs
            assert (client.stats.hedges, client.stats.hedges_won) == (1, 1)
            assert client.health[0].healthy  # not yet known to be down, but lagging:
            assert client.health[0].lagging
            hits = server.hits
            assert await client.call("eth_getBlockByNumber", ["latest", False]) is not None
            assert server.hits == hits  # the next read went to the other endpoint first
            assert client.stats.hedges == 1

            async def hung_request_ended() -> bool:
                return server.hanging == 0 and not client.health[0].healthy

            await eventually(hung_request_ended, "the hung request to time out")
            assert client.health[0].errors["timeout"] == 1
            hits = server.hits
            for _ in range(5):
                assert await client.call("eth_blockNumber") is not None
            assert server.hits == hits  # the down endpoint is skipped, nothing is hedged to it
            assert client.stats.hedges == 1
            assert client.stats.exhausted == 0
    finally:
        await server.stop()


async def test_a_write_is_never_sent_to_two_endpoints(node: Anvil) -> None:
    """A call that changes the node (here ``evm_mine``) waits for the first endpoint's answer
    or failure before it goes to the next one, however long ``hedge_after`` is passed: mined
    once, not once per endpoint."""
    server = Hostile(node.url)
    url = await server.start()
    server.mode = "half_hung"
    try:
        async with RpcClient([url, node.url], timeout=0.5, hedge_after=0.01) as client:
            before = await client.block_number()  # answered by the probe's method, not hung
            await client.call("evm_mine")
            assert await client.block_number() == before + 1
            assert client.stats.hedges == 0
            assert client.stats.failovers == 1  # after the first endpoint's timeout
    finally:
        await server.stop()


async def test_a_node_that_answers_no_latest_block_is_failed_over_for_the_settled_block(
    node: Anvil,
) -> None:
    """The re-bootstrap (and the first load) start from the chain's latest block, which a chain
    always has: a node that answers none (a node that answers no block at any number, which the
    supervisor stops dropping heads for) has failed, and the other endpoint is asked."""
    server = Hostile(node.url)
    url = await server.start()
    server.mode = "null_blocks"
    try:
        await mine(node.url, 2)
        latest = await rpc(node.url, "eth_getBlockByNumber", "latest", False)
        async with RpcClient([url, node.url]) as client:
            number, block_hash = await settled_block(client)
        async with RpcClient([url], retries=1, backoff_base=0.001) as alone:
            with pytest.raises(TransientError, match="a header is an object, not NoneType"):
                await settled_block(alone)
    finally:
        await server.stop()
    assert (number, block_hash) == (int(latest["number"], 16) - 1, latest["parentHash"])
    assert client.stats.malformed == 1
    assert client.health[0].errors["malformed"] == 1
    assert client.health[1].answered == 1
    assert alone.stats.exhausted == 1


# -- hostile servers ----------------------------------------------------------------------------


class Hostile:
    """A JSON-RPC proxy in front of anvil that corrupts its answers the way ``mode`` says."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "ok"
        self.hits = 0
        self.hanging = 0  # requests held unanswered right now
        self.release = asyncio.Event()
        self.session = aiohttp.ClientSession()
        self.block_numbers: list[float] = []  # when eth_blockNumber was asked (monotonic)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        body = await request.read()
        mode = self.mode
        if mode == "slow":
            await asyncio.wait_for(self.release.wait(), 10)
        if mode == "null_blocks":  # no block at any number; every other answer as it is
            if json.loads(body).get("method") == "eth_getBlockByNumber":
                reply = {"jsonrpc": "2.0", "id": json.loads(body)["id"], "result": None}
                return web.json_response(reply)
            mode = "ok"
        if mode == "half_hung":  # answers eth_blockNumber (the probe), hangs on the rest
            if json.loads(body).get("method") != "eth_blockNumber":
                self.hanging += 1
                try:
                    await asyncio.wait_for(self.release.wait(), 10)
                finally:
                    self.hanging -= 1
                return web.Response(status=504)
            self.block_numbers.append(time.monotonic())
            mode = "ok"
        if mode == "hang_up":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if mode == "oversize_chunked":
            response = web.StreamResponse()
            await response.prepare(request)
            for _ in range(64):
                await response.write(b"[" + b" " * 65_536)
            return response
        fixed = {
            "garbage": (200, b"<html>502 Bad Gateway</html>"),
            "truncated": (200, b'{"jsonrpc":"2.0","id":1,"res'),
            "not_utf8": (200, b"\xff\xfe\xfa\x00"),
            "deep_nesting": (200, b"[" * 200_000),
            "empty": (200, b""),
            "status_500": (500, b"internal error"),
            "status_502_json": (502, b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'),
            "status_429": (429, b"slow down"),
            "oversize_declared": (200, b" " * (1 << 20)),
        }
        if mode in fixed:
            status, text = fixed[mode]
            return web.Response(status=status, body=text, content_type="application/json")
        async with self.session.post(self.upstream, data=body, headers=JSON) as upstream:
            answer = json.loads(await upstream.read())
        return web.json_response(corrupt(mode, answer))

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.release.set()
        await self.session.close()
        await self.runner.cleanup()


JSON = {"Content-Type": "application/json"}


def corrupt(mode: str, answer: Any) -> Any:
    """``answer`` (a reply or a batch reply from anvil) broken the way ``mode`` says."""
    one = answer if isinstance(answer, dict) else None
    if mode == "ok":
        return answer
    if mode == "batch_shuffled":  # legal: replies may come in any order
        return list(reversed(answer))
    if mode == "batch_short":
        return answer[:-1]
    if mode == "batch_repeated_id":
        return [answer[0], *answer[:-1]]
    if mode == "batch_as_object":
        return answer[0]
    assert one is not None, mode
    broken = {
        "wrong_id": {**one, "id": one["id"] + 1000},
        "string_id": {**one, "id": str(one["id"])},
        "no_result": {"jsonrpc": "2.0", "id": one["id"]},
        "result_and_error": {**one, "error": {"code": 1, "message": "both"}},
        "error_not_object": {"jsonrpc": "2.0", "id": one["id"], "error": "boom"},
        "wrong_type": {**one, "result": 12345},
        "huge_number": {**one, "result": "0x" + "f" * 100},
        "not_hex": {**one, "result": "0x1_000"},
        "array": [one],
        "no_jsonrpc": {"id": one["id"], "result": one.get("result")},
        "rpc_rate_limit": {
            "jsonrpc": "2.0",
            "id": one["id"],
            "error": {"code": -32005, "message": "limit exceeded"},
        },
    }
    return broken[mode]


@pytest_asyncio.fixture
async def hostile(node: Anvil) -> AsyncIterator[tuple[Hostile, str]]:
    server = Hostile(node.url)
    url = await server.start()
    yield server, url
    await server.stop()


MALFORMED = [
    "garbage", "truncated", "not_utf8", "deep_nesting", "empty", "wrong_id", "string_id",
    "no_result", "result_and_error", "error_not_object", "wrong_type", "huge_number", "not_hex",
    "array", "no_jsonrpc", "oversize_declared", "oversize_chunked",
]  # fmt: skip
COUNTED: dict[str, tuple[str, str]] = {  # mode -> (stats counter, per-endpoint error kind)
    **dict.fromkeys(MALFORMED, ("malformed", "malformed")),
    "oversize_declared": ("malformed", "oversize"),
    "oversize_chunked": ("malformed", "oversize"),
    "status_500": ("", "http_status"),
    "status_502_json": ("", "http_status"),
    "status_429": ("rate_limited", "rate_limited"),
    "rpc_rate_limit": ("rate_limited", "rate_limited"),
    "slow": ("timeouts", "timeout"),
    "hang_up": ("", "connection"),
}


@pytest.mark.parametrize("mode", list(COUNTED))
async def test_hostile_answers_are_counted_and_survived(
    node: Anvil, hostile: tuple[Hostile, str], mode: str
) -> None:
    server, url = hostile
    server.mode = mode
    transport = AiohttpTransport(max_response_bytes=256 * 1024)
    expected = int(await rpc(node.url, "eth_blockNumber"), 16)
    async with RpcClient([url, node.url], timeout=0.5, transport=transport) as client:
        assert await client.block_number() == expected
        assert await client.block_number() == expected  # straight to the good endpoint now
    counter, kind = COUNTED[mode]
    if counter:
        assert getattr(client.stats, counter) == 1
    assert client.health[0].errors[kind] == 1
    assert not client.health[0].healthy
    assert client.health[1].answered == 2
    assert client.stats.failovers == 1
    assert server.hits == 1


@pytest.mark.parametrize("mode", ["batch_short", "batch_repeated_id", "batch_as_object"])
async def test_hostile_batch_replies_are_counted_and_survived(
    node: Anvil, hostile: tuple[Hostile, str], mode: str
) -> None:
    server, url = hostile
    server.mode = mode
    requests = [
        ("eth_chainId", []),
        ("eth_blockNumber", []),
        ("eth_getBlockByNumber", ["0x0", False]),
    ]
    async with RpcClient([url, node.url]) as client:
        chain_id, _, genesis = await client.batch(requests)
    assert chain_id == "0x7a69"
    assert genesis["number"] == "0x0"
    assert client.stats.malformed == 1
    assert client.health[1].answered == 1


async def test_shuffled_batch_replies_are_matched_by_id(
    node: Anvil, hostile: tuple[Hostile, str]
) -> None:
    server, url = hostile
    server.mode = "batch_shuffled"
    requests = [("eth_chainId", []), ("eth_getBlockByNumber", ["0x0", False])]
    async with RpcClient([url, node.url]) as client:
        chain_id, genesis = await client.batch(requests)
    assert (chain_id, genesis["number"]) == ("0x7a69", "0x0")
    assert client.stats.malformed == 0
    assert client.health[0].answered == 1  # the proxy itself answered, correctly


async def test_only_hostile_endpoints_end_in_a_transient_error(
    hostile: tuple[Hostile, str],
) -> None:
    server, url = hostile
    server.mode = "garbage"
    async with RpcClient([url], retries=1, backoff_base=0.001) as client:
        with pytest.raises(TransientError):
            await client.block_number()
    assert client.stats.malformed == 2


# -- new heads ----------------------------------------------------------------------------------


async def mine(url: str, blocks: int = 1) -> None:
    await rpc(url, "anvil_mine", hex(blocks))


async def block(url: str, number: int) -> dict[str, Any]:
    found: dict[str, Any] = await rpc(url, "eth_getBlockByNumber", hex(number), False)
    return found


def assert_chained(seen: list[Head]) -> None:
    """Consecutive numbers, each block the child of the one before."""
    for parent, child in itertools.pairwise(seen):
        assert child.number == parent.number + 1
        assert child.parent_hash == parent.hash


async def test_heads_by_websocket_subscription(node: Anvil) -> None:
    endpoint = Endpoint(node.url, ws_url=ws_url(node))
    async with RpcClient([endpoint]) as client, heads(client, poll_interval=60) as stream:
        first = await anext(stream)
        assert first.number == int(await rpc(node.url, "eth_blockNumber"), 16)
        for _ in range(3):
            await rpc(node.url, "evm_mine")
        await mine(node.url, 4)
        seen = [first] + [await anext(stream) for _ in range(7)]
    assert_chained(seen)
    assert seen[-1].hash.hex() == (await block(node.url, seen[-1].number))["hash"][2:]
    assert stream.stats.source == "ws"
    assert stream.stats.polled == 0
    assert stream.stats.ws_heads == 7


async def test_heads_by_polling_fill_gaps_and_follow_reorgs(node: Anvil) -> None:
    async with RpcClient([node.url]) as client, heads(client, poll_interval=0.01) as stream:
        first = await anext(stream)
        await mine(node.url, 10)  # while the stream is suspended: it sees a jump of 10
        seen = [first] + [await anext(stream) for _ in range(10)]
        assert_chained(seen)
        assert stream.stats.filled == 9
        assert stream.stats.source == "poll"

        tip = seen[-1]
        snapshot = await rpc(node.url, "evm_snapshot")
        await mine(node.url, 3)
        old = [await anext(stream) for _ in range(3)]
        assert_chained([tip, *old])
        assert await rpc(node.url, "evm_revert", snapshot)
        await rpc(node.url, "evm_mine", old[0].timestamp + 100)  # another block at tip + 1
        reorged = await anext(stream)
        assert reorged.number == tip.number + 1
        assert reorged.parent_hash == tip.hash
        assert reorged.hash != old[0].hash
        assert stream.stats.reorgs == 1
        await rpc(node.url, "evm_mine", old[0].timestamp + 200)
        assert_chained([reorged, await anext(stream)])


class FakeWsNode:
    """A WebSocket that accepts ``eth_subscribe`` and sends whatever the test pushes."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.subscription = "0xabc"
        self.connections = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        self.connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        subscribe = json.loads((await ws.receive()).data)
        assert subscribe["method"] == "eth_subscribe"
        await ws.send_json({"jsonrpc": "2.0", "id": subscribe["id"], "result": self.subscription})

        async def forward() -> None:
            while True:
                await ws.send_str(await self.outbox.get())

        forwarding = asyncio.create_task(forward())
        async for _ in ws:  # until the client closes
            pass
        forwarding.cancel()
        return ws

    def push_header(self, header: dict[str, Any], subscription: str | None = None) -> None:
        params = {"subscription": subscription or self.subscription, "result": header}
        self.outbox.put_nowait(
            json.dumps({"jsonrpc": "2.0", "method": "eth_subscription", "params": params})
        )

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        return f"ws://127.0.0.1:{port}"


@pytest_asyncio.fixture
async def fake_ws() -> AsyncIterator[tuple[FakeWsNode, str]]:
    fake = FakeWsNode()
    url = await fake.start()
    yield fake, url
    await fake.runner.cleanup()


async def test_websocket_gaps_duplicates_garbage_and_silence(
    node: Anvil, fake_ws: tuple[FakeWsNode, str]
) -> None:
    fake, url = fake_ws
    endpoint = Endpoint(node.url, ws_url=url)
    async with (
        RpcClient([endpoint]) as client,
        heads(client, poll_interval=0.01, silence_timeout=0.3, ws_retry_interval=60) as stream,
    ):
        first = await anext(stream)  # the latest block, asked over HTTP
        await mine(node.url, 10)
        base = first.number
        fake.push_header(await block(node.url, base + 3))
        seen = [first] + [await anext(stream) for _ in range(3)]  # 1 and 2 filled, then 3
        fake.push_header(await block(node.url, base + 3))  # a duplicate: skipped
        fake.push_header(await block(node.url, base + 1), subscription="0xother")  # not ours
        fake.push_header(await block(node.url, base + 10))
        seen += [await anext(stream) for _ in range(7)]
        assert_chained(seen)
        assert [head.number for head in seen] == list(range(base, base + 11))
        assert stream.stats.duplicates == 1
        assert stream.stats.filled == 8
        assert stream.stats.ws_heads == 3  # the duplicate included

        fake.outbox.put_nowait('{"jsonrpc":"2.0","method":"eth_subscription","params":7}')
        await mine(node.url, 2)  # found by polling, after the garbage ends the subscription
        seen += [await anext(stream) for _ in range(2)]
        assert_chained(seen)
        assert stream.stats.malformed == 1
        assert stream.stats.fallbacks == 1
        assert stream.stats.source == "poll"

    async with (
        RpcClient([endpoint]) as client,
        heads(client, poll_interval=0.01, silence_timeout=0.2, ws_retry_interval=60) as stream,
    ):
        first = await anext(stream)
        await mine(node.url, 1)  # the fake node never tells: silence, then polling finds it
        second = await anext(stream)
        assert_chained([first, second])
        assert stream.stats.fallbacks == 1
        assert "silent" in stream.stats.last_ws_error


async def test_heads_poll_when_the_websocket_is_unreachable(node: Anvil) -> None:
    endpoint = Endpoint(node.url, ws_url=f"ws://127.0.0.1:{free_port()}")
    async with RpcClient([endpoint]) as client, heads(client, poll_interval=0.01) as stream:
        first = await anext(stream)
        await mine(node.url, 2)
        seen = [first, await anext(stream), await anext(stream)]
    assert_chained(seen)
    assert stream.stats.source == "poll"
    assert stream.stats.fallbacks == 1
    assert stream.stats.last_ws_error


async def test_heads_go_on_through_the_other_endpoint(node: Anvil) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with (
        RpcClient([dead, node.url], probe_interval=60) as client,
        heads(client, poll_interval=0.01) as stream,
    ):
        first = await anext(stream)
        await mine(node.url, 3)
        seen = [first] + [await anext(stream) for _ in range(3)]
    assert_chained(seen)
    assert client.stats.failovers == 1


async def test_heads_go_on_through_the_other_endpoint_when_one_serves_no_block(
    node: Anvil,
) -> None:
    """A node that announces its head (``eth_blockNumber``) but answers no block at any number
    (null) is no failure to the client: polled heads starved behind it for ever. After a few
    polls of an announced head it does not serve, the head is asked strictly, and the client
    fails over to the endpoint that serves the chain."""
    server = Hostile(node.url)
    url = await server.start()
    server.mode = "null_blocks"
    try:
        async with (
            RpcClient([url, node.url]) as client,
            heads(client, poll_interval=0.01, use_ws=False) as stream,
        ):
            seen = [await asyncio.wait_for(anext(stream), timeout=15)]
            for _ in range(3):
                await mine(node.url, 1)
                seen.append(await asyncio.wait_for(anext(stream), timeout=15))
    finally:
        await server.stop()
    assert_chained(seen)
    assert stream.stats.strict_polls >= 1
    assert client.health[0].errors["malformed"] >= 1  # the null block was its failure
    assert client.stats.exhausted == 0


# -- hostile WebSocket for calls ----------------------------------------------------------------


class HostileWs:
    """A WebSocket JSON-RPC node whose answers are broken the way ``mode`` says."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for message in ws:
            doc = json.loads(message.data)
            if self.mode == "close":
                await ws.close()
            elif self.mode == "garbage":
                await ws.send_str("<html>")
            elif self.mode == "wrong_id":
                await ws.send_json({"jsonrpc": "2.0", "id": doc["id"] + 99, "result": "0x1"})
            elif self.mode == "oversize":
                await ws.send_str('"' + "a" * 300_000 + '"')
            elif self.mode == "wrong_type":
                await ws.send_json({"jsonrpc": "2.0", "id": doc["id"], "result": 1})
            # "silent": never answers
        return ws

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        return f"ws://127.0.0.1:{port}"


WS_COUNTED = {
    "garbage": ("malformed", "malformed"),
    "wrong_id": ("malformed", "malformed"),
    "wrong_type": ("malformed", "malformed"),
    "oversize": ("malformed", "oversize"),
    "silent": ("timeouts", "timeout"),
    "close": ("", "connection"),
}


@pytest.mark.parametrize("mode", list(WS_COUNTED))
async def test_hostile_websocket_answers_are_counted_and_survived(node: Anvil, mode: str) -> None:
    server = HostileWs(mode)
    hostile_ws = await server.start()
    try:
        hostile = Endpoint(f"http://127.0.0.1:{free_port()}", ws_url=hostile_ws)  # dead HTTP
        expected = int(await rpc(node.url, "eth_blockNumber"), 16)
        transport = AiohttpTransport(max_response_bytes=256 * 1024)
        async with RpcClient(
            [hostile, node.url], ws_calls=True, timeout=0.5, transport=transport, probe_interval=60
        ) as client:
            assert await client.block_number() == expected
            assert await client.block_number() == expected
        counter, kind = WS_COUNTED[mode]
        if counter:
            assert getattr(client.stats, counter) == 1
        assert client.health[0].errors[kind] == 1
        assert client.health[1].answered == 2
    finally:
        await server.runner.cleanup()
