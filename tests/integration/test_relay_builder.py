"""The relay client, the local builder and the bundle tracker against a real anvil.

One anvil (``--order fifo``) for the module; each test starts its own builder and uses fresh
accounts funded with ``anvil_setBalance``, so tests do not share nonces. PAYER is a contract set
with ``anvil_setCode``: a call without data sends its value to the coinbase, a call with data
reverts.
"""

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from eth_account import Account
from eth_account.signers.local import LocalAccount

from arbx.chain.heads import decode_head
from arbx.chain.rpc import RpcClient, RpcError
from arbx.chain.transport import AiohttpTransport
from arbx.devnet.anvil import Anvil, AnvilOptions, free_port, start_anvil
from arbx.devnet.builder import LocalBuilder
from arbx.domain.errors import ConfigError
from arbx.execution.flashbots import FLASHBOTS_HEADER, BuilderSpec, FlashbotsSigner, bundle_hash
from arbx.execution.inclusion import BundleTracker, Outcome, receipt_status_via, track_head
from arbx.execution.presim import presimulate, presimulate_at_head
from arbx.execution.rawtx import tx_hash
from arbx.execution.relay import RelayClient, SubmitStatus

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PAYER = "0x00000000000000000000000000000000000000AA"
PAYER_CODE = "0x36601157600060006000600034415af1005b60006000fd"
REPUTATION = FlashbotsSigner(Account.create().key)
GWEI = 10**9


@pytest.fixture(scope="module")
def node() -> Iterator[Anvil]:
    """This module's anvil, ordering its pool first-in first-out."""
    with start_anvil(AnvilOptions(extra_args=("--order", "fifo"))) as anvil:
        yield anvil


@pytest_asyncio.fixture
async def rpc(node: Anvil) -> AsyncIterator[RpcClient]:
    """A client straight to anvil (not through the builder)."""
    client = RpcClient([node.url], timeout=10)
    await client.call("anvil_setCode", [PAYER, PAYER_CODE])
    yield client
    await client.close()


@pytest_asyncio.fixture
async def builder(node: Anvil, rpc: RpcClient) -> AsyncIterator[LocalBuilder]:
    """A local builder over the module's anvil."""
    async with LocalBuilder(node.url) as local:
        yield local


@pytest_asyncio.fixture
async def relay() -> AsyncIterator[RelayClient]:
    """A relay client signing with a throwaway reputation key."""
    async with RelayClient(REPUTATION, timeout=5) as client:
        yield client


def spec(builder: LocalBuilder, **options: Any) -> BuilderSpec:
    """The builder's spec for the relay client."""
    return BuilderSpec("local", builder.url, supports_call_bundle=True, **options)


async def funded(rpc: RpcClient) -> LocalAccount:
    """A fresh account with 1,000 ETH."""
    account: LocalAccount = Account.create()
    await rpc.call("anvil_setBalance", [account.address, hex(1000 * 10**18)])
    return account


def sign(
    account: LocalAccount, nonce: int, *, value: int = 0, revert: bool = False, tip: int = 1
) -> bytes:
    """A call to PAYER (paying ``value`` to the coinbase, or reverting) with a ``tip`` wei tip."""
    tx: dict[str, Any] = {
        "type": 2,
        "chainId": 31337,
        "nonce": nonce,
        "to": PAYER,
        "value": value,
        "gas": 100_000,
        "data": b"\x01" if revert else b"",
        "maxFeePerGas": 100 * GWEI,
        "maxPriorityFeePerGas": tip,
    }
    return bytes(account.sign_transaction(tx).raw_transaction)


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """A raw POST; the status and the decoded answer."""
    import aiohttp  # noqa: PLC0415

    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status, await r.json(content_type=None)


async def receipt(rpc: RpcClient, raw: bytes) -> Any:
    """The receipt of ``raw``, or None."""
    return await rpc.call("eth_getTransactionReceipt", ["0x" + tx_hash(raw).hex()])


# -- authentication ---------------------------------------------------------------------------


