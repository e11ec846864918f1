"""Attacks on the executor's inventory, on anvil with the real Uniswap contracts: a fake pool in
a route that sends nothing cannot spend tokens the executor holds, a token whose transfers call
back into the executor cannot re-enter it, and a coinbase that refuses ETH makes the whole trade
revert with nothing paid and nothing lost.
"""

from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3.contract import Contract

from arbx.devnet.solc import load_test_contract
from arbx.domain.amm.v2 import get_amount_out
from arbx.domain.profit import builder_payment, kept_profit
from arbx.domain.sizing import optimize
from arbx.execution.route_codec import KIND_V2, KIND_V3, ExecuteCall, ExecutorHop, encode_execute
from tests.integration.executor_world import (
    COINBASE,
    ETHER,
    Market,
    add_v2,
    add_v3,
    make_route,
    pay,
    read_pools,
    revert_of,
    running_market,
    send,
)

pytestmark = pytest.mark.integration

HELD_A = 5_000 * 10**18  # inventory the executor holds besides WETH
HELD_B = 5_000 * 10**8
BUILDER_BPS = 2_500


@pytest.fixture(scope="module")
def market() -> Iterator[Market]:
    """Own anvil with the executor's market; the executor holds A and B."""
    with running_market() as built:
        built.chain.send(pay(built, built.a, built.executor.address, HELD_A))
        built.chain.send(pay(built, built.b, built.executor.address, HELD_B))
        yield built


def holdings(m: Market, *holders: str) -> list[int]:
    """WETH, A, B and ETH of each holder."""
    return [
        value
        for h in holders
        for value in (
            m.balance(m.weth, h),
            m.balance(m.a, h),
            m.balance(m.b, h),
            m.chain.w3.eth.get_balance(to_checksum_address(h)),
        )
    ]


def status(receipt: Any) -> int:
    """A raw receipt's status (1 mined, 0 reverted)."""
    return int(receipt["status"], 16)


def fake(m: Market, token_x: str, token_y: str) -> Contract:
    """A FakePair over two tokens: its swaps send nothing."""
    token0, token1 = sorted((token_x, token_y), key=str.lower)
    return m.chain.deploy(load_test_contract("FakePair"), token0, token1)


def v2_out(m: Market, name: str, token_in: str, amount: int) -> int:
    """What the named V2 pair gives for ``amount`` of ``token_in`` now."""
    pool = read_pools(m, (name,))[m.pools[name].address]
    info = m.pools[name]
    r_in, r_out = (pool.reserve0, pool.reserve1)  # type: ignore[union-attr]
    if token_in != info.token0:
        r_in, r_out = r_out, r_in
    return get_amount_out(amount, r_in, r_out, info.fee)


