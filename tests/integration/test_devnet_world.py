"""The devnet world, its deployment file, the market simulator and `arbx devnet up/down`."""

import argparse
import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak
from web3 import Web3

from arbx.cli.run import devnet_spec, spec_from_settings
from arbx.config import load_settings
from arbx.devnet.anvil import Anvil, AnvilOptions, free_port, rpc_chain_id, start_anvil
from arbx.devnet.artifacts import load_artifact
from arbx.devnet.chain import DevChain
from arbx.devnet.commands import (
    EmbeddedDevnet,
    add_devnet_parser,
    is_running,
    run_devnet,
)
from arbx.devnet.deployment import Deployment, load_deployment, save_deployment
from arbx.devnet.market import MarketSimulator
from arbx.devnet.serve import settings_toml
from arbx.devnet.world import WorldOptions, build_world
from arbx.domain.errors import ConfigError

pytestmark = pytest.mark.integration

V2_SWAP = "0x" + keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)").hex()
V2_SYNC = "0x" + keccak(text="Sync(uint112,uint112)").hex()
V3_SWAP = "0x" + keccak(text="Swap(address,address,int256,int256,uint160,uint128,int24)").hex()
V3_MINT = "0x" + keccak(text="Mint(address,address,int24,int24,uint128,uint256,uint256)").hex()
V3_BURN = "0x" + keccak(text="Burn(address,int24,int24,uint128,uint256,uint256)").hex()
MARKET_BLOCKS = 30


@pytest.fixture(scope="module")
def node() -> Iterator[Anvil]:
    """A fresh anvil for this module (the world needs an empty chain)."""
    with start_anvil(AnvilOptions()) as anvil:
        yield anvil


@pytest.fixture(scope="module")
def world(node: Anvil) -> Deployment:
    """The default world, seed 5."""
    return build_world(node.url, WorldOptions(seed=5))


def _call(chain: DevChain, name: str, address: str, fn: str, *args: object) -> Any:
    contract = chain.contract(load_artifact(name), address)
    return getattr(contract.functions, fn)(*args).call()


def test_world_has_every_piece(node: Anvil, world: Deployment) -> None:
    chain = DevChain(node.url)
    assert len(world.tokens) >= 6
    assert {6, 8, 18} <= {t.decimals for t in world.tokens}
    v2 = [v for v in world.venues if v.kind == "uniswap_v2"]
    assert [v.name for v in v2] == ["uniswap_v2", "sushiswap"]
    assert len({v.factory for v in v2}) == 2
    assert all(v.fee_bps == 30 for v in v2)
    for venue in v2:
        pairs = [p for p in world.pools if p.venue == venue.name]
        assert _call(chain, "UniswapV2Factory", venue.factory, "allPairsLength") == len(pairs) >= 9
        for pair in pairs[:3]:  # created where the factory says, with reserves
            assert (
                _call(chain, "UniswapV2Factory", venue.factory, "getPair", pair.token0, pair.token1)
                == pair.address
            )
            reserves = _call(chain, "UniswapV2Pair", pair.address, "getReserves")
            assert reserves[0] > 0
            assert reserves[1] > 0
    v3_pools = [p for p in world.pools if p.kind == "uniswap_v3"]
    assert len({p.fee for p in v3_pools}) >= 3
    factory = next(v.factory for v in world.venues if v.kind == "uniswap_v3")
    for pool in v3_pools:
        assert (
            _call(chain, "UniswapV3Factory", factory, "getPool", pool.token0, pool.token1, pool.fee)
            == pool.address
        )
        assert _call(chain, "UniswapV3Pool", pool.address, "liquidity") > 0
    positions = _call(
        chain,
        "NonfungiblePositionManager",
        world.v3.position_manager,
        "balanceOf",
        world.accounts.deployer,
    )
    assert positions >= 10 * len(v3_pools)
    # WETH/USDC at about 3,000 USDC on uniswap_v2
    usdc, weth = world.token("USDC").address, world.weth
    pair = next(
        p for p in world.pools if p.venue == "uniswap_v2" and {p.token0, p.token1} == {usdc, weth}
    )
    r0, r1, _ = _call(chain, "UniswapV2Pair", pair.address, "getReserves")
    usdc_per_weth = (r1 / r0 if pair.token0 == weth else r0 / r1) * 1e12
    assert 2900 < usdc_per_weth < 3100
    assert 1000 * 10**18 < (r0 if pair.token0 == weth else r1) < 3000 * 10**18  # WETH of TVL
    # the multicall contract answers
    calls = [(p.address, 100_000, "0x0902f1ac") for p in world.pools if p.kind == "uniswap_v2"]
    block, results = _call(chain, "UniswapInterfaceMulticall", world.multicall, "multicall", calls)
    assert block >= world.start_block
    assert len(results) == len(calls)
    assert all(success for success, _, _ in results)


def test_same_seed_same_world(world: Deployment) -> None:
    with start_anvil(AnvilOptions()) as other:
        again = build_world(other.url, WorldOptions(seed=5))
    assert again.pools == world.pools
    assert again.tokens == world.tokens
    assert again.venues == world.venues


def test_deployment_file_round_trips_without_keys(world: Deployment, tmp_path: Path) -> None:
    path = tmp_path / "data" / "devnet.json"
    save_deployment(world.with_pids(123, 456), path)
    loaded = load_deployment(path)
    assert loaded == world.with_pids(123, 456)
    text = path.read_text()
    assert "private" not in text.lower()
    hashes = {v.init_code_hash for v in world.venues}
    assert set(re.findall(r"0x[0-9a-fA-F]{64}\b", text)) <= hashes  # no keys, only code hashes
    doc = json.loads(text)
    assert doc["accounts"]["searcher_index"] == 9
    assert doc["accounts"]["searcher"] not in doc["accounts"]["traders"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no devnet deployment file"),
        ("{not json", "bad JSON"),
        ('{"version": 1}', "no 'accounts'"),
        ("[]", "not a valid"),
    ],
)
def test_bad_deployment_file_is_one_clear_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "devnet.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_deployment(path)


