"""Deploy the real Uniswap V2 and V3 contracts and our test tokens, and build pool states on them.

Everything is sent from the chain's unlocked sender, which owns the factories and holds (and has
approved) whatever test tokens it needs. The records returned are plain addresses; turn them into
web3 contract objects with ``DevChain.contract(load_artifact(name), address)``.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3.contract import Contract
from web3.logs import DISCARD

from arbx.devnet.artifacts import Artifact, load_artifact
from arbx.devnet.chain import DevChain
from arbx.devnet.solc import load_test_contract
from arbx.domain import create2
from arbx.domain.errors import ConfigError, InputError
from arbx.execution.contract import CONTRACT_NAME, locked_build, runtime_matches

# Pair init code hash hardcoded in UniswapV2Library (v2-periphery); mainnet's.
V2_INIT_CODE_HASH = bytes.fromhex(
    "96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"
)
# PoolAddress.POOL_INIT_CODE_HASH (v3-periphery); mainnet's.
V3_POOL_INIT_CODE_HASH = bytes.fromhex(
    "e34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"
)
# Fee (hundredths of a bip) -> tick spacing. 100 is not enabled by v3-core 1.0.1's constructor.
V3_FEE_TICK_SPACING: dict[int, int] = {100: 1, 500: 10, 3000: 60, 10000: 200}
UINT112_MAX = (1 << 112) - 1
MAX_UINT256 = (1 << 256) - 1
TEST_TOKEN_DECIMALS = (6, 8, 18)
_FAR_DEADLINE = 2**40
_SENDER_FUNDING = 1 << 200  # test tokens minted to the sender once: never runs out


@dataclass(frozen=True)
class UniswapDeployment:
    """Addresses of the real Uniswap contracts on a dev chain."""

    weth9: ChecksumAddress
    v2_factory: ChecksumAddress
    v2_router: ChecksumAddress
    v3_factory: ChecksumAddress
    position_manager: ChecksumAddress
    quoter_v2: ChecksumAddress
    swap_router: ChecksumAddress

    def spenders(self) -> tuple[ChecksumAddress, ...]:
        """The contracts that pull tokens from the sender."""
        return (self.v2_router, self.position_manager, self.swap_router)


@dataclass(frozen=True)
class V2Pair:
    """A Uniswap V2 pair and its sorted tokens."""

    address: ChecksumAddress
    token0: ChecksumAddress
    token1: ChecksumAddress


@dataclass(frozen=True)
class V3Pool:
    """A Uniswap V3 pool, its sorted tokens, fee and tick spacing."""

    address: ChecksumAddress
    token0: ChecksumAddress
    token1: ChecksumAddress
    fee: int
    tick_spacing: int


@dataclass(frozen=True)
class V3Position:
    """One NonfungiblePositionManager position: its range, liquidity and the amounts paid."""

    token_id: int
    tick_lower: int
    tick_upper: int
    liquidity: int
    amount0: int
    amount1: int


def sort_tokens(token_a: str, token_b: str) -> tuple[ChecksumAddress, ChecksumAddress]:
    """The two tokens ordered as pairs and pools order them (by address)."""
    a, b = to_checksum_address(token_a), to_checksum_address(token_b)
    if a.lower() == b.lower():
        raise InputError(f"identical tokens {a}")
    return (a, b) if a.lower() < b.lower() else (b, a)


def create2_address(deployer: str, salt: bytes, init_code_hash: bytes) -> ChecksumAddress:
    """The CREATE2 address: keccak256(0xff ++ deployer ++ salt ++ init_code_hash)[12:]."""
    return to_checksum_address(create2.create2_address(deployer, salt, init_code_hash))


def v2_pair_address(
    factory: str, token_a: str, token_b: str, init_code_hash: bytes = V2_INIT_CODE_HASH
) -> ChecksumAddress:
    """UniswapV2Library.pairFor: the pair's address, computed without a call."""
    token0, token1 = sort_tokens(token_a, token_b)
    address = create2.v2_pair_address(factory, token0, token1, "0x" + init_code_hash.hex())
    return to_checksum_address(address)


def v3_pool_address(
    factory: str,
    token_a: str,
    token_b: str,
    fee: int,
    init_code_hash: bytes = V3_POOL_INIT_CODE_HASH,
) -> ChecksumAddress:
    """PoolAddress.computeAddress: the pool's address, computed without a call."""
    token0, token1 = sort_tokens(token_a, token_b)
    address = create2.v3_pool_address(factory, token0, token1, fee, "0x" + init_code_hash.hex())
    return to_checksum_address(address)