async def test_signed_requests_are_accepted_and_bad_or_missing_signatures_refused(
    builder: LocalBuilder, rpc: RpcClient
) -> None:
    account = await funded(rpc)
    head = await rpc.block_number()
    body = (
        b'{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[{"txs":["0x%s"],'
        b'"blockNumber":"%s"}]}' % (sign(account, 0).hex().encode(), hex(head + 1).encode())
    )
    good = {"Content-Type": "application/json", FLASHBOTS_HEADER: REPUTATION(body)}
    status, answer = await post(builder.url, body, good)
    assert status == 200
    assert answer["result"]["bundleHash"] == "0x" + bundle_hash([sign(account, 0)]).hex()
    other = FlashbotsSigner(Account.create().key)
    forged = REPUTATION.address + ":" + other(body).split(":")[1]
    for header in (None, "garbage", forged, REPUTATION(body + b" ")):
        headers = {"Content-Type": "application/json"}
        if header is not None:
            headers[FLASHBOTS_HEADER] = header
        status, answer = await post(builder.url, body, headers)
        assert status == 403
        assert answer["error"]["code"] == -32600
    assert builder.stats.refused_signature == 4
    assert builder.stats.received == 1
    unsigned = b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":[]}'
    status, answer = await post(builder.url, unsigned, {"Content-Type": "application/json"})
    assert (status, answer["result"]) == (200, hex(head))  # other methods pass through to anvil


# -- building -----------------------------------------------------------------------------------


async def test_bundle_lands_on_top_of_its_block_in_order(
    builder: LocalBuilder, rpc: RpcClient, relay: RelayClient
) -> None:
    searcher, public = await funded(rpc), await funded(rpc)
    public_tx = sign(public, 0, tip=50 * GWEI)  # pays far more than the bundle, and came first
    await rpc.call("eth_sendRawTransaction", ["0x" + public_tx.hex()])
    bundle = [sign(searcher, 0, value=10**15), sign(searcher, 1)]
    target = await rpc.block_number() + 1
    before = int(await rpc.call("eth_getBalance", [builder.coinbase, "latest"]), 16)
    simulation = await relay.call_bundle(spec(builder), bundle, target)
    ack = await relay.send_bundle(spec(builder), bundle, target)
    assert ack.ok
    assert ack.bundle_hash == bundle_hash(bundle)
    built = await builder.build_block()
    assert built.number == target
    assert built.transactions == (tx_hash(bundle[0]), tx_hash(bundle[1]), tx_hash(public_tx))
    assert built.bundles == (bundle_hash(bundle),)
    for raw in (*bundle, public_tx):
        assert int((await receipt(rpc, raw))["status"], 16) == 1
    after = int(await rpc.call("eth_getBalance", [builder.coinbase, "latest"]), 16)
    public_gas = int((await receipt(rpc, public_tx))["gasUsed"], 16)
    assert after - before == simulation.coinbase_diff + public_gas * 50 * GWEI
    assert simulation.eth_sent_to_coinbase == 10**15


async def test_a_bundle_with_a_reverting_tx_is_dropped_whole(
    builder: LocalBuilder, rpc: RpcClient, relay: RelayClient
) -> None:
    searcher = await funded(rpc)
    bundle = [sign(searcher, 0, value=10**15), sign(searcher, 1, revert=True)]
    target = await rpc.block_number() + 1
    assert (await relay.send_bundle(spec(builder), bundle, target)).ok
    built = await builder.build_block()
    assert built.number == target
    assert built.bundles == ()
    assert "reverts" in built.dropped[bundle_hash(bundle)]
    for raw in bundle:
        assert await receipt(rpc, raw) is None
        assert await rpc.call("eth_getTransactionByHash", ["0x" + tx_hash(raw).hex()]) is None
    assert await rpc.call("eth_getTransactionCount", [searcher.address, "latest"]) == "0x0"


async def test_a_bundle_for_a_past_block_is_ignored(
    builder: LocalBuilder, rpc: RpcClient, relay: RelayClient
) -> None:
    searcher = await funded(rpc)
    bundle = [sign(searcher, 0)]
    head = await rpc.block_number()
    assert (await relay.send_bundle(spec(builder), bundle, head)).ok
    built = await builder.build_block()
    assert tx_hash(bundle[0]) not in built.transactions
    assert await receipt(rpc, bundle[0]) is None
    assert builder.stats.past_block == 1


async def test_call_bundle_reports_gas_payment_and_revert_without_changing_the_chain(
    builder: LocalBuilder, rpc: RpcClient, relay: RelayClient
) -> None:
    searcher = await funded(rpc)
    head = await rpc.block_number()
    bundle = [sign(searcher, 0, value=3 * 10**15, tip=2 * GWEI), sign(searcher, 1, revert=True)]
    simulation = await relay.call_bundle(spec(builder), bundle, head + 1)
    first, second = simulation.results
    assert first.gas_used > 21_000
    assert not first.reverted
    assert first.coinbase_diff == 3 * 10**15 + first.gas_used * 2 * GWEI
    assert first.eth_sent_to_coinbase == 3 * 10**15
    assert second.reverted
    assert second.coinbase_diff == second.gas_used
    assert simulation.total_gas_used == first.gas_used + second.gas_used
    assert simulation.first_failure() is not None
    assert simulation.state_block == head
    assert await rpc.block_number() == head
    assert await rpc.call("eth_getTransactionCount", [searcher.address, "latest"]) == "0x0"
    stale = [sign(searcher, 5)]
    with pytest.raises(Exception, match="nonce 5"):
        await relay.call_bundle(spec(builder), stale, head + 1)