def fake_first_v2(m: Market) -> tuple[ExecuteCall, str]:
    """The fake pair lends nothing; the real pair after it would be paid with held A."""
    pair, real = fake(m, m.weth, m.a), m.pools["v2_a"]
    middle = 2_000 * 10**18
    back = v2_out(m, "v2_a", m.a, middle)
    hops = (
        ExecutorHop(
            pair.address, m.weth, KIND_V2, m.weth == pair.functions.token0().call(), middle
        ),
        ExecutorHop(real.address, m.a, KIND_V2, real.token0 == m.a, back),
    )
    return ExecuteCall(m.weth, ETHER // 2, 1, 0, hops), pair.address


def fake_inner_v2(m: Market) -> tuple[ExecuteCall, str]:
    """A real flash buys A; the fake pair 'sells' it for B it never sends; a V3 pool would be
    paid with held B."""
    first, pair, last = m.pools["v2_b"], fake(m, m.a, m.b), m.pools["v3_bw"]
    amount_in = ETHER // 10
    bought = v2_out(m, "v2_b", m.weth, amount_in)
    hops = (
        ExecutorHop(first.address, m.weth, KIND_V2, first.token0 == m.weth, bought),
        ExecutorHop(
            pair.address, m.a, KIND_V2, m.a == pair.functions.token0().call(), 2_000 * 10**8
        ),
        ExecutorHop(last.address, m.b, KIND_V3, last.token0 == m.b, 0),
    )
    return ExecuteCall(m.weth, amount_in, 1, 0, hops), pair.address


def fake_first_v3(m: Market) -> tuple[ExecuteCall, str]:
    """The fake pool claims to have sent B it never sent; a V3 pool would be paid with held B."""
    pool, last = fake(m, m.weth, m.b), m.pools["v3_bw"]
    amount_in = 2_000 * 10**8  # the fake claims this much B out
    hops = (
        ExecutorHop(pool.address, m.weth, KIND_V3, m.weth == pool.functions.token0().call(), 0),
        ExecutorHop(last.address, m.b, KIND_V3, last.token0 == m.b, 0),
    )
    return ExecuteCall(m.weth, amount_in, 1, 0, hops), pool.address


ATTACKS = {
    "first V2 lends nothing": fake_first_v2,
    "inner V2 sends nothing": fake_inner_v2,
    "first V3 claims an output": fake_first_v3,
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_fake_pool_cannot_spend_held_tokens(fresh: Market, attack: str) -> None:
    m = fresh
    call, pool = ATTACKS[attack](m)
    reason = revert_of(m.chain, m.owner, m.executor.address, call.encode())
    assert reason == "BadDelta()"
    before = holdings(m, m.executor.address, pool)
    assert status(send(m.chain, m.owner, m.executor.address, call.encode(), check=False)) == 0
    assert holdings(m, m.executor.address, pool) == before
    assert m.balance(m.a, m.executor.address) == HELD_A
    assert m.balance(m.b, m.executor.address) == HELD_B


# --- tokens whose transfers call back into the executor ---------------------------------------


def sized_data(m: Market, names: tuple[str, ...], bps: int) -> tuple[bytes, int]:
    """``execute`` calldata for the sized route through ``names`` from WETH, and what it keeps."""
    route, pools = make_route(m, names, m.weth), read_pools(m, names)
    sized = optimize(route.hops(pools))
    assert sized is not None
    assert sized.profit > 0
    kept = kept_profit(sized.profit, bps)
    return encode_execute(route, pools, sized, m.weth, kept, bps), kept


def hook_market(m: Market, v3: bool) -> tuple[Contract, tuple[str, ...]]:
    """A HookToken with a V2 pair at 2,100 per WETH, and a V2 pair or a V3 pool at 2,000."""
    hook = m.chain.deploy(load_test_contract("HookToken"))
    add_v2(m, "k_x", m.fork_factory, (m.weth, hook.address), (500 * ETHER, 1_050_000 * ETHER))
    if not v3:
        reserves = (500 * ETHER, 10**6 * ETHER)
        add_v2(m, "k_y", m.uniswap.v2_factory, (m.weth, hook.address), reserves)
        return hook, ("k_x", "k_y")
    m.chain.send(hook.functions.mint(m.owner, 10**9 * ETHER))
    m.chain.send(hook.functions.approve(m.uniswap.position_manager, 2**256 - 1))
    add_v3(m, "k_v3", (m.weth, hook.address), Fraction(1_900), 3000, 300 * ETHER)
    return hook, ("k_x", "k_v3")


def reentry(m: Market, kind: str, data: bytes) -> bytes:
    """The calldata a hook sends into the executor."""
    fns = m.executor.functions
    route = data[4:]
    call = {
        "V2 flash callback": fns.uniswapV2Call(m.executor.address, 0, ETHER, route),
        "V3 swap callback": fns.uniswapV3SwapCallback(ETHER, -ETHER, route),
        "withdraw": fns.withdraw(m.weth, m.stranger, ETHER),
    }.get(kind)
    return data if call is None else bytes.fromhex(call._encode_transaction_data()[2:])


REENTRIES = ["V2 flash callback", "V3 swap callback", "withdraw", "execute"]


@pytest.mark.parametrize("v3", [False, True], ids=["V2-V2", "V2-V3"])
@pytest.mark.parametrize("kind", REENTRIES)
def test_a_transfer_hook_cannot_reenter(fresh: Market, kind: str, v3: bool) -> None:
    m = fresh
    hook, names = hook_market(m, v3)
    data, kept = sized_data(m, names, 0)
    holders = (m.executor.address, m.stranger, *(m.pools[n].address for n in names))
    tokens = (m.weth, m.a, m.b, hook.address)

    def balances() -> list[int]:
        return [m.balance(t, h) for h in holders for t in tokens]

    # strict: the refused re-entry fails the transfer, so the whole trade
    m.chain.send(hook.functions.setHook(m.executor.address, reentry(m, kind, data), True))
    assert revert_of(m.chain, m.owner, m.executor.address, data)
    before = balances()
    assert status(send(m.chain, m.owner, m.executor.address, data, check=False)) == 0
    assert balances() == before

    # lenient: every re-entry is refused and the trade is exactly what was sized
    m.chain.send(hook.functions.setHook(m.executor.address, reentry(m, kind, data), False))
    weth = m.balance(m.weth, m.executor.address)
    send(m.chain, m.owner, m.executor.address, data)
    calls = hook.functions.hookCalls().call()
    assert calls >= len(names)  # a transfer into and out of the executor per hop at least
    assert hook.functions.hookFailures().call() == calls
    assert m.balance(m.weth, m.executor.address) - weth == kept
    assert m.balance(m.weth, m.stranger) == before[tokens.index(m.weth) + len(tokens)]
    assert m.balance(m.a, m.executor.address) == HELD_A
    assert m.balance(hook.address, m.executor.address) == 0


# --- a coinbase that refuses ETH --------------------------------------------------------------


def coinbase_gain(m: Market, coinbase: str, receipt: Any) -> int:
    """What ``coinbase`` received in the receipt's block besides the transaction's priority fee."""
    block = int(receipt["blockNumber"], 16)
    header = m.chain.rpc("eth_getBlockByNumber", hex(block), False)
    tip = int(receipt["effectiveGasPrice"], 16) - int(header["baseFeePerGas"], 16)
    w3 = m.chain.w3
    address = to_checksum_address(coinbase)
    gained = w3.eth.get_balance(address, block) - w3.eth.get_balance(address, block - 1)
    return gained - tip * int(receipt["gasUsed"], 16)


@pytest.fixture
def rejecting(fresh: Market) -> Iterator[ChecksumAddress]:
    """The block's coinbase is a contract that refuses ETH (restored after the test)."""
    address = fresh.chain.deploy(load_test_contract("RejectEth")).address
    fresh.chain.rpc("anvil_setCoinbase", address)
    yield address
    fresh.chain.rpc("anvil_setCoinbase", COINBASE)


def test_a_coinbase_that_refuses_eth_reverts_the_whole_trade(
    fresh: Market, rejecting: ChecksumAddress
) -> None:
    m, names = fresh, ("v2_b", "v2_a")
    data, _ = sized_data(m, names, BUILDER_BPS)
    assert revert_of(m.chain, m.owner, m.executor.address, data) == "EthTransferFailed()"
    holders = (m.executor.address, *(m.pools[n].address for n in names))
    before = holdings(m, *holders)
    receipt = send(m.chain, m.owner, m.executor.address, data, check=False)
    assert status(receipt) == 0
    assert holdings(m, *holders) == before
    assert coinbase_gain(m, rejecting, receipt) == 0
    # with no share to pay, the same coinbase does not stand in the way
    data, kept = sized_data(m, names, 0)
    weth = m.balance(m.weth, m.executor.address)
    receipt = send(m.chain, m.owner, m.executor.address, data)
    assert m.balance(m.weth, m.executor.address) - weth == kept
    assert coinbase_gain(m, rejecting, receipt) == 0
    assert builder_payment(kept, BUILDER_BPS) > 0  # the first call did have a share to pay
