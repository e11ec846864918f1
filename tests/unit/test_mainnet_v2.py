"""The real 4-hop Uniswap V2 arbitrage of block 11,117,996 as an oracle."""

from __future__ import annotations

import json
from pathlib import Path

from arbx.domain.amm.v2 import get_amount_out
from arbx.domain.arbitrage import evaluate
from arbx.domain.poolfile import parse_document
from arbx.domain.pools import V2Pool, direction
from arbx.domain.profit import Costs
from arbx.domain.routes import find_cycles

FIXTURE = Path(__file__).parents[1] / "fixtures" / "mainnet" / "v2_triangular_arb_11117996.json"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
DOC = json.loads(FIXTURE.read_text())
POOLS = {p.address: p for p in parse_document(DOC)}
TRADE = DOC["realized_trade"]


def test_every_hop_of_the_real_trade() -> None:
    amount = int(TRADE["amount_in"])
    tokens = TRADE["token_path"]
    for i, address in enumerate(TRADE["pool_path"]):
        pool = POOLS[address]
        assert isinstance(pool, V2Pool)
        r_in, r_out = pool.reserves(direction(pool, tokens[i]))
        amount = get_amount_out(amount, r_in, r_out, pool.fee_bps)
        assert amount == int(TRADE["hop_outputs"][i]), f"hop {i} through {address}"
    assert amount - int(TRADE["amount_in"]) == int(TRADE["profit"])


def test_search_finds_the_cycle_with_at_least_the_closed_form_profit() -> None:
    routes = find_cycles(POOLS.values(), [WETH], max_hops=4)
    found = evaluate(routes, POOLS, Costs())
    assert found, "the real arbitrage must be found"
    best = found[0]
    assert list(best.route.pools) == TRADE["pool_path"]
    assert list(best.route.tokens) == TRADE["token_path"]
    assert best.gross_profit >= 10151440486718436  # the floored closed-form optimum
    assert best.gross_profit > int(TRADE["profit"])  # better sized than the trade that was made


def test_three_hops_are_not_enough() -> None:
    routes = find_cycles(POOLS.values(), [WETH], max_hops=3)
    assert routes == []
