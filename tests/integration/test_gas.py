"""Gas of one swap hop on the real contracts, as mined transactions: inputs for the profit model.

Every figure is a receipt's ``gasUsed`` of a fresh transaction in a new block (time moves on, so the
pools' price oracles update as they do on a live chain); "execution" removes the intrinsic part
(21,000 and the calldata). Pools are warmed by an earlier swap so that their oracle slots are not
written for the first time. Ticks are measured both crossed for the first time (their "outside"
slots go from zero to non-zero, the dearest case) and crossed again.
"""

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from eth_typing import ChecksumAddress
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from arbx.devnet.artifacts import load_artifact
from arbx.devnet.chain import DevChain
from arbx.devnet.deploy import (
    UniswapDeployment,
    V3Pool,
    add_v2_liquidity,
    create_v2_pair,
    create_v3_pool,
    mint_v3_positions,
    token,
)
from arbx.domain.amm.tick_math import get_sqrt_ratio_at_tick
from arbx.domain.profit import GasModel

pytestmark = pytest.mark.integration

FAR_DEADLINE = 2**40
CROSSINGS = (0, 1, 2, 5, 10)
LADDER_SPACING = 60


def execution_gas(receipt: TxReceipt, call: ContractFunction) -> int:
    """``gasUsed`` less the intrinsic cost: 21,000 and 4 (zero) or 16 gas per calldata byte."""
    data = bytes.fromhex(call._encode_transaction_data().removeprefix("0x"))
    return receipt["gasUsed"] - 21_000 - sum(4 if byte == 0 else 16 for byte in data)


def next_block_later(chain: DevChain) -> None:
    """Let 12 seconds pass, so the next transaction's block has a new timestamp."""
    chain.rpc("evm_increaseTime", 12)


@pytest.fixture
def restore(chain: DevChain) -> Iterator[None]:
    """Undo whatever the test mined."""
    snapshot = chain.snapshot()
    yield
    chain.revert(snapshot)


def test_v2_swap_gas(
    chain: DevChain,
    uniswap: UniswapDeployment,
    tokens: dict[int, ChecksumAddress],
    restore: None,
) -> None:
    pair = create_v2_pair(chain, uniswap, tokens[18], tokens[6])
    add_v2_liquidity(chain, pair, 10**24, 10**24)
    contract = chain.contract(load_artifact("UniswapV2Pair"), pair.address)
    router = chain.contract(load_artifact("UniswapV2Router02"), uniswap.v2_router)
    path = [pair.token0, pair.token1]
    warm_up = router.functions.swapExactTokensForTokens(10**18, 0, path, chain.sender, FAR_DEADLINE)
    next_block_later(chain)
    chain.send(warm_up)

    next_block_later(chain)
    via_router = chain.send(warm_up)
    # what an executor does per hop: pay the pair, then call pair.swap
    transfer = token(chain, pair.token0).functions.transfer(pair.address, 10**18)
    next_block_later(chain)
    paid = chain.send(transfer)
    reserves = contract.functions.getReserves().call()
    out = 10**18 * 997 * reserves[1] // (reserves[0] * 1000 + 10**18 * 997)
    pair_swap = contract.functions.swap(0, out, chain.sender, b"")
    next_block_later(chain)
    swapped = chain.send(pair_swap)

    figures = {
        "router swapExactTokensForTokens, tx": via_router["gasUsed"],
        "token.transfer to the pair, execution": execution_gas(paid, transfer),
        "pair.swap, tx": swapped["gasUsed"],
        "pair.swap, execution": execution_gas(swapped, pair_swap),
    }
    print("\n  V2\n" + "\n".join(f"  {name}: {gas:,}" for name, gas in figures.items()))
    assert 40_000 < figures["pair.swap, tx"] < 120_000
    assert 20_000 < figures["pair.swap, execution"] < figures["pair.swap, tx"]
    assert 60_000 < figures["router swapExactTokensForTokens, tx"] < 180_000


