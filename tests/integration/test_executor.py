"""The executor contract on anvil with the real Uniswap contracts: every route shape pays exactly
the sized profit and the builder its share; owners, callbacks, fake pools, hostile tokens and a
profit under the minimum all revert and change nothing.

Gas per route shape is printed (``pytest -s``) for the profit model's calibration.
"""

from collections.abc import Sequence
from fractions import Fraction

import pytest
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3.contract import Contract

from arbx.devnet.artifacts import load_artifact
from arbx.devnet.chain import DevChain, RawReceipt
from arbx.devnet.solc import load_test_contract
from arbx.domain.profit import GasModel, builder_payment, kept_profit
from arbx.domain.sizing import Sized, optimize
from arbx.execution.contract import locked_build, runtime_matches
from arbx.execution.route_codec import (
    KIND_V2,
    KIND_V3,
    ExecuteCall,
    ExecutorHop,
    decode_execute,
    encode_execute,
)
from tests.integration.executor_world import (
    COINBASE,
    DUST,
    ETHER,
    Market,
    add_v2,
    add_v3,
    make_route,
    read_pools,
    revert_of,
    send,
)

pytestmark = pytest.mark.integration

BUILDER_BPS = 2_500
SHAPES: dict[str, tuple[str, ...]] = {
    "V2-V2": ("v2_b", "v2_a"),
    "V2-V3": ("v2_b", "v3_b"),
    "V3-V2": ("v3_a", "v2_a"),
    "V3-V3": ("v3_a", "v3_b"),
    "V2-V3-V2": ("v2_b", "v3_ab", "v2_bw"),
    "V3-V2-V3": ("v3_a", "v2_ab", "v3_bw"),
}
IDLE_WETH = 5 * ETHER  # unswept profit the attacks try to reach


@pytest.fixture
def idle(fresh: Market) -> Market:
    """The market with WETH sitting in the executor."""
    weth = fresh.erc20(fresh.weth)
    fresh.chain.send(weth.functions.transfer(fresh.executor.address, IDLE_WETH - DUST))
    return fresh


def sized_call(m: Market, names: tuple[str, ...], base: str) -> Sized:
    """The optimal size of the route through ``names`` on the chain's current states."""
    pools = read_pools(m, names)
    sized = optimize(make_route(m, names, base).hops(pools))
    assert sized is not None, names
    assert sized.profit > 0, names
    return sized


def calldata(m: Market, names: tuple[str, ...], base: str, bps: int, min_extra: int = 0) -> bytes:
    """``execute`` calldata for the sized route, keeping at least its profit + ``min_extra``."""
    route, pools = make_route(m, names, base), read_pools(m, names)
    sized = sized_call(m, names, base)
    return encode_execute(
        route, pools, sized, base, kept_profit(sized.profit, bps) + min_extra, bps
    )


def coinbase_gain(chain: DevChain, receipt: RawReceipt) -> int:
    """What the block's coinbase received besides the transaction's priority fee."""
    block = int(receipt["blockNumber"], 16)
    header = chain.rpc("eth_getBlockByNumber", hex(block), False)
    tip = int(receipt["effectiveGasPrice"], 16) - int(header["baseFeePerGas"], 16)
    before = chain.w3.eth.get_balance(COINBASE, block - 1)
    after = chain.w3.eth.get_balance(COINBASE, block)
    return after - before - tip * int(receipt["gasUsed"], 16)


