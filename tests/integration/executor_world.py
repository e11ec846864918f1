"""A small market on anvil for the executor tests: WETH, two tokens, V2 pairs on two factories,
V3 pools, priced apart so that cycles pay; and the route and pool-state helpers the tests use.

Prices in A per WETH: "v2_a" 2,000 (the fair price), "v2_b" 2,100, "v3_a" 2,200, "v3_b" 1,900.
B (8 decimals) is fair at 1.5 per A and 3,000 per WETH ("v2_bw", "v2_ab", "v3_ab", "v3_bw").
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction
from math import isqrt
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3.contract import Contract
from web3.types import RPCEndpoint

from arbx.devnet.anvil import AnvilOptions, start_anvil
from arbx.devnet.artifacts import load_artifact
from arbx.devnet.chain import DevChain, RawReceipt, TxQueue
from arbx.devnet.deploy import (
    MAX_UINT256,
    UniswapDeployment,
    create_v2_pair,
    create_v3_pool,
    deploy_executor_on,
    deploy_test_tokens,
    deploy_uniswap,
    mint_v3_positions,
    sort_tokens,
    token,
)
from arbx.domain.amm.tick_math import get_tick_at_sqrt_ratio
from arbx.domain.amm.v2 import get_amount_out
from arbx.domain.pools import Pool, Token, V2Pool, V3Pool
from arbx.domain.routes import Route
from arbx.execution.contract import revert_reason

GAS = 3_000_000
ETHER = 10**18
COINBASE = to_checksum_address("0x" + "c0" * 20)
DUST = 10**9  # WETH the executor keeps, so that a profit is not its first


@dataclass(frozen=True)
class PoolInfo:
    """A pool of the market: kind ("v2"/"v3"), sorted tokens, fee, and V3 position bounds."""

    name: str
    address: ChecksumAddress
    kind: str
    token0: ChecksumAddress
    token1: ChecksumAddress
    fee: int  # bps for V2, hundredths of a bip for V3
    bounds: tuple[int, ...] = ()


@dataclass
class Market:
    """Everything the executor tests use, on one anvil."""

    chain: DevChain
    uniswap: UniswapDeployment
    fork_factory: ChecksumAddress
    weth: ChecksumAddress
    a: ChecksumAddress
    b: ChecksumAddress
    pools: dict[str, PoolInfo]
    executor: Contract
    owner: ChecksumAddress
    stranger: ChecksumAddress

    def erc20(self, address: str) -> Contract:
        """A token contract object (TestToken's ABI: any ERC-20 call works)."""
        return token(self.chain, address)

    def balance(self, token_address: str, holder: str) -> int:
        """``token.balanceOf(holder)``."""
        return int(self.erc20(token_address).functions.balanceOf(holder).call())


def sqrt_price_x96(price: Fraction) -> int:
    """sqrt(price) in Q64.96, for a price of token1 per token0 in raw units."""
    return isqrt(price.numerator * (1 << 192) // price.denominator)


def fund_weth(chain: DevChain, uniswap: UniswapDeployment, amount: int) -> None:
    """Wrap ``amount`` wei for the sender and approve the Uniswap spenders."""
    weth = chain.contract(load_artifact("WETH9"), uniswap.weth9)
    chain.send(weth.functions.deposit(), value=amount)
    chain.send_all(weth.functions.approve(s, MAX_UINT256) for s in uniswap.spenders())


def pay(market: Market, token_address: str, to: str, amount: int) -> Any:
    """Move ``amount`` of a token to ``to``: WETH from the sender's balance, test tokens minted."""
    contract = market.erc20(token_address)
    if token_address == market.weth:
        return contract.functions.transfer(to, amount)
    return contract.functions.mint(to, amount)


def add_v2(
    market: Market,
    name: str,
    factory: ChecksumAddress,
    tokens: tuple[str, str],
    amounts: tuple[int, int],
) -> None:
    """A new V2 pair on ``factory`` holding ``amounts`` of ``tokens`` (in the order given)."""
    chain = market.chain
    pair = create_v2_pair(chain, replace(market.uniswap, v2_factory=factory), *tokens)
    by_token = dict(zip(tokens, amounts, strict=True))
    contract = chain.contract(load_artifact("UniswapV2Pair"), pair.address)
    chain.send_all(
        [
            pay(market, pair.token0, pair.address, by_token[pair.token0]),
            pay(market, pair.token1, pair.address, by_token[pair.token1]),
            contract.functions.mint(chain.sender),
        ]
    )
    market.pools[name] = PoolInfo(name, pair.address, "v2", pair.token0, pair.token1, 30)


def add_v3(
    market: Market, name: str, tokens: tuple[str, str], price: Fraction, fee: int, depth: int
) -> None:
    """A new V3 pool at ``price`` (raw tokens[1] per tokens[0]): full range and a band around it.

    ``depth`` is the amount of tokens[0] behind the full-range position (the band holds half).
    """
    token0, _ = sort_tokens(*tokens)
    if token0 == tokens[0]:
        amount0, amount1 = depth, int(depth * price)
    else:
        amount0, amount1 = int(depth * price), depth
        price = 1 / price  # raw token1 per token0
    sqrt_price = sqrt_price_x96(price)
    pool = create_v3_pool(market.chain, market.uniswap, tokens, fee, sqrt_price)
    spacing = pool.tick_spacing
    tick = get_tick_at_sqrt_ratio(sqrt_price) // spacing * spacing
    full = 887272 // spacing * spacing
    ranges = [
        (-full, full, amount0, amount1),
        (tick - 30 * spacing, tick + 30 * spacing, amount0 // 2, amount1 // 2),
    ]
    mint_v3_positions(market.chain, market.uniswap, pool, ranges)
    bounds = tuple(sorted({b for lower, upper, _, _ in ranges for b in (lower, upper)}))
    market.pools[name] = PoolInfo(name, pool.address, "v3", pool.token0, pool.token1, fee, bounds)


@contextmanager
def running_market() -> Iterator[Market]:
    """Own anvil: Uniswap, the executor (owner: the first account), the priced pools."""
    with start_anvil(AnvilOptions(balance_ether=100_000)) as node:
        chain = DevChain(node.url)
        uniswap = deploy_uniswap(chain)
        executor = deploy_executor_on(chain, uniswap.weth9)
        built = build_market(chain, uniswap, executor)
        # steady state: a builder's coinbase has a balance; the executor keeps a little WETH
        chain.rpc("anvil_setCoinbase", COINBASE)
        chain.rpc("anvil_setBalance", COINBASE, hex(ETHER))
        chain.send(built.erc20(built.weth).functions.transfer(executor.address, DUST))
        yield built


def build_market(chain: DevChain, uniswap: UniswapDeployment, executor: Contract) -> Market:
    """Tokens A (18 decimals) and B (8), six V2 pairs and four V3 pools, priced apart."""
    fund_weth(chain, uniswap, 20_000 * ETHER)
    a, b = deploy_test_tokens(chain, (18, 8), spenders=uniswap.spenders())
    fork = chain.deploy(load_artifact("UniswapV2Factory"), chain.sender).address
    market = Market(
        chain, uniswap, fork, uniswap.weth9, a, b, {}, executor, chain.sender, chain.accounts[1]
    )
    w, one_a, one_b = ETHER, 10**18, 10**8
    add_v2(market, "v2_a", uniswap.v2_factory, (market.weth, a), (500 * w, 1_000_000 * one_a))
    add_v2(market, "v2_b", fork, (market.weth, a), (500 * w, 1_050_000 * one_a))
    add_v2(market, "v2_bw", uniswap.v2_factory, (market.weth, b), (500 * w, 1_500_000 * one_b))
    add_v2(market, "v2_ab", fork, (a, b), (1_000_000 * one_a, 1_500_000 * one_b))
    add_v3(market, "v3_a", (market.weth, a), Fraction(2200), 500, 300 * w)
    add_v3(market, "v3_b", (market.weth, a), Fraction(1900), 3000, 300 * w)
    add_v3(market, "v3_ab", (a, b), Fraction(15 * one_b, 10 * one_a), 500, 500_000 * one_a)
    add_v3(market, "v3_bw", (market.weth, b), Fraction(3000 * one_b, w), 3000, 300 * w)
    warm_up(market)
    return market


def warm_up(market: Market) -> None:
    """A small swap each way on every pool, a block later: the slots a live pool has written
    (price accumulators, fee growth) stop being written for the first time in the tests."""
    chain, small = market.chain, {market.weth: 10**15, market.a: 10**18, market.b: 10**6}
    router = chain.contract(load_artifact("SwapRouter"), market.uniswap.swap_router)
    chain.rpc("evm_increaseTime", 12)
    for info in market.pools.values():
        for token_in, token_out in ((info.token0, info.token1), (info.token1, info.token0)):
            if info.kind == "v3":
                params = (token_in, token_out, info.fee, chain.sender, 2**40, small[token_in], 0, 0)
                chain.send(router.functions.exactInputSingle(params))
                continue
            pair = chain.contract(load_artifact("UniswapV2Pair"), info.address)
            r0, r1, _ = pair.functions.getReserves().call()
            r_in, r_out = (r0, r1) if token_in == info.token0 else (r1, r0)
            out = get_amount_out(small[token_in], r_in, r_out, info.fee)
            outs = (0, out) if token_in == info.token0 else (out, 0)
            chain.send_all(
                [
                    market.erc20(token_in).functions.transfer(info.address, small[token_in]),
                    pair.functions.swap(*outs, chain.sender, b""),
                ]
            )


def make_route(market: Market, names: Sequence[str], start: str) -> Route:
    """The cycle from ``start`` through the named pools, in order."""
    current, dirs, tokens = start, [], [start]
    for name in names:
        info = market.pools[name]
        zero_for_one = info.token0 == current
        assert zero_for_one or info.token1 == current, f"{name} does not take {current}"
        current = info.token1 if zero_for_one else info.token0
        dirs.append(zero_for_one)
        tokens.append(current)
    assert current == start, "not a cycle"
    addresses = tuple(market.pools[n].address for n in names)
    return Route(addresses, tuple(dirs), tuple(tokens))


def read_pools(market: Market, names: Sequence[str]) -> dict[str, Pool]:
    """The named pools' current states, read from the chain, keyed by address."""
    states: dict[str, Pool] = {}
    for name in names:
        info = market.pools[name]
        t0, t1 = Token(info.token0), Token(info.token1)
        if info.kind == "v2":
            pair = market.chain.contract(load_artifact("UniswapV2Pair"), info.address)
            r0, r1, _ = pair.functions.getReserves().call()
            states[info.address] = V2Pool(info.address, t0, t1, r0, r1, fee_bps=info.fee)
            continue
        pool = market.chain.contract(load_artifact("UniswapV3Pool"), info.address)
        sqrt_price, tick = pool.functions.slot0().call()[:2]
        rows = {t: pool.functions.ticks(t).call()[:2] for t in info.bounds}
        live = sorted(t for t, (gross, _) in rows.items() if gross > 0)
        states[info.address] = V3Pool(
            address=info.address,
            token0=t0,
            token1=t1,
            fee=info.fee,
            tick_spacing=int(pool.functions.tickSpacing().call()),
            sqrt_price_x96=sqrt_price,
            tick=tick,
            liquidity=int(pool.functions.liquidity().call()),
            ticks=tuple(live),
            liquidity_net={t: rows[t][1] for t in live},
            liquidity_gross={t: rows[t][0] for t in live},
        )
    return states


def send(chain: DevChain, sender: str, to: str, data: bytes, *, check: bool = True) -> RawReceipt:
    """Mine one transaction with raw calldata; its receipt (a revert raises if ``check``)."""
    queue = TxQueue(chain, gas=GAS)
    queue.raw(sender, to, "0x" + data.hex(), 0, GAS, "execute")
    (receipt,) = queue.flush(check=check)
    return receipt


def revert_of(
    chain: DevChain, sender: str, to: str, data: bytes | HexBytes, *, value: int = 0
) -> str:
    """The decoded revert of an ``eth_call``; fails the test if the call succeeds."""
    tx = {"from": sender, "to": to, "data": "0x" + bytes(data).hex(), "gas": hex(GAS)}
    if value:
        tx["value"] = hex(value)
    answer = chain.w3.provider.make_request(RPCEndpoint("eth_call"), [tx, "latest"])
    error = answer.get("error")
    assert error is not None, f"the call succeeded: {answer.get('result')}"
    raw = error.get("data")
    if isinstance(raw, dict):
        raw = raw.get("data")
    return revert_reason(bytes.fromhex(raw[2:]) if isinstance(raw, str) else b"")


def snapshot_balances(
    market: Market, holders: Mapping[str, str], tokens: Sequence[str]
) -> dict[tuple[str, str], int]:
    """Each (holder name, token) balance."""
    return {(h, t): market.balance(t, addr) for h, addr in holders.items() for t in tokens}
