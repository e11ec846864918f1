"""Competing searchers on the devnet, and the local builder's auction between their bundles.

Each test starts its own embedded devnet (anvil, the real Uniswap contracts, the local builder;
no market thread): the competitors deploy the shipped executor under their own keys and send
their bundles to the builder over its JSON-RPC, signed with their own relay keys.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import decode
from eth_utils.crypto import keccak

from arbx.devnet import world
from arbx.devnet.builder import BUILDER_COINBASE
from arbx.devnet.chain import DevChain, TxQueue
from arbx.devnet.commands import EmbeddedDevnet
from arbx.devnet.competitors import Competitors, SentBundle, Style
from tests.integration.competition import landed, traded

pytestmark = pytest.mark.integration

BLOCKS = 60
_SYNC = "0x" + keccak(text="sync()")[:4].hex()
_GET_RESERVES = "0x0902f1ac"


def _market_run(seed: int, competitors: int) -> tuple[list[SentBundle], dict[str, Any]]:
    """``BLOCKS`` market blocks on a fresh devnet; what the competitors sent, and what landed."""
    with traded(seed, competitors, BLOCKS) as (devnet, market, chain):
        assert devnet.builder is not None
        stats = devnet.builder.builder.stats
        sent = market.competitors.sent if market.competitors is not None else []
        mined = []
        for bundle, receipt in landed(chain, sent):
            block = chain.rpc("eth_getBlockByNumber", receipt["blockNumber"], False)
            mined.append((bundle, int(receipt["status"], 16), block["transactions"]))
        return sent, {"received": stats.received, "signers": set(stats.by_signer), "landed": mined}


def test_competitors_are_off_by_default_and_the_same_seed_sends_the_same_bundles() -> None:
    quiet, quiet_stats = _market_run(seed=1, competitors=0)
    assert quiet == []
    assert quiet_stats["received"] == 0

    first, stats = _market_run(seed=1, competitors=2)
    second, _ = _market_run(seed=1, competitors=2)
    assert len(first) >= 3
    assert {b.competitor for b in first} == {b.competitor for b in second}
    assert len({b.competitor for b in first}) == 2  # both styles found trades
    assert any(len(b.route) == 3 for b in first)
    assert any(len(b.route) == 2 for b in first)
    # the market's transactions carry a wall-clock deadline, so a backrun bundle's first
    # transaction differs from run to run; the competitors' own transactions do not
    assert [(b.block, b.competitor, b.arbitrage_tx, b.route) for b in first] == [
        (b.block, b.competitor, b.arbitrage_tx, b.route) for b in second
    ]
    assert stats["received"] == len(first)
    assert len(stats["signers"]) == 2
    assert all(b.accepted for b in first)
    # bundles that won their auction sit on top of their block and succeeded
    won = [(b, txs) for b, status, txs in stats["landed"] if status == 1]
    assert won
    for bundle, txs in won:
        assert list(bundle.txs) == [t.lower() for t in txs[: len(bundle.txs)]]


def _unbalance(devnet: EmbeddedDevnet, chain: DevChain) -> None:
    """Push the uniswap_v2 WETH/USDC pair's price 3% off (USDC minted into it, then ``sync``)."""
    deployment = devnet.deployment
    usdc = next(t.address for t in deployment.tokens if t.symbol == "USDC")
    pair = next(
        p
        for p in deployment.pools
        if p.venue == "uniswap_v2" and {p.token0, p.token1} == {usdc, deployment.weth}
    )
    answer = chain.rpc("eth_call", {"to": pair.address, "data": _GET_RESERVES}, "latest")
    r0, r1, _ = decode(["uint112", "uint112", "uint32"], bytes.fromhex(answer[2:]))
    reserve = r0 if pair.token0 == usdc else r1
    queue = TxQueue(chain)
    token = chain.w3.eth.contract(abi=world.test_token_artifact().abi)
    mint = token.encode_abi("mint", args=[pair.address, reserve * 3 // 100])
    deployer = deployment.accounts.deployer
    queue.raw(deployer, usdc, mint, 0, 200_000, "mint")
    queue.raw(deployer, pair.address, _SYNC, 0, 200_000, "sync")
    queue.flush(mine=True)


def _auction(devnet: EmbeddedDevnet, rivals: Competitors) -> tuple[list[SentBundle], Any]:
    sent = rivals.act()
    rivals.chain.rpc("evm_mine")  # through the builder: it builds the block
    assert devnet.builder is not None
    return sent, devnet.builder.builder.last_block


def test_the_higher_bid_on_one_opportunity_wins_and_the_lower_is_dropped() -> None:
    with EmbeddedDevnet.start(seed=3, market=False) as devnet:
        assert devnet.builder_url is not None
        chain = DevChain(devnet.builder_url)
        cheap = Style("cheap", 2, 1_000, backrun=False)
        rich = Style("rich", 2, 9_000, backrun=False)
        rivals = Competitors(devnet.deployment, chain, devnet.builder_url, 2, 3, (cheap, rich))
        rivals.setup()
        _unbalance(devnet, chain)
        anvil = DevChain(devnet.url)
        snapshot = anvil.rpc("evm_snapshot")
        coinbase_before = int(anvil.rpc("eth_getBalance", BUILDER_COINBASE, "latest"), 16)

        sent, built = _auction(devnet, rivals)
        by_style = {b.competitor: b for b in sent}
        low, high = (by_style[m.address] for m in rivals.members)
        assert low.route == high.route  # the same opportunity
        assert high.builder_payment > low.builder_payment
        winner, loser = high.hash, low.hash
        assert built.bundles == (winner,)
        assert "after the bundles above it" in built.dropped[loser]
        assert built.transactions[0] == bytes.fromhex(high.arbitrage_tx[2:])
        receipt = anvil.rpc("eth_getTransactionReceipt", high.arbitrage_tx)
        assert int(receipt["status"], 16) == 1
        assert anvil.rpc("eth_getTransactionReceipt", low.arbitrage_tx) is None
        paid = int(anvil.rpc("eth_getBalance", BUILDER_COINBASE, "latest"), 16) - coinbase_before
        assert paid >= high.builder_payment

        # the same bundles arriving in the other order give the same block
        anvil.rpc("evm_revert", snapshot)
        rivals.members.reverse()
        again, rebuilt = _auction(devnet, rivals)
        assert sorted(b.txs for b in again) == sorted(b.txs for b in sent)
        assert rebuilt.bundles == (winner,)
        assert rebuilt.transactions == built.transactions