def balances(m: Market, holders: Sequence[str]) -> list[int]:
    """WETH, A and B of each holder, and each holder's ETH."""
    tokens = (m.weth, m.a, m.b)
    return [m.balance(t, h) for h in holders for t in tokens] + [
        m.chain.w3.eth.get_balance(to_checksum_address(h)) for h in holders
    ]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_route_realizes_the_sized_profit_and_pays_the_builder(fresh: Market, shape: str) -> None:
    m, names = fresh, SHAPES[shape]
    route, pools = make_route(m, names, m.weth), read_pools(m, names)
    sized = sized_call(m, names, m.weth)
    payment = builder_payment(sized.profit, BUILDER_BPS)
    kept = sized.profit - payment
    data = encode_execute(route, pools, sized, m.weth, kept, BUILDER_BPS)  # exactly the minimum
    before = m.balance(m.weth, m.executor.address)
    m.chain.rpc("evm_increaseTime", 12)  # a later block, as on a live chain

    receipt = send(m.chain, m.owner, m.executor.address, data)

    assert m.balance(m.weth, m.executor.address) - before == kept
    assert coinbase_gain(m.chain, receipt) == payment > 0
    assert kept + payment == sized.profit
    for address in route.tokens[1:-1]:  # nothing of the intermediate tokens stays behind
        assert m.balance(address, m.executor.address) == 0
    spenders = [info.address for info in m.pools.values()] + list(m.uniswap.spenders())
    for address in (m.weth, m.a, m.b):  # and no approval was ever given
        contract = m.erc20(address)
        assert all(
            contract.functions.allowance(m.executor.address, s).call() == 0 for s in spenders
        )
    gas = int(receipt["gasUsed"], 16)
    crossed = "/".join(str(c) for c in sized.ticks_crossed)
    print(f"\n  executor {shape}: {gas:,} gas (tx), ticks crossed {crossed}, {len(data)} bytes")
    assert gas < 120_000 * len(names) + 60_000
    # the profit model prices this route within 20% of what it really cost
    modelled = GasModel().units([pools[a] for a in route.pools], sized.ticks_crossed)
    assert abs(modelled - gas) / gas < 0.2, (modelled, gas)


def test_calldata_is_the_abi_encoding(market: Market) -> None:
    names = SHAPES["V2-V3-V2"]
    data = calldata(market, names, market.weth, BUILDER_BPS)
    call = decode_execute(data)
    assert [h.kind for h in call.hops] == [KIND_V2, KIND_V3, KIND_V2]
    assert call.hops[1].amount_out == 0
    fn = market.executor.functions.execute(
        call.base,
        call.amount_in,
        call.min_profit,
        call.builder_share_bps,
        [h.as_tuple() for h in call.hops],
    )
    assert fn._encode_transaction_data() == "0x" + data.hex()


def test_deployed_code_is_the_locked_code(market: Market) -> None:
    code = bytes(market.chain.w3.eth.get_code(market.executor.address))
    assert runtime_matches(code)
    flipped = bytearray(code)
    flipped[-1] ^= 1
    assert not runtime_matches(bytes(flipped))
    assert market.executor.functions.owner().call() == market.owner
    assert market.executor.functions.weth().call() == market.weth


def test_only_the_owner_executes_and_withdraws(fresh: Market) -> None:
    m, executor = fresh, fresh.executor
    data = calldata(m, SHAPES["V2-V2"], m.weth, BUILDER_BPS)
    withdraw = executor.functions.withdraw(m.weth, m.stranger, 1)._encode_transaction_data()
    withdraw_eth = executor.functions.withdrawEth(m.stranger, 1)._encode_transaction_data()
    for call in (data, bytes.fromhex(withdraw[2:]), bytes.fromhex(withdraw_eth[2:])):
        assert revert_of(m.chain, m.stranger, executor.address, call) == "NotOwner()"
    before = balances(m, [executor.address])
    assert int(send(m.chain, m.stranger, executor.address, data, check=False)["status"], 16) == 0
    assert balances(m, [executor.address]) == before
    send(m.chain, m.owner, executor.address, data)  # the same call from the owner goes through


