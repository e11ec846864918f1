"""A follower that fell behind further than its node keeps blocks is given the head, not held."""

from __future__ import annotations

import asyncio

import pytest

from arbx.chain.heads import PRUNED_LAG, heads
from arbx.chain.rpc import RpcClient
from arbx.devnet.anvil import start_anvil
from tests.e2e.faulty_node import FaultyNode

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_a_gap_the_node_pruned_is_skipped_to_the_head() -> None:
    with start_anvil() as anvil:
        node = FaultyNode(anvil.url)
        await node.start()
        try:
            async with RpcClient([node.url], timeout=5.0) as client:
                await client.call("anvil_mine", [hex(3)])
                stream = heads(client, poll_interval=0.01, use_ws=False)
                first = await asyncio.wait_for(anext(stream), 10)
                node.mode = "pruned"  # keeps 8 blocks below its head
                await client.call("anvil_mine", [hex(PRUNED_LAG + 40)])
                tip = await client.block_number()
                gone = await client.call("eth_getBlockByNumber", [hex(first.number + 1), False])
                assert gone is None
                following = await asyncio.wait_for(anext(stream), 10)  # was: polled for ever
                await stream.aclose()
        finally:
            await node.close()
    assert following.number == tip
    assert stream.stats.pruned_gaps == 1