def _price_gaps(world: Deployment, prices: dict[str, float]) -> float:
    """The largest log price gap between two pools of one WETH pair, less both pools' fees."""
    groups: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for pool in world.pools:
        if world.weth in (pool.token0, pool.token1):
            groups.setdefault((pool.token0, pool.token1), []).append(
                (prices[pool.address], pool.fee)
            )
    best = -1.0
    for members in groups.values():
        for i, (price_a, fee_a) in enumerate(members):
            for price_b, fee_b in members[i + 1 :]:
                best = max(best, abs(math.log(price_a / price_b)) - (fee_a + fee_b) / 1e6)
    return best


def test_market_trades_everywhere_and_prices_diverge(node: Anvil, world: Deployment) -> None:
    simulator = MarketSimulator(world, seed=11)
    assert simulator.manual
    gaps: list[float] = []
    before = simulator.chain.w3.eth.block_number
    totals = simulator.run(
        pace=0, max_blocks=MARKET_BLOCKS,
        on_block=lambda _: gaps.append(_price_gaps(world, simulator.read_prices())),
    )  # fmt: skip
    after = simulator.chain.w3.eth.block_number
    assert after - before >= MARKET_BLOCKS
    assert totals.reverted == 0
    assert totals.errors == 0
    assert simulator.chain.rpc("anvil_getAutomine") is True  # restored on exit

    venue_of = {p.address.lower(): p.venue for p in world.pools}
    logs = simulator.chain.rpc("eth_getLogs", {"fromBlock": hex(before + 1), "toBlock": hex(after)})
    events: Counter[tuple[str, str]] = Counter()
    names = {V2_SWAP: "swap", V2_SYNC: "sync", V3_SWAP: "swap", V3_MINT: "mint", V3_BURN: "burn"}
    for log in logs:
        venue = venue_of.get(log["address"].lower())
        if venue is not None and log["topics"][0] in names:
            events[venue, names[log["topics"][0]]] += 1
    for venue in ("uniswap_v2", "sushiswap"):
        assert events[venue, "swap"] > 0
        assert events[venue, "sync"] >= events[venue, "swap"]
    assert events["uniswap_v3", "swap"] > 0
    assert events["uniswap_v3", "mint"] > 0
    assert events["uniswap_v3", "burn"] > 0
    assert sum(n for (_, kind), n in events.items() if kind == "swap") == sum(totals.swaps.values())
    # somewhere a WETH pair is priced apart across venues by more than both fees
    assert max(gaps) > 0
    # the searcher's account was never used
    assert (
        simulator.chain.w3.eth.get_transaction_count(
            Web3.to_checksum_address(world.accounts.searcher)
        )
        == 0
    )


def test_embedded_devnet_in_block_time_mode() -> None:
    with EmbeddedDevnet.start(seed=2, block_time=1) as devnet:
        assert devnet.simulator is not None
        assert not devnet.simulator.manual
        deadline = time.monotonic() + 20
        while sum(devnet.stats.swaps.values()) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sum(devnet.stats.swaps.values()) > 0
        assert devnet.error is None
        url = devnet.url
    assert rpc_chain_id(url, timeout=0.2) is None


def _devnet(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="arbx")
    add_devnet_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["devnet", *argv])


def test_up_refuses_twice_and_down_stops_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "data" / "devnet.json"
    port = str(free_port())
    up = _devnet("up", "--port", port, "--seed", "3", "--block-time", "0", "--pace", "0.1",
                 "--file", str(path))  # fmt: skip
    assert run_devnet(up) == 0
    try:
        assert str(path) in capsys.readouterr().out
        deployment = load_deployment(path)
        assert deployment.anvil_pid is not None
        assert deployment.market_pid is not None
        assert is_running(deployment.anvil_pid, "anvil")
        assert is_running(deployment.market_pid, "arbx.devnet")
        chain = DevChain(deployment.rpc_url)
        deadline = time.monotonic() + 15
        while chain.w3.eth.block_number < deployment.start_block + 5:  # the market mines
            assert time.monotonic() < deadline
            time.sleep(0.1)

        assert run_devnet(up) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1
        assert "still running" in error
    finally:
        assert run_devnet(_devnet("down", "--file", str(path))) == 0
    assert "stopped market" in capsys.readouterr().out
    assert not is_running(deployment.anvil_pid, "anvil")
    assert not is_running(deployment.market_pid, "arbx.devnet")
    assert rpc_chain_id(deployment.rpc_url, timeout=0.2) is None
    assert not path.exists()
    assert "market: stopped" in (path.parent / "market.log").read_text()
    assert run_devnet(_devnet("down", "--file", str(path))) == 0
    assert "nothing to stop" in capsys.readouterr().out


def test_served_settings_follow_the_world(world: Deployment, tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(settings_toml(world, "http://devnet:8545"), encoding="utf-8")
    settings = load_settings(path)
    assert settings.mode == "shadow"
    assert not settings.embedded
    spec, expected = spec_from_settings(settings), devnet_spec(world)
    assert spec.rpc == ("http://devnet:8545",)
    assert (spec.chain_id, spec.multicall, spec.base_tokens) == (
        expected.chain_id,
        expected.multicall,
        expected.base_tokens,
    )
    assert spec.venues == expected.venues
    assert len(spec.venues) >= 2