async def test_cancel_and_replacement_by_uuid(
    builder: LocalBuilder, rpc: RpcClient, relay: RelayClient
) -> None:
    searcher = await funded(rpc)
    target = await rpc.block_number() + 1
    cancelled, first, second, emptied = ([sign(searcher, 0, value=v)] for v in (1, 2, 3, 4))
    assert (await relay.send_bundle(spec(builder), cancelled, target, replacement_uuid="c")).ok
    assert (await relay.cancel_bundle(spec(builder), "c")).ok
    assert (await relay.send_bundle(spec(builder), first, target, replacement_uuid="r")).ok
    assert (await relay.send_bundle(spec(builder), second, target, replacement_uuid="r")).ok
    by_empty = spec(builder, uuid_field="uuid", cancel="empty_bundle")
    assert (await relay.send_bundle(by_empty, emptied, target, replacement_uuid="e")).ok
    assert (await relay.cancel_bundle(by_empty, "e", target)).ok
    built = await builder.build_block()
    assert built.bundles == (bundle_hash(second),)
    assert (builder.stats.cancelled, builder.stats.replaced) == (2, 1)


async def test_the_best_paying_bundle_wins_a_shared_transaction(
    builder: LocalBuilder, rpc: RpcClient, relay: RelayClient
) -> None:
    a, b = await funded(rpc), await funded(rpc)
    shared = sign(a, 0)
    cheap, rich = [shared, sign(b, 0, value=10**9)], [shared, sign(b, 0, value=10**16)]
    target = await rpc.block_number() + 1
    for bundle in (cheap, rich):
        assert (await relay.send_bundle(spec(builder), bundle, target)).ok
    built = await builder.build_block()
    assert built.bundles == (bundle_hash(rich),)
    assert "shares a transaction" in built.dropped[bundle_hash(cheap)]


