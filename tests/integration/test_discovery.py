"""Pool discovery keeps only pools whose address is proven the factory's, on anvil with the real
Uniswap factories: a contract emitting Uniswap's creation events (served by a node that ignores
the log filter's address), and a pool address the factory never derived, are refused and counted.
"""

import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from arbx.chain.discovery import Venue, discover, find_pools
from arbx.chain.rpc import RpcClient
from arbx.devnet.anvil import Anvil, free_port
from arbx.devnet.artifacts import load_artifact
from arbx.devnet.chain import DevChain
from arbx.devnet.deploy import (
    V2_INIT_CODE_HASH,
    V3_POOL_INIT_CODE_HASH,
    UniswapDeployment,
    create_v2_pair,
    create_v3_pool,
    sort_tokens,
)
from arbx.devnet.solc import load_test_contract
from arbx.metrics.registry import ENGINE

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function")]
V2_HASH = "0x" + V2_INIT_CODE_HASH.hex()
V3_HASH = "0x" + V3_POOL_INIT_CODE_HASH.hex()


class Scene:
    """Real pools from the real factories, and a fake factory announcing pools of its own."""

    def __init__(self, chain: DevChain, uniswap: UniswapDeployment, tokens: list[str]) -> None:
        self.start = chain.w3.eth.block_number + 1
        self.uniswap = uniswap
        t0, t1 = sort_tokens(tokens[0], tokens[1])
        self.pair = create_v2_pair(chain, uniswap, t0, t1).address
        self.pool = create_v3_pool(chain, uniswap, (t0, t1), 3000, 2**96).address
        self.multicall = chain.deploy(load_artifact("UniswapInterfaceMulticall")).address
        fake_pair = chain.deploy(load_test_contract("FakePair"), t0, t1).address
        self.fake = chain.deploy(load_test_contract("FakeFactory"))
        chain.send(self.fake.functions.announcePair(t0, t1, fake_pair))
        chain.send(self.fake.functions.announcePool(t0, t1, 500, 10, fake_pair))
        self.fake_pool = fake_pair
        self.head = chain.w3.eth.block_number

    def real(self, hashed: bool) -> list[Venue]:
        """The two real factories as venues, with or without their init code hashes."""
        return [
            Venue("v2", "uniswap_v2", self.uniswap.v2_factory, 30, V2_HASH if hashed else ""),
            Venue("v3", "uniswap_v3", self.uniswap.v3_factory, 30, V3_HASH if hashed else ""),
        ]

    def fakes(self, hashed: bool) -> list[Venue]:
        """The fake factory configured as a V2 and as a V3 venue."""
        address = self.fake.address
        return [
            Venue("fake2", "uniswap_v2", address, 30, V2_HASH if hashed else ""),
            Venue("fake3", "uniswap_v3", address, 30, V3_HASH if hashed else ""),
        ]


@pytest.fixture(scope="module")
def scene(chain: DevChain, uniswap: UniswapDeployment, tokens: dict[int, str]) -> Scene:
    """The scene, built once for the module."""
    return Scene(chain, uniswap, [tokens[6], tokens[18]])


class AddressBlindNode:
    """A JSON-RPC node in front of anvil that drops the address filter of ``eth_getLogs``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward the request, without the log filter's addresses."""
        body = json.loads(await request.read())
        for call in body if isinstance(body, list) else [body]:
            if call.get("method") == "eth_getLogs":
                call["params"][0].pop("address", None)
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.upstream, json=body) as upstream,
        ):
            return web.json_response(json.loads(await upstream.read()))


@pytest_asyncio.fixture
async def blind_url(anvil_url: str) -> AsyncIterator[str]:
    """The URL of an address-blind node over the session's anvil."""
    app = web.Application()
    app.router.add_post("/", AddressBlindNode(anvil_url).handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
def anvil_url(anvil: Anvil) -> str:
    """The session anvil's URL."""
    return anvil.url


def refused_count(reason: str) -> float:
    """The engine's ``arbx_discovery_refused_total`` for one reason."""
    value = ENGINE.get_sample_value("arbx_discovery_refused_total", {"reason": reason})
    return value or 0.0


def proven(scene: Scene) -> set[str]:
    """The real pools of the scene."""
    return {scene.pair, scene.pool}


@pytest.mark.parametrize("hashed", [True, False], ids=["create2", "factory lookup"])
async def test_logs_from_another_contract_are_refused(
    scene: Scene, blind_url: str, hashed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    counted = refused_count("emitter")
    async with RpcClient([blind_url]) as client:
        with caplog.at_level(logging.WARNING, logger="arbx.chain.discovery"):
            found = await discover(
                client, scene.real(hashed), scene.start, scene.head, 31337,
                multicall_address=scene.multicall,
            )  # fmt: skip
    assert {m.address for m in found} == proven(scene)
    refused = [r for r in caplog.records if "refused pool" in r.getMessage()]
    # each venue saw the fake factory's log of its kind: two refusals, each logged
    assert len(refused) == 2
    for record in refused:
        assert scene.fake.address.lower() in record.getMessage().lower()
        assert record.getMessage().endswith("not emitted by the venue's factory")
    assert any("refused 2 creation logs; kept 2 pools" in r.getMessage() for r in caplog.records)
    assert refused_count("emitter") == counted + 2


@pytest.mark.parametrize("multicall", [True, False], ids=["multicall", "one call each"])
async def test_pools_are_proven_by_create2_or_the_factory(
    scene: Scene, anvil_url: str, multicall: bool
) -> None:
    async with RpcClient([anvil_url]) as client:
        for hashed in (True, False):
            found = await find_pools(
                client, scene.real(hashed), scene.start, scene.head, 31337,
                multicall_address=scene.multicall if multicall else None,
            )  # fmt: skip
            assert {m.address for m in found.pools} == proven(scene)
            assert found.refused == []


@pytest.mark.parametrize("hashed", [True, False], ids=["create2", "factory lookup"])
async def test_a_pool_address_the_factory_did_not_derive_is_refused(
    scene: Scene, anvil_url: str, hashed: bool
) -> None:
    async with RpcClient([anvil_url]) as client:
        found = await find_pools(
            client, scene.fakes(hashed), scene.start, scene.head, 31337,
            multicall_address=scene.multicall,
        )  # fmt: skip
    assert found.pools == []
    assert [(r.venue, r.pool) for r in found.refused] == [
        ("fake2", scene.fake_pool),
        ("fake3", scene.fake_pool),
    ]
    reason = "not the CREATE2 address" if hashed else "the factory does not know"
    assert all(reason in r.reason for r in found.refused)
    assert {r.kind for r in found.refused} == {"address"}