def test_owner_withdraws_tokens_and_eth(idle: Market) -> None:
    m, executor = idle, idle.executor
    m.chain.send(executor.functions.withdraw(m.weth, m.stranger, 2 * ETHER))
    assert m.balance(m.weth, executor.address) == IDLE_WETH - 2 * ETHER
    assert m.balance(m.weth, m.stranger) == 2 * ETHER
    m.chain.rpc("anvil_setBalance", executor.address, hex(ETHER))
    eth_before = m.chain.w3.eth.get_balance(m.stranger)
    m.chain.send(executor.functions.withdrawEth(m.stranger, ETHER))
    assert m.chain.w3.eth.get_balance(m.stranger) - eth_before == ETHER
    # plain ETH is refused from anyone but WETH
    assert revert_of(m.chain, m.owner, executor.address, b"", value=1) == "OnlyWeth()"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"hops": 1}, "BadRoute()"),
        ({"base": "a"}, "BadRoute()"),
        ({"bps": 10_001}, "BadShare()"),
        ({"kind": 7}, "BadRoute()"),
    ],
)
def test_malformed_arguments_revert(
    market: Market, change: dict[str, int | str], reason: str
) -> None:
    m = market
    call = decode_execute(calldata(m, SHAPES["V2-V2"], m.weth, BUILDER_BPS))
    hops = list(call.hops)
    if "hops" in change:
        hops = hops[:1]
    if "kind" in change:
        first = hops[0]
        hops[0] = ExecutorHop(first.pool, first.token_in, 7, first.zero_for_one, first.amount_out)
    bad = ExecuteCall(
        base=m.a if change.get("base") == "a" else call.base,
        amount_in=call.amount_in,
        min_profit=call.min_profit,
        builder_share_bps=int(change.get("bps", call.builder_share_bps)),
        hops=tuple(hops),
    )
    assert revert_of(m.chain, m.owner, m.executor.address, bad.encode()) == reason


def test_builder_share_needs_a_weth_base(fresh: Market) -> None:
    m, names = fresh, ("v2_a", "v2_b")  # A -> WETH -> A
    refused = calldata(m, names, m.a, 1_000)
    assert revert_of(m.chain, m.owner, m.executor.address, refused) == "BuilderPaymentNeedsWeth()"
    sized = sized_call(m, names, m.a)
    receipt = send(m.chain, m.owner, m.executor.address, calldata(m, names, m.a, 0))
    assert m.balance(m.a, m.executor.address) == sized.profit  # it held no A before
    assert coinbase_gain(m.chain, receipt) == 0


def test_profit_under_the_minimum_reverts_and_changes_nothing(fresh: Market) -> None:
    m, names = fresh, SHAPES["V2-V3"]
    sized = sized_call(m, names, m.weth)
    kept = kept_profit(sized.profit, BUILDER_BPS)
    data = calldata(m, names, m.weth, BUILDER_BPS, min_extra=1)
    reason = revert_of(m.chain, m.owner, m.executor.address, data)
    assert reason == f"ProfitTooLow({kept}, {kept + 1})"
    holders = [m.executor.address, *(m.pools[n].address for n in names)]
    before = balances(m, holders)
    receipt = send(m.chain, m.owner, m.executor.address, data, check=False)
    assert int(receipt["status"], 16) == 0
    assert balances(m, holders) == before
    assert coinbase_gain(m.chain, receipt) == 0


# --- callbacks --------------------------------------------------------------------------------


def fake_pair(m: Market) -> Contract:
    """A FakePair over WETH/A."""
    token0, token1 = sorted((m.weth, m.a), key=str.lower)
    return m.chain.deploy(load_test_contract("FakePair"), token0, token1)


def callback_call(m: Market, name: str, route_data: bytes) -> tuple[Contract, str]:
    """(the contract, its calldata) for calling callback ``name`` of the executor directly."""
    executor, amount = m.executor, ETHER
    if name == "uniswapV3SwapCallback":
        fn = executor.functions.uniswapV3SwapCallback(amount, -amount, route_data)
    else:
        fn = getattr(executor.functions, name)(executor.address, 0, amount, route_data)
    return executor, fn._encode_transaction_data()


