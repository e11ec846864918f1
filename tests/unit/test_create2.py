"""CREATE2 pool addresses against real mainnet pools (Uniswap V2 and V3 factories)."""

import json
import tomllib
from pathlib import Path

import pytest

from arbx.domain.create2 import (
    create2_address,
    is_sorted_pair,
    v2_pair_address,
    v3_pool_address,
)

V2_FACTORY = "0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f"
V3_FACTORY = "0x1F98431c8aD98523631AE4a59f267346ea31F984"
V2_HASH = "0x96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"
V3_HASH = "0xe34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "mainnet"


def fixture_pools() -> list[dict[str, object]]:
    """Every pool of the mainnet fixtures (all created by Uniswap's own factories)."""
    pools: list[dict[str, object]] = []
    for path in sorted(FIXTURES.glob("*.json")):
        doc = json.loads(path.read_text())
        pools.extend(doc["pools"] if "pools" in doc else [doc["pool"]])
    return pools


def test_weth_usdc_v2_pair() -> None:
    assert v2_pair_address(V2_FACTORY, USDC, WETH, V2_HASH) == (
        "0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc"
    )


@pytest.mark.parametrize("pool", fixture_pools(), ids=lambda p: str(p["address"]))
def test_fixture_pools_are_their_factorys(pool: dict[str, object]) -> None:
    token0 = str(pool["token0"]["address"])  # type: ignore[index]
    token1 = str(pool["token1"]["address"])  # type: ignore[index]
    if pool["family"] == "uniswap_v2":
        derived = v2_pair_address(V2_FACTORY, token0, token1, V2_HASH)
    else:
        derived = v3_pool_address(V3_FACTORY, token0, token1, int(str(pool["fee"])), V3_HASH)
    assert derived == pool["address"]


def test_another_fee_factory_or_hash_is_another_address() -> None:
    wbtc = "0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599"
    real = v3_pool_address(V3_FACTORY, wbtc, WETH, 3000, V3_HASH)
    assert real == "0xCBCdF9626bC03E24f779434178A73a0B4bad62eD"
    assert v3_pool_address(V3_FACTORY, wbtc, WETH, 500, V3_HASH) != real
    assert v3_pool_address(V2_FACTORY, wbtc, WETH, 3000, V3_HASH) != real
    assert v3_pool_address(V3_FACTORY, wbtc, WETH, 3000, V2_HASH) != real
    assert v2_pair_address(V2_FACTORY, USDC, WETH, V3_HASH) != v2_pair_address(
        V2_FACTORY, USDC, WETH, V2_HASH
    )


def test_eip1014_example() -> None:
    # EIP-1014 example 1: deployer 0, salt 0, init code 0x00
    hashed = bytes.fromhex("bc36789e7a1e281436464229828f817d6612f7b477d66591ff96a9e064bcc98a")
    assert create2_address("0x" + "00" * 20, bytes(32), hashed) == (
        "0x4D1A2e2bB4F88F0250f26Ffff098B0b30B26BF38"
    )


def test_bad_inputs_raise() -> None:
    assert is_sorted_pair(USDC, WETH)
    assert not is_sorted_pair(WETH, USDC)
    with pytest.raises(ValueError, match="sort"):
        v2_pair_address(V2_FACTORY, WETH, USDC, V2_HASH)
    with pytest.raises(ValueError, match="uint24"):
        v3_pool_address(V3_FACTORY, USDC, WETH, 1 << 24, V3_HASH)
    with pytest.raises(ValueError, match="32 bytes"):
        v2_pair_address(V2_FACTORY, USDC, WETH, "0x1234")
    with pytest.raises(ValueError, match="not an address"):
        v2_pair_address("0x1234", USDC, WETH, V2_HASH)


# Known mainnet pools of each venue of the example settings: WETH/USDC on the V2 venues, WBTC/WETH
# at 0.3% on Uniswap V3.
EXAMPLE_POOLS = {
    "uniswap_v2": "0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc",
    "sushiswap": "0x397FF1542f962076d0BFE58eA045FfA2d347ACa0",
    "uniswap_v3": "0xCBCdF9626bC03E24f779434178A73a0B4bad62eD",
}


def test_the_example_settings_prove_known_pools() -> None:
    path = Path(__file__).parents[2] / "docs" / "settings.example.toml"
    venues = tomllib.loads(path.read_text())["venues"]
    assert {v["name"] for v in venues} == set(EXAMPLE_POOLS)
    for venue in venues:
        if venue["kind"] == "uniswap_v2":
            derived = v2_pair_address(venue["factory"], USDC, WETH, venue["init_code_hash"])
        else:
            wbtc = "0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599"
            derived = v3_pool_address(venue["factory"], wbtc, WETH, 3000, venue["init_code_hash"])
        assert derived == EXAMPLE_POOLS[venue["name"]], venue["name"]