@pytest.fixture(scope="module")
def tick_ladder(
    chain: DevChain, uniswap: UniswapDeployment, tokens: dict[int, ChecksumAddress]
) -> V3Pool:
    """A 0.3% pool at tick 0: full-range liquidity, initialized ticks at 60, 120, ..., 720."""
    pool = create_v3_pool(chain, uniswap, (tokens[18], tokens[8]), 3000, 1 << 96)
    full = (-887220, 887220, 10**24, 10**24)
    ladder = [(LADDER_SPACING * k, LADDER_SPACING * (k + 1), 10**22, 10**22) for k in range(1, 12)]
    mint_v3_positions(chain, uniswap, pool, [full, *ladder])
    return pool


def exact_input(router: Contract, chain: DevChain, pool: V3Pool, up: bool, limit: int) -> Any:
    """SwapRouter.exactInputSingle of an unbounded amount that the price limit stops."""
    token_in, token_out = (pool.token1, pool.token0) if up else (pool.token0, pool.token1)
    return router.functions.exactInputSingle(
        (token_in, token_out, pool.fee, chain.sender, FAR_DEADLINE, 10**30, 0, limit)
    )


def measure_ladder(
    chain: DevChain, uniswap: UniswapDeployment, pool: V3Pool
) -> dict[int, tuple[int, int, int]]:
    """Ticks crossed -> (tx gas, execution gas, QuoterV2 gasEstimate), each from the same state."""
    router = chain.contract(load_artifact("SwapRouter"), uniswap.swap_router)
    quoter = chain.contract(load_artifact("QuoterV2"), uniswap.quoter_v2)
    figures = {}
    for crossings in CROSSINGS:
        # price up to the middle of the spacing after the last tick to cross
        limit = get_sqrt_ratio_at_tick(LADDER_SPACING * crossings + LADDER_SPACING // 2)
        _, _, crossed, estimate = quoter.functions.quoteExactInputSingle(
            (pool.token1, pool.token0, 10**30, pool.fee, limit)
        ).call()
        assert crossed == crossings
        snapshot = chain.snapshot()
        call = exact_input(router, chain, pool, True, limit)
        next_block_later(chain)
        receipt = chain.send(call)
        chain.revert(snapshot)
        figures[crossings] = (receipt["gasUsed"], execution_gas(receipt, call), estimate)
    return figures


def test_v3_swap_gas_by_ticks_crossed(
    chain: DevChain, uniswap: UniswapDeployment, tick_ladder: V3Pool, restore: None
) -> None:
    pool = tick_ladder
    router = chain.contract(load_artifact("SwapRouter"), uniswap.swap_router)
    # warm the oracle with a swap that crosses nothing, then measure first crossings
    next_block_later(chain)
    chain.send(exact_input(router, chain, pool, True, get_sqrt_ratio_at_tick(10)))
    next_block_later(chain)
    chain.send(exact_input(router, chain, pool, False, get_sqrt_ratio_at_tick(0)))
    first = measure_ladder(chain, uniswap, pool)
    # cross the whole ladder up and back down: every tick's "outside" slots become non-zero
    next_block_later(chain)
    chain.send(exact_input(router, chain, pool, True, get_sqrt_ratio_at_tick(800)))
    next_block_later(chain)
    chain.send(exact_input(router, chain, pool, False, get_sqrt_ratio_at_tick(0)))
    again = measure_ladder(chain, uniswap, pool)

    print("\n  V3 SwapRouter.exactInputSingle: tx / execution / QuoterV2 gasEstimate")
    for name, figures in (("first crossing", first), ("crossed before", again)):
        for crossings, (tx, execution, estimate) in figures.items():
            print(f"  {name}, {crossings:>2} ticks: {tx:,} / {execution:,} / {estimate:,}")
    for figures in (first, again):
        assert 80_000 < figures[0][0] < 200_000
        for fewer, more in itertools.pairwise(CROSSINGS):
            per_tick = (figures[more][0] - figures[fewer][0]) / (more - fewer)
            assert 5_000 < per_tick < 80_000, (fewer, more, per_tick)
    assert again[10][0] < first[10][0]  # re-crossing writes non-zero over non-zero: cheaper
    # the profit model's price of a tick crossed before
    per_tick = (again[10][1] - again[0][1]) / 10
    model = GasModel().v3_tick_crossed
    assert abs(model - per_tick) / per_tick < 0.3, (model, per_tick)