@pytest.mark.parametrize("caller", ["owner", "stranger", "contract"])
@pytest.mark.parametrize("callback", ["uniswapV2Call", "pancakeCall", "uniswapV3SwapCallback"])
def test_callbacks_refuse_direct_calls(idle: Market, caller: str, callback: str) -> None:
    m = idle
    route_data = calldata(m, SHAPES["V2-V2"], m.weth, BUILDER_BPS)[4:]  # a genuine route
    if caller == "contract":
        fake, target = fake_pair(m), m.executor.address
        fn = {
            "uniswapV2Call": fake.functions.callV2(target, target, 0, ETHER, route_data),
            "pancakeCall": fake.functions.callPancake(target, target, 0, ETHER, route_data),
            "uniswapV3SwapCallback": fake.functions.callV3(target, ETHER, -ETHER, route_data),
        }[callback]
        to, data, sender = fake.address, fn._encode_transaction_data(), m.stranger
    else:
        contract, data = callback_call(m, callback, route_data)
        to, sender = contract.address, m.owner if caller == "owner" else m.stranger
    payload = bytes.fromhex(data[2:])
    assert revert_of(m.chain, sender, to, payload) == "UnexpectedCallback()"
    assert int(send(m.chain, sender, to, payload, check=False)["status"], 16) == 0
    assert m.balance(m.weth, m.executor.address) == IDLE_WETH


FAKE_CASES = {
    # where the fake sits, its kind, tampered data?, calls twice?, V3 claim (x input), reason
    "first V2, echoes the route": (0, KIND_V2, False, False, 0, "BadDelta()"),
    "first V2, tampered route": (0, KIND_V2, True, False, 0, "UnexpectedCallback()"),
    "first V3, claims more": (0, KIND_V3, False, False, 10, "BadDelta()"),
    "first V3, echoes the route": (
        0,
        KIND_V3,
        False,
        False,
        0,
        "UniswapV2: INSUFFICIENT_INPUT_AMOUNT",
    ),
    "first V3, tampered route": (0, KIND_V3, True, False, 0, "UnexpectedCallback()"),
    "inner V3, claims more": (1, KIND_V3, False, False, 10, "BadDelta()"),
    "inner V3, pays nothing": (1, KIND_V3, False, False, 0, "ProfitTooLow(0, 1)"),
    "inner V3, calls back twice": (1, KIND_V3, False, True, 0, "UnexpectedCallback()"),
}


@pytest.mark.parametrize("case", list(FAKE_CASES))
def test_fake_pool_in_the_route_cannot_make_the_executor_pay(idle: Market, case: str) -> None:
    m = idle
    where, kind, tamper, twice, claim_times, reason = FAKE_CASES[case]
    fake = fake_pair(m)
    real = m.pools["v2_b"] if where == 1 else m.pools["v2_a"]
    amount_in, middle, back = ETHER, 2_000 * ETHER, ETHER + ETHER // 100
    w_is_0 = fake.functions.token0().call() == m.weth
    real_w_is_0 = real.token0 == m.weth
    if where == 0:  # WETH -> A on the fake, A -> WETH on a real pair
        hops = (
            ExecutorHop(fake.address, m.weth, kind, w_is_0, middle if kind == KIND_V2 else 0),
            ExecutorHop(real.address, m.a, KIND_V2, not real_w_is_0, back),
        )
    else:  # WETH -> A on a real pair (a flash), A -> WETH on the fake
        hops = (
            ExecutorHop(real.address, m.weth, KIND_V2, real_w_is_0, middle),
            ExecutorHop(fake.address, m.a, kind, not w_is_0, 0),
        )
    call = ExecuteCall(m.weth, amount_in, 1, 0, hops)
    tampered = ExecuteCall(m.weth, 1, 0, 0, hops).encode()[4:] if tamper else b""
    claim = claim_times * (amount_in if where == 0 else middle)
    m.chain.send(fake.functions.configure(tampered, twice, claim))

    got = revert_of(m.chain, m.owner, m.executor.address, call.encode())
    assert got == reason.format(a=m.a)
    before = balances(m, [m.executor.address, fake.address])
    assert (
        int(send(m.chain, m.owner, m.executor.address, call.encode(), check=False)["status"], 16)
        == 0
    )
    assert balances(m, [m.executor.address, fake.address]) == before
    assert m.balance(m.weth, m.executor.address) == IDLE_WETH