def deploy_uniswap(chain: DevChain) -> UniswapDeployment:
    """Deploy WETH9, the V2 factory and router, the V3 factory (four fee tiers) and periphery."""
    zero = "0x" + "00" * 20
    weth = chain.deploy(load_artifact("WETH9"))
    v2_factory = chain.deploy(load_artifact("UniswapV2Factory"), chain.sender)
    v2_router = chain.deploy(load_artifact("UniswapV2Router02"), v2_factory.address, weth.address)
    v3_factory = chain.deploy(load_artifact("UniswapV3Factory"))
    for fee, spacing in V3_FEE_TICK_SPACING.items():
        if v3_factory.functions.feeAmountTickSpacing(fee).call() == 0:
            chain.send(v3_factory.functions.enableFeeAmount(fee, spacing))
    npm = chain.deploy(
        load_artifact("NonfungiblePositionManager"), v3_factory.address, weth.address, zero
    )
    quoter = chain.deploy(load_artifact("QuoterV2"), v3_factory.address, weth.address)
    router = chain.deploy(load_artifact("SwapRouter"), v3_factory.address, weth.address)
    return UniswapDeployment(
        weth9=weth.address,
        v2_factory=v2_factory.address,
        v2_router=v2_router.address,
        v3_factory=v3_factory.address,
        position_manager=npm.address,
        quoter_v2=quoter.address,
        swap_router=router.address,
    )


def token(chain: DevChain, address: str) -> Contract:
    """A TestToken contract object."""
    return chain.contract(load_test_contract("TestToken"), address)


def deploy_token(chain: DevChain, name: str, symbol: str, decimals: int) -> ChecksumAddress:
    """Deploy one TestToken."""
    return chain.deploy(load_test_contract("TestToken"), name, symbol, decimals).address


def deploy_test_tokens(
    chain: DevChain,
    decimals: Sequence[int] = TEST_TOKEN_DECIMALS,
    spenders: Iterable[str] = (),
) -> tuple[ChecksumAddress, ...]:
    """Deploy one TestToken per entry of ``decimals``; fund the sender and approve ``spenders``."""
    addresses = tuple(
        deploy_token(chain, f"Test Token {i} ({d} dec)", f"T{d}x{i}", d)
        for i, d in enumerate(decimals)
    )
    fund_sender(chain, addresses, spenders)
    return addresses


def fund_sender(chain: DevChain, tokens: Iterable[str], spenders: Iterable[str]) -> None:
    """Mint plenty of each test token to the sender and approve every spender for all of it."""
    spender_list = list(spenders)
    calls = []
    for address in tokens:
        contract = token(chain, address)
        calls.append(contract.functions.mint(chain.sender, _SENDER_FUNDING))
        calls.extend(contract.functions.approve(s, MAX_UINT256) for s in spender_list)
    chain.send_all(calls)


# --- Uniswap V2 -------------------------------------------------------------------------------


def create_v2_pair(
    chain: DevChain, uniswap: UniswapDeployment, token_a: str, token_b: str
) -> V2Pair:
    """UniswapV2Factory.createPair; the pair starts empty."""
    factory = chain.contract(load_artifact("UniswapV2Factory"), uniswap.v2_factory)
    chain.send(factory.functions.createPair(token_a, token_b))
    token0, token1 = sort_tokens(token_a, token_b)
    address = to_checksum_address(factory.functions.getPair(token0, token1).call())
    return V2Pair(address=address, token0=token0, token1=token1)


def add_v2_liquidity(chain: DevChain, pair: V2Pair, amount0: int, amount1: int) -> None:
    """Mint test tokens straight to the pair and call ``pair.mint`` for the sender."""
    contract = chain.contract(load_artifact("UniswapV2Pair"), pair.address)
    chain.send_all(
        [
            token(chain, pair.token0).functions.mint(pair.address, amount0),
            token(chain, pair.token1).functions.mint(pair.address, amount1),
            contract.functions.mint(chain.sender),
        ]
    )


def set_v2_reserves(chain: DevChain, pair: V2Pair, reserve0: int, reserve1: int) -> None:
    """Make the pair's balances exactly ``reserve0``/``reserve1`` (mint or burn), then ``sync``."""
    if not (0 <= reserve0 <= UINT112_MAX and 0 <= reserve1 <= UINT112_MAX):
        raise InputError("V2 reserves must fit in uint112")
    contracts = [token(chain, pair.token0), token(chain, pair.token1)]
    balances = chain.call_all(c.functions.balanceOf(pair.address) for c in contracts)
    calls = []
    for contract, balance, target in zip(contracts, balances, (reserve0, reserve1), strict=True):
        if target > balance:
            calls.append(contract.functions.mint(pair.address, target - balance))
        elif target < balance:
            calls.append(contract.functions.burn(pair.address, balance - target))
    calls.append(chain.contract(load_artifact("UniswapV2Pair"), pair.address).functions.sync())
    chain.send_all(calls)


