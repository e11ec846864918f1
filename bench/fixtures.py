"""The real mainnet states the benchmark runs on, read with plain json from tests/fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MAINNET = REPO / "tests" / "fixtures" / "mainnet"

WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
WBTC = "0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599"


def load(name: str) -> dict[str, Any]:
    """One fixture document by file name."""
    with (MAINNET / name).open() as f:
        doc: dict[str, Any] = json.load(f)
    return doc


def v2_wbtc_weth() -> dict[str, Any]:
    """Uniswap V2 WBTC/WETH at block 17,600,000."""
    pools = load("v2_v3_wbtc_weth_17600000.json")["pools"]
    return next(p for p in pools if p["family"] == "uniswap_v2")


def v3_wbtc_weth() -> dict[str, Any]:
    """Uniswap V3 WBTC/WETH 0.3% at block 24,407,242, with all 458 initialized ticks."""
    pool: dict[str, Any] = load("v3_wbtc_weth_24407242.json")["pool"]
    return pool


def as_int(value: int | str) -> int:
    """A fixture integer: JSON integer or decimal string."""
    return int(value)


def initialized_ticks(pool: dict[str, Any]) -> tuple[int, ...]:
    """The pool's initialized tick indexes, ascending."""
    return tuple(sorted(int(t) for t in pool["ticks"]))


def liquidity_net(pool: dict[str, Any]) -> dict[int, int]:
    """Tick index -> liquidity_net."""
    return {int(t): as_int(info["liquidity_net"]) for t, info in pool["ticks"].items()}