# --- hostile tokens ---------------------------------------------------------------------------


def hostile_pairs(m: Market, contract: str, *args: int) -> ChecksumAddress:
    """Deploy a hostile token and two WETH pairs of it, priced apart ("h_x" 2,100, "h_y" 2,000)."""
    address = m.chain.deploy(load_test_contract(contract), *args).address
    add_v2(m, "h_x", m.fork_factory, (m.weth, address), (500 * ETHER, 1_050_000 * ETHER))
    add_v2(m, "h_y", m.uniswap.v2_factory, (m.weth, address), (500 * ETHER, 1_000_000 * ETHER))
    return address


@pytest.mark.parametrize("hops", [2, 3])
def test_fee_on_transfer_token_reverts(fresh: Market, hops: int) -> None:
    m = fresh
    fee = hostile_pairs(m, "FeeToken", 100)  # 1% of every transfer burnt
    names: tuple[str, ...]
    if hops == 2:  # WETH -> FEE lands here (a flash), less than sized; all of it goes on,
        names, reason = ("h_x", "h_y"), "UniswapV2: K"  # and the next pair gets less again
    else:  # WETH -> A, A -> FEE sent straight to the last pair, which receives less than sized
        add_v2(m, "h_af", m.uniswap.v2_factory, (m.a, fee), (10**6 * ETHER, 10**6 * ETHER))
        names, reason = ("v2_b", "h_af", "h_y"), "UniswapV2: K"
    data = calldata(m, names, m.weth, BUILDER_BPS)
    assert revert_of(m.chain, m.owner, m.executor.address, data) == reason


@pytest.mark.parametrize("case", ["executor, reverts", "executor, returns false", "first pair"])
def test_blocking_token_reverts(fresh: Market, case: str) -> None:
    m = fresh
    blk = hostile_pairs(m, "BlockingToken")
    contract = m.chain.contract(load_test_contract("BlockingToken"), blk)
    names = ("h_x", "h_y")
    data = calldata(m, names, m.weth, BUILDER_BPS)  # sized while transfers still work
    if case == "first pair":  # cannot even buy
        m.chain.send(contract.functions.setBlocked(m.pools["h_x"].address, True))
        reason = "UniswapV2: TRANSFER_FAILED"
    else:  # can buy, cannot sell
        m.chain.send(contract.functions.setBlocked(m.executor.address, True))
        m.chain.send(contract.functions.setQuiet(case.endswith("false")))
        reason = f"TransferFailed({blk})"
    assert revert_of(m.chain, m.owner, m.executor.address, data) == reason


def test_blocking_token_in_a_v3_callback_reverts(fresh: Market) -> None:
    m = fresh
    blk = hostile_pairs(m, "BlockingToken")
    contract = m.chain.contract(load_test_contract("BlockingToken"), blk)
    m.chain.send(contract.functions.approve(m.uniswap.position_manager, 2**256 - 1))
    m.chain.send(contract.functions.mint(m.owner, 10**9 * ETHER))
    add_v3(m, "h_v3", (m.weth, blk), Fraction(1_900), 3000, 300 * ETHER)
    data = calldata(m, ("h_x", "h_v3"), m.weth, BUILDER_BPS)
    assert len(decode_execute(data).hops) == 2
    m.chain.send(contract.functions.setBlocked(m.executor.address, True))
    assert revert_of(m.chain, m.owner, m.executor.address, data) == f"TransferFailed({blk})"


def test_locked_abi_has_the_interface() -> None:
    names = {item.get("name") for item in locked_build().abi}
    assert {"execute", "withdraw", "withdrawEth", "owner", "weth"} <= names
    assert {"uniswapV2Call", "pancakeCall", "uniswapV3SwapCallback"} <= names
    assert load_artifact("WETH9").abi  # the unwrap target is the real WETH9
