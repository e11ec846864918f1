"""Shadow simulation's executor on a real anvil: placed by a state override where the node
applies them, skipped for the run with one reason where it does not or where the configured
contract has no code, and tried again later when the node lacks the block's state."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.rpc import RpcClient
from arbx.devnet.anvil import Anvil
from arbx.domain.bidding import Competition
from arbx.executors.shadow import ShadowExecutor
from arbx.executors.simulation import SHADOW_EXECUTOR, SHADOW_OWNER, ShadowSimulator
from arbx.executors.trade import LiveSettings

pytestmark = pytest.mark.integration

WETH = "0x" + "34" * 20


class _NoOverrides:
    """A node that ignores ``eth_call`` state overrides (the third parameter is dropped)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def post(self, url: str, body: bytes, timeout: float, headers: Any = None) -> Any:
        doc = json.loads(body)
        for item in doc if isinstance(doc, list) else [doc]:
            if item["method"] == "eth_call":
                item["params"] = item["params"][:2]
        return await self.inner.post(url, json.dumps(doc).encode(), timeout, headers)

    async def websocket(self, url: str, timeout: float) -> Any:
        return await self.inner.websocket(url, timeout)

    async def close(self) -> None:
        await self.inner.close()


def _simulator(client: RpcClient, factory: sessionmaker[Session], executor: str | None) -> Any:
    settings = LiveSettings(executor="0x" + "00" * 20, base_token=WETH, builders=())
    recorder = ShadowExecutor(factory, 1, 31337)
    return ShadowSimulator(client, {}, settings, recorder, Competition(), executor=executor)


@pytest.mark.asyncio
async def test_the_shipped_executor_is_placed_by_an_override(
    anvil: Anvil, factory: sessionmaker[Session]
) -> None:
    async with RpcClient([anvil.url], timeout=10.0) as client:
        head = int(await client.call("eth_blockNumber", []), 16)
        simulator = _simulator(client, factory, None)
        caller = await simulator._prepare(head)
        simulator.recorder.close()
    assert caller is not None
    assert (caller.executor, caller.owner) == (SHADOW_EXECUTOR, SHADOW_OWNER)
    assert caller.overrides is not None
    assert SHADOW_EXECUTOR in caller.overrides
    assert simulator.stats.skipped_reason == ""


@pytest.mark.asyncio
async def test_a_node_without_overrides_skips_simulation_with_one_reason(
    anvil: Anvil, factory: sessionmaker[Session]
) -> None:
    async with RpcClient([anvil.url], timeout=10.0) as client:
        client.transport = _NoOverrides(client.transport)
        head = int(await client.call("eth_blockNumber", []), 16)
        simulator = _simulator(client, factory, None)
        assert await simulator._prepare(head) is None
        assert await simulator._prepare(head) is None  # for good: not asked again
        simulator.recorder.close()
    reason = simulator.stats.skipped_reason
    assert reason == "no executor configured and the node does not apply eth_call state overrides"
    assert "\n" not in reason


@pytest.mark.asyncio
async def test_a_configured_executor_without_code_skips_simulation(
    anvil: Anvil, factory: sessionmaker[Session]
) -> None:
    nowhere = "0x" + "ab" * 20
    async with RpcClient([anvil.url], timeout=10.0) as client:
        head = int(await client.call("eth_blockNumber", []), 16)
        simulator = _simulator(client, factory, nowhere)
        assert await simulator._prepare(head) is None
        simulator.recorder.close()
    assert simulator.stats.skipped_reason == (
        f"execution.executor {nowhere} has no code at block {head}"
    )


@pytest.mark.asyncio
async def test_a_block_the_node_does_not_have_is_tried_again(
    anvil: Anvil, factory: sessionmaker[Session]
) -> None:
    async with RpcClient([anvil.url], timeout=10.0) as client:
        head = int(await client.call("eth_blockNumber", []), 16)
        simulator = _simulator(client, factory, None)
        assert await simulator._prepare(head + 1_000) is None  # anvil: BlockOutOfRangeError
        assert simulator.stats.skipped_reason == ""
        assert await simulator._prepare(head) is not None  # the next block prepares it
        simulator.recorder.close()
