"""The devnet building blocks: anvil's lifecycle, the artifacts, and the pool init code hashes."""

from pathlib import Path

import pytest
from eth_utils.crypto import keccak

from arbx.devnet.anvil import Anvil, rpc_chain_id, start_anvil
from arbx.devnet.artifacts import load_artifact
from arbx.devnet.chain import DevChain
from arbx.devnet.deploy import (
    V2_INIT_CODE_HASH,
    V3_FEE_TICK_SPACING,
    V3_POOL_INIT_CODE_HASH,
    UniswapDeployment,
    create2_address,
    create_v2_pair,
    create_v3_pool,
    deploy_test_tokens,
    v2_pair_address,
    v3_pool_address,
)
from arbx.devnet.solc import load_test_contract
from arbx.domain.errors import ConfigError, InputError
from arbx.errors import SimulationRevertedError

pytestmark = pytest.mark.integration

# Mainnet's: hardcoded in UniswapV2Library (v2-periphery) and PoolAddress (v3-periphery).
MAINNET_V2_INIT_CODE_HASH = "96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"
MAINNET_V3_POOL_INIT_CODE_HASH = "e34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"


def test_anvil_starts_answers_and_stops() -> None:
    with start_anvil() as node:
        assert node.is_running()
        assert rpc_chain_id(node.url) == 31337
    assert not node.is_running()
    assert rpc_chain_id(node.url, timeout=0.2) is None


def test_the_node_inherits_no_key_password_or_database_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = {
        "ARBX_SIGNING_KEY": "0x" + "11" * 32,
        "ARBX_KEYSTORE_PASSWORD": "keystore-pa55",
        "ARBX_RELAY_KEY": "22" * 32,
        "ARBX_RELAY_KEYSTORE_PASSWORD": "relay-pa55",
        "ARBX_DATABASE_URL": "postgresql://arbx:db-pa55@127.0.0.1/arbx",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    with start_anvil() as node:
        environ = Path(f"/proc/{node.process.pid}/environ").read_bytes().decode()
    names = {line.split("=", 1)[0] for line in environ.split("\0") if line}
    assert "PATH" in names
    assert not names & {n for n in secrets if n != "ARBX_DATABASE_URL"}
    for value in ("11" * 32, "keystore-pa55", "22" * 32, "relay-pa55", "db-pa55"):
        assert value not in environ


def test_missing_anvil_binary_says_run_make_setup(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="make setup"):
        start_anvil(binary=tmp_path / "anvil")


def test_session_anvil_is_the_one_we_started(anvil: Anvil, chain: DevChain) -> None:
    assert chain.w3.eth.chain_id == anvil.chain_id
    assert len(chain.accounts) == 10


def test_artifacts_of_both_formats_load() -> None:
    v2 = load_artifact("UniswapV2Router02")  # waffle build, hex without 0x
    v3 = load_artifact("UniswapV3Pool")  # hardhat artifact
    for code in (v2.bytecode, v3.bytecode):  # decoded creation code: sets the free memory pointer
        assert bytes.fromhex("604052") in code[:8]
    assert any(item.get("name") == "getAmountsOut" for item in v2.abi)
    assert any(item.get("name") == "swap" for item in v3.abi)
    with pytest.raises(ConfigError):
        load_artifact("NoSuchContract")


def test_reverted_transaction_raises_with_reason(chain: DevChain) -> None:
    token = chain.deploy(load_test_contract("TestToken"), "Burn", "B", 18)
    with pytest.raises(SimulationRevertedError, match="TestToken: balance"):
        chain.send(token.functions.burn(chain.sender, 1))


def test_v2_pair_init_code_hash_matches_the_library(
    chain: DevChain, uniswap: UniswapDeployment
) -> None:
    """The deployed factory creates pairs at the address UniswapV2Library.pairFor computes."""
    pair_code_hash = keccak(load_artifact("UniswapV2Pair").bytecode)
    assert pair_code_hash.hex() == MAINNET_V2_INIT_CODE_HASH
    assert pair_code_hash == V2_INIT_CODE_HASH
    # the constant the router really uses is the one compiled into its bytecode
    assert V2_INIT_CODE_HASH in load_artifact("UniswapV2Router02").bytecode

    token_a, token_b = deploy_test_tokens(chain, (18, 6))
    pair = create_v2_pair(chain, uniswap, token_a, token_b)
    assert pair.address == v2_pair_address(uniswap.v2_factory, token_a, token_b)
    salt = keccak(bytes.fromhex(pair.token0[2:]) + bytes.fromhex(pair.token1[2:]))
    assert pair.address == create2_address(uniswap.v2_factory, salt, pair_code_hash)


@pytest.mark.parametrize("fee", sorted(V3_FEE_TICK_SPACING))
def test_v3_pool_addresses_match_pool_address_library(
    chain: DevChain, uniswap: UniswapDeployment, fee: int
) -> None:
    assert keccak(load_artifact("UniswapV3Pool").bytecode).hex() == MAINNET_V3_POOL_INIT_CODE_HASH
    assert V3_POOL_INIT_CODE_HASH.hex() == MAINNET_V3_POOL_INIT_CODE_HASH
    assert V3_POOL_INIT_CODE_HASH in load_artifact("QuoterV2").bytecode

    token_a, token_b = deploy_test_tokens(chain, (8, 18))
    pool = create_v3_pool(chain, uniswap, (token_a, token_b), fee, 1 << 96)
    assert pool.address == v3_pool_address(uniswap.v3_factory, token_a, token_b, fee)
    assert pool.tick_spacing == V3_FEE_TICK_SPACING[fee]
    contract = chain.contract(load_artifact("UniswapV3Pool"), pool.address)
    assert contract.functions.tickSpacing().call() == pool.tick_spacing
    assert contract.functions.slot0().call()[:2] == [1 << 96, 0]
    with pytest.raises(InputError, match="exists already"):
        create_v3_pool(chain, uniswap, (token_b, token_a), fee, 2 << 96)