# --- Uniswap V3 -------------------------------------------------------------------------------


def create_v3_pool(
    chain: DevChain,
    uniswap: UniswapDeployment,
    tokens: tuple[str, str],
    fee: int,
    sqrt_price_x96: int,
) -> V3Pool:
    """Create a new pool at ``sqrt_price_x96`` (NPM.createAndInitializePoolIfNecessary)."""
    if fee not in V3_FEE_TICK_SPACING:
        raise InputError(f"unknown V3 fee tier {fee}")
    token0, token1 = sort_tokens(*tokens)
    factory = chain.contract(load_artifact("UniswapV3Factory"), uniswap.v3_factory)
    if int(factory.functions.getPool(token0, token1, fee).call(), 16) != 0:
        raise InputError(f"a pool {token0}/{token1}/{fee} exists already (at another price)")
    npm = chain.contract(load_artifact("NonfungiblePositionManager"), uniswap.position_manager)
    chain.send(
        npm.functions.createAndInitializePoolIfNecessary(token0, token1, fee, sqrt_price_x96)
    )
    address = to_checksum_address(factory.functions.getPool(token0, token1, fee).call())
    if int(address, 16) == 0:
        raise ConfigError(f"factory has no pool for {token0}/{token1}/{fee}")
    return V3Pool(address, token0, token1, fee, V3_FEE_TICK_SPACING[fee])


def mint_v3_positions(
    chain: DevChain,
    uniswap: UniswapDeployment,
    pool: V3Pool,
    ranges: Sequence[tuple[int, int, int, int]],
) -> list[V3Position]:
    """NPM.mint one position per ``(tick_lower, tick_upper, amount0_desired, amount1_desired)``."""
    npm = chain.contract(load_artifact("NonfungiblePositionManager"), uniswap.position_manager)
    calls = [
        npm.functions.mint(
            # MintParams(token0, token1, fee, tickLower, tickUpper, amount0Desired,
            #            amount1Desired, amount0Min, amount1Min, recipient, deadline)
            (
                pool.token0,
                pool.token1,
                pool.fee,
                lower,
                upper,
                amount0,
                amount1,
                0,
                0,
                chain.sender,
                _FAR_DEADLINE,
            )
        )
        for lower, upper, amount0, amount1 in ranges
    ]
    positions = []
    event = npm.events.IncreaseLiquidity()
    for (lower, upper, _, _), receipt in zip(ranges, chain.send_all(calls), strict=True):
        (increase,) = [
            e for e in event.process_receipt(receipt, errors=DISCARD) if e["address"] == npm.address
        ]
        args = increase["args"]
        positions.append(
            V3Position(
                token_id=args["tokenId"],
                tick_lower=lower,
                tick_upper=upper,
                liquidity=args["liquidity"],
                amount0=args["amount0"],
                amount1=args["amount1"],
            )
        )
    return positions


def decrease_v3_liquidity(
    chain: DevChain, uniswap: UniswapDeployment, position: V3Position, liquidity: int
) -> V3Position:
    """NPM.decreaseLiquidity: take ``liquidity`` out of the position (tokens stay owed to it)."""
    if not 0 < liquidity <= position.liquidity:
        raise InputError(f"cannot remove {liquidity} of {position.liquidity} liquidity")
    npm = chain.contract(load_artifact("NonfungiblePositionManager"), uniswap.position_manager)
    # DecreaseLiquidityParams(tokenId, liquidity, amount0Min, amount1Min, deadline)
    chain.send(npm.functions.decreaseLiquidity((position.token_id, liquidity, 0, 0, _FAR_DEADLINE)))
    return replace(position, liquidity=position.liquidity - liquidity)


def deploy_executor_on(chain: DevChain, weth: str) -> Contract:
    """Deploy the shipped executor from the chain's sender (its owner) for ``weth``."""
    build = locked_build()
    contract = chain.deploy(Artifact(CONTRACT_NAME, build.abi, build.bytecode), weth)
    if not runtime_matches(bytes(chain.w3.eth.get_code(contract.address))):
        raise ConfigError(f"deployed executor at {contract.address} is not the shipped code")
    return contract