async def test_a_block_whose_top_went_wrong_is_rolled_back(
    builder: LocalBuilder, rpc: RpcClient, relay: RelayClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import arbx.devnet.builder as module  # noqa: PLC0415
    from arbx.devnet.builder_sim import Run, simulate  # noqa: PLC0415

    real = simulate  # what the builder calls, replaced below

    async def lying(*args: Any) -> Run:  # a simulation that misses the revert
        run = await real(*args)
        return Run(tuple(dataclasses.replace(r, success=True) for r in run.runs), run.error)

    monkeypatch.setattr(module, "simulate", lying)
    searcher, public = await funded(rpc), await funded(rpc)
    public_tx = sign(public, 0)
    await rpc.call("eth_sendRawTransaction", ["0x" + public_tx.hex()])
    bundle = [sign(searcher, 0, revert=True)]
    target = await rpc.block_number() + 1
    assert (await relay.send_bundle(spec(builder), bundle, target)).ok
    built = await builder.build_block()
    assert builder.stats.violations == 1
    assert (built.number, built.bundles, built.transactions) == (target, (), (tx_hash(public_tx),))
    assert await rpc.block_number() == target
    assert await receipt(rpc, bundle[0]) is None


async def test_the_builder_stands_in_for_the_node_and_makes_every_block(
    builder: LocalBuilder, rpc: RpcClient, relay: RelayClient
) -> None:
    searcher = await funded(rpc)
    bundle = [sign(searcher, 0)]
    target = await rpc.block_number() + 1
    assert (await relay.send_bundle(spec(builder), bundle, target)).ok
    async with RpcClient([builder.url]) as through:
        await through.call("evm_setAutomine", [True])  # ignored: the builder makes the blocks
        dev = (await through.call("eth_accounts"))[0]
        sent = await through.call(
            "eth_sendTransaction", [{"from": dev, "to": PAYER, "gas": "0x30000"}]
        )
        assert await through.call("eth_getTransactionReceipt", [sent]) is None
        await through.call("evm_mine")
        assert await through.block_number() == target
        block = await through.call("eth_getBlockByNumber", [hex(target), False])
    assert block["transactions"] == ["0x" + tx_hash(bundle[0]).hex(), sent]
    assert int((await rpc.call("eth_getTransactionReceipt", [sent]))["status"], 16) == 1
    assert builder.stats.mining_switches_ignored == 1
    stop = asyncio.Event()
    loop = asyncio.create_task(builder.mine_every(0.01, stop))
    async with asyncio.timeout(10):
        while await rpc.block_number() < target + 3:
            await asyncio.sleep(0.01)
    stop.set()
    await loop


async def test_a_held_builder_builds_no_block_and_holds_the_market_until_released(
    node: Anvil, rpc: RpcClient
) -> None:
    market = threading.Lock()  # the market simulator's, in the builder's process
    async with (
        LocalBuilder(node.url, hold=market) as local,
        RpcClient([local.url], timeout=10, retries=0) as through,
    ):
        market.acquire()  # a market step under way: the hold waits for its end
        holding = asyncio.create_task(through.call("devnet_hold", [30]))
        await asyncio.sleep(0.3)
        assert not holding.done()
        market.release()
        assert await holding is True
        assert market.locked()  # the market makes no step while held
        head = await rpc.block_number()
        mining = asyncio.create_task(through.call("evm_mine"))
        await asyncio.sleep(0.5)
        assert not mining.done()
        assert await rpc.block_number() == head
        with pytest.raises(RpcError, match="held already"):
            await through.call("devnet_hold", [30])
        assert await through.call("devnet_release", []) is True
        await mining
        assert await rpc.block_number() == head + 1
        assert not market.locked()
        assert await through.call("devnet_release", []) is False
        # a holder that never releases: its lease ends the hold
        assert await through.call("devnet_hold", [0.5]) is True
        async with asyncio.timeout(10):
            await through.call("evm_mine")
        assert await rpc.block_number() == head + 2
        assert not market.locked()
        bad: Any
        for bad in (["x"], [0], [10_000], [1, 2], {"s": 1}):
            with pytest.raises(RpcError, match="lease"):
                await through.call("devnet_hold", bad)
        assert not market.locked()


async def test_the_builder_needs_fifo_ordering() -> None:
    with start_anvil() as fees_ordered, pytest.raises(ConfigError, match="fifo"):
        await LocalBuilder(fees_ordered.url).start()


# -- fan-out, presimulation ---------------------------------------------------------------------


@pytest_asyncio.fixture
async def hostile() -> AsyncIterator[str]:
    """A server that answers every request with garbage."""

    async def garbage(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b'{"jsonrpc": "2.0", "id": ', content_type="application/json")

    async def huge(request: web.Request) -> web.Response:
        await request.read()
        doc = {
            "jsonrpc": "2.0",
            "id": 1,
            "result": {"bundleHash": "0x" + "ab" * 32, "pad": "x" * 10**6},
        }
        return web.json_response(doc)

    app = web.Application()
    app.router.add_post("/", garbage)
    app.router.add_post("/huge", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_fan_out_to_a_live_a_dead_and_a_hostile_builder(
    builder: LocalBuilder, rpc: RpcClient, relay: RelayClient, hostile: str
) -> None:
    searcher = await funded(rpc)
    builders = [
        spec(builder),
        BuilderSpec("dead", f"http://127.0.0.1:{free_port()}"),
        BuilderSpec("hostile", hostile),
    ]
    target = await rpc.block_number() + 1
    report = await relay.fan_out(builders, [sign(searcher, 0)], target, blocks_ahead=0)
    assert [s.builder for s in report.acks] == ["local"]
    assert {s.builder: s.status for s in report.failures} == {
        "dead": SubmitStatus.CONNECTION,
        "hostile": SubmitStatus.MALFORMED,
    }
    assert relay.stats.failures() == 2
    assert (await builder.build_block()).bundles == (report.bundle_hash,)


async def test_answers_are_read_whole_and_capped(hostile: str, rpc: RpcClient) -> None:
    bundle = [sign(await funded(rpc), 0)]
    huge = BuilderSpec("huge", hostile + "/huge")
    async with RelayClient(
        REPUTATION, transport=AiohttpTransport(max_response_bytes=2 * 10**6, exact_integers=True)
    ) as roomy:
        submission = await roomy.send_bundle(huge, bundle, 10**6)
        assert (submission.status, submission.bundle_hash) == (SubmitStatus.ACK, b"\xab" * 32)
    async with RelayClient(
        REPUTATION, transport=AiohttpTransport(max_response_bytes=10**5, exact_integers=True)
    ) as tight:
        assert (await tight.send_bundle(huge, bundle, 10**6)).status is SubmitStatus.OVERSIZE


async def test_presimulation_drops_what_would_revert(
    builder: LocalBuilder, rpc: RpcClient, relay: RelayClient
) -> None:
    searcher = await funded(rpc)
    target = await rpc.block_number() + 1
    good = await presimulate(
        rpc, [sign(searcher, 0, value=5)], target, relay=relay, builders=[spec(builder)]
    )
    assert (good.ok, good.stage) == (True, "passed")
    assert good.simulation is not None
    assert good.simulation.eth_sent_to_coinbase == 5
    bad = await presimulate(
        rpc, [sign(searcher, 0, revert=True)], target, relay=relay, builders=[spec(builder)]
    )
    assert (bad.ok, bad.stage) == (False, "eth_call")


async def test_presimulation_at_the_head_asks_the_node_once_on_the_heads_state(
    builder: LocalBuilder, rpc: RpcClient, relay: RelayClient
) -> None:
    searcher = await funded(rpc)
    head = await rpc.block_number()
    calls = rpc.stats.calls
    good, height = await presimulate_at_head(rpc, [sign(searcher, 0, value=5)], head)
    assert (good.ok, good.stage, good.simulation, height) == (True, "passed", None, head)
    assert rpc.stats.calls == calls + 1  # the call and the height in one batch
    bad, height = await presimulate_at_head(rpc, [sign(searcher, 0, revert=True)], head)
    assert (bad.ok, bad.stage, height) == (False, "eth_call", head)
    assert "revert" in bad.reason
    both, _ = await presimulate_at_head(
        rpc, [sign(searcher, 0, value=5)], head, relay=relay, builders=[spec(builder)]
    )
    assert (both.ok, both.stage) == (True, "passed")
    assert both.simulation is not None  # the builder's simulation, when asked for
    assert both.simulation.eth_sent_to_coinbase == 5
    await builder.build_block()  # the chain moves on: the height says so, the state stays
    again, height = await presimulate_at_head(rpc, [sign(searcher, 0, value=5)], head)
    assert again.ok
    assert height is not None
    assert height > head


async def test_a_node_that_cannot_simulate_is_not_a_failed_simulation(rpc: RpcClient) -> None:
    """The node behind (no such block) or unreachable says nothing of the transaction: stage
    ``node``, which the executor drops unsent instead of recording a failed simulation."""
    searcher = await funded(rpc)
    head = await rpc.block_number()
    behind, height = await presimulate_at_head(rpc, [sign(searcher, 0, value=5)], head + 1000)
    assert (behind.ok, behind.stage, height) == (False, "node", head)
    assert "tx 0" in behind.reason
    reverting, _ = await presimulate_at_head(rpc, [sign(searcher, 0, revert=True)], head)
    assert reverting.stage == "eth_call"  # the transaction's own failure stays one
    dead = RpcClient([f"http://127.0.0.1:{free_port()}"], retries=0)
    try:
        gone, height = await presimulate_at_head(dead, [sign(searcher, 0, value=5)], head)
        assert (gone.ok, gone.stage, height) == (False, "node", None)
        alone = await presimulate(dead, [sign(searcher, 0, value=5)], head + 1)
        assert (alone.ok, alone.stage) == (False, "node")
    finally:
        await dead.close()


# -- inclusion tracking -------------------------------------------------------------------------


async def next_head(rpc: RpcClient, tracker: BundleTracker, builder: LocalBuilder) -> list[Any]:
    """Build a block and feed it to the tracker; the outcome changes."""
    await builder.build_block()
    head = decode_head(await rpc.call("eth_getBlockByNumber", ["latest", False]))
    return await track_head(tracker, rpc, head)


async def test_tracker_classifies_included_not_included_reverted_and_reorgs(
    builder: LocalBuilder, rpc: RpcClient, relay: RelayClient
) -> None:
    tracker = BundleTracker(confirmations=1, receipt_status=receipt_status_via(rpc))
    a, b, c, d = [await funded(rpc) for _ in range(4)]
    target = await rpc.block_number() + 1
    landing, reverting = [sign(a, 0, value=7)], [sign(b, 0, revert=True)]
    never_sent, reorged = [sign(c, 0)], [sign(d, 0, value=9)]
    keys = {
        bundle_hash(x).hex(): name
        for x, name in ((landing, "landing"), (reverting, "reverting"), (reorged, "reorged"))
    }
    keys["never"] = "never"
    snapshot = await rpc.call("evm_snapshot")
    for bundle in (landing, reverting, reorged):
        allowed = [tx_hash(reverting[0])] if bundle is reverting else []
        report = await relay.fan_out([spec(builder)], bundle, target, reverting_hashes=allowed)
        assert len(report.acks) == 3
        key = report.bundle_hash.hex()
        tracker.track(key, report.tx_hashes, target, report.blocks[-1], ["local"])
    tracker.track("never", [tx_hash(never_sent[0])], target, target + 1)

    def named(changes: list[Any]) -> dict[str, tuple[Outcome, bool]]:
        return {keys[c.key]: (c.outcome, c.settled) for c in changes}

    assert named(await next_head(rpc, tracker, builder)) == {
        "landing": (Outcome.INCLUDED, False),
        "reverting": (Outcome.REVERTED, False),
        "reorged": (Outcome.INCLUDED, False),
    }
    # a reorg: block `target` is replaced; only `landing` is sent again and lands in the new one
    assert await rpc.call("evm_revert", [snapshot]) is True
    await relay.fan_out([spec(builder)], landing, target, blocks_ahead=0)
    changes = await next_head(rpc, tracker, builder)
    assert [(keys[c.key], c.outcome) for c in changes] == [
        ("landing", Outcome.PENDING),
        ("reverting", Outcome.PENDING),
        ("reorged", Outcome.PENDING),
        ("landing", Outcome.INCLUDED),
    ]
    assert tracker.stats.uncovered == 3
    landed = tracker.get(bundle_hash(landing).hex())
    new_block = await rpc.call("eth_getBlockByNumber", [hex(target), False])
    assert landed is not None
    assert "0x" + (landed.block_hash or b"").hex() == new_block["hash"]
    # the builder still holds the copies for target + 1 of the bundles taken out: they land again
    built = await builder.build_block()
    assert set(built.bundles) == {bundle_hash(reverting), bundle_hash(reorged)}
    assert "nonce" in built.dropped[bundle_hash(landing)]  # its copy: the tx is in already
    head = decode_head(await rpc.call("eth_getBlockByNumber", ["latest", False]))
    assert named(await track_head(tracker, rpc, head)) == {
        "landing": (Outcome.INCLUDED, True),
        "never": (Outcome.NOT_INCLUDED, False),
        "reverting": (Outcome.REVERTED, False),
        "reorged": (Outcome.INCLUDED, False),
    }
    assert named(await next_head(rpc, tracker, builder)) == {
        "never": (Outcome.NOT_INCLUDED, True),
        "reverting": (Outcome.REVERTED, True),
        "reorged": (Outcome.INCLUDED, True),
    }
    assert {b.key for b in tracker.pop_settled()} == set(keys)


# -- the benchmark's builder that answers at once -----------------------------------------------


async def test_the_instant_builder_double_answers_as_the_local_builder_does(
    node: Anvil, builder: LocalBuilder, rpc: RpcClient, relay: RelayClient
) -> None:
    from bench.instant_builder import serving  # noqa: PLC0415 (the benchmark's double)

    searcher = await funded(rpc)
    head = await rpc.block_number()
    bundle = [sign(searcher, 0, value=3 * 10**15, tip=2 * GWEI), sign(searcher, 1, revert=True)]
    async with serving(node.url) as (double, url):
        fast = BuilderSpec("double", url, supports_call_bundle=True)
        ours = await relay.call_bundle(fast, bundle, head + 1)
        theirs = await relay.call_bundle(spec(builder), bundle, head + 1)
        assert ours.results == theirs.results  # gas, payments and the revert, tx by tx
        assert (ours.total_gas_used, ours.state_block) == (theirs.total_gas_used, head)
        with pytest.raises(RpcError, match="nonce 5"):
            await relay.call_bundle(fast, [sign(searcher, 5)], head + 1)
        sent = await relay.send_bundle(fast, bundle[:1], head + 1, replacement_uuid="u")
        assert (sent.ok, sent.bundle_hash) == (True, bundle_hash(bundle[:1]))
        assert (await relay.cancel_bundle(fast, "u")).ok
        assert double.stats.cancelled == 1
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[]}'
        status, answer = await post(url, body, {FLASHBOTS_HEADER: REPUTATION(body + b" ")})
        assert (status, answer["error"]["code"]) == (403, -32600)
        assert double.stats.refused == 1
    assert await rpc.block_number() == head  # it builds nothing
