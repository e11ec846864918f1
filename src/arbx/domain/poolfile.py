"""Pool states from and to the project's JSON pool format (decoded JSON, no file IO here).

One object per pool; ``family`` is ``uniswap_v2`` or ``uniswap_v3``. Large integers are decimal
strings (JSON integers are accepted too). A document may be one pool, a list of pools, or an
object with ``pools`` (a list) or ``pool`` (one), beside other fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from eth_utils.address import is_hex_address, to_checksum_address

from arbx.domain.errors import InputError
from arbx.domain.pools import V3_FEE_TIERS, Pool, Token, V2Pool, V3Pool

UINT112_MAX = 2**112 - 1
UINT128_MAX = 2**128 - 1
INT128_MIN = -(2**127)
INT128_MAX = 2**127 - 1
MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342

# A whole number as text: ASCII digits only (str.isdigit also takes '²' and other scripts' digits,
# which int() then refuses or reads), at most 80 of them: more is out of every range here.
_WHOLE: Final = re.compile(r"-?[0-9]{1,80}")


def parse_document(doc: Any) -> list[Pool]:
    """Every pool in a decoded pool document, in file order."""
    if isinstance(doc, list):
        raw = doc
    elif isinstance(doc, Mapping) and "pools" in doc:
        raw = doc["pools"]
        if not isinstance(raw, list):
            raise InputError("'pools' must be a list of pool objects")
    elif isinstance(doc, Mapping) and "pool" in doc:
        raw = [doc["pool"]]
    elif isinstance(doc, Mapping) and "family" in doc:
        raw = [doc]
    else:
        raise InputError("no pool found: expected a pool object, a list, or 'pools'/'pool'")
    if not raw:
        raise InputError("the document holds no pools")
    pools = [parse_pool(item, where=f"pool #{i + 1}") for i, item in enumerate(raw)]
    seen: set[str] = set()
    for pool in pools:
        if pool.address in seen:
            raise InputError(f"pool {pool.address} appears twice")
        seen.add(pool.address)
    return pools


def parse_pool(obj: Any, where: str = "pool") -> Pool:
    """One pool object in the project's format; InputError names the bad field."""
    if not isinstance(obj, Mapping):
        raise InputError(f"{where}: expected an object, got {type(obj).__name__}")
    family = obj.get("family")
    address = _address(obj, "address", where)
    where = f"{where} ({address})"
    token0 = _token(obj, "token0", where)
    token1 = _token(obj, "token1", where)
    if int(token0.address, 16) >= int(token1.address, 16):
        raise InputError(f"{where}: token0 must sort below token1, as on-chain")
    chain_id = _int(obj, "chain_id", where, lo=1, default=1)
    block = _int(obj, "block", where, lo=0, default=None)
    if family == "uniswap_v2":
        reserve0 = _int(obj, "reserve0", where, lo=0, hi=UINT112_MAX)
        reserve1 = _int(obj, "reserve1", where, lo=0, hi=UINT112_MAX)
        if reserve0 == 0 or reserve1 == 0:
            raise InputError(f"{where}: a V2 pool with a zero reserve cannot swap")
        return V2Pool(
            address=address,
            token0=token0,
            token1=token1,
            reserve0=reserve0,
            reserve1=reserve1,
            fee_bps=_int(obj, "fee_bps", where, lo=0, hi=9999, default=30),
            chain_id=chain_id,
            block=block,
        )
    if family == "uniswap_v3":
        return _v3(obj, where, address, token0, token1, chain_id, block)
    raise InputError(f"{where}: unknown pool family {family!r} (known: uniswap_v2, uniswap_v3)")


def _v3(
    obj: Mapping[str, Any],
    where: str,
    address: str,
    token0: Token,
    token1: Token,
    chain_id: int,
    block: int | None,
) -> V3Pool:
    fee = _int(obj, "fee", where, lo=1, hi=999_999)
    spacing = _int(obj, "tick_spacing", where, lo=1, hi=16383, default=V3_FEE_TIERS.get(fee))
    if spacing is None:
        known = ", ".join(str(tier) for tier in sorted(V3_FEE_TIERS))
        raise InputError(
            f"{where}: fee {fee} is not a standard tier ({known}): give its 'tick_spacing'"
        )
    sqrt_price = _int(obj, "sqrt_price_x96", where, lo=MIN_SQRT_RATIO, hi=MAX_SQRT_RATIO - 1)
    tick = _int(obj, "tick", where, lo=MIN_TICK, hi=MAX_TICK)
    liquidity = _int(obj, "liquidity", where, lo=0, hi=UINT128_MAX)
    raw_ticks = obj.get("ticks", {})
    if not isinstance(raw_ticks, Mapping):
        raise InputError(f"{where}: 'ticks' must be an object of tick index -> liquidity")
    net: dict[int, int] = {}
    gross: dict[int, int] = {}
    for key, info in raw_ticks.items():
        if not isinstance(key, str) or _WHOLE.fullmatch(key) is None:
            raise InputError(f"{where}: tick index {str(key)[:40]!r} is not an integer")
        index = int(key)
        if not MIN_TICK <= index <= MAX_TICK or index % spacing:
            raise InputError(f"{where}: tick {index} is out of range or off the spacing {spacing}")
        if not isinstance(info, Mapping):
            raise InputError(f"{where}: tick {index} must be an object")
        tick_where = f"{where} tick {index}"
        net[index] = _int(info, "liquidity_net", tick_where, lo=INT128_MIN, hi=INT128_MAX)
        gross[index] = _int(info, "liquidity_gross", tick_where, lo=0, hi=UINT128_MAX, default=0)
    return V3Pool(
        address=address,
        token0=token0,
        token1=token1,
        fee=fee,
        tick_spacing=spacing,
        sqrt_price_x96=sqrt_price,
        tick=tick,
        liquidity=liquidity,
        ticks=tuple(sorted(net)),
        liquidity_net=net,
        liquidity_gross=gross,
        chain_id=chain_id,
        block=block,
    )


def pool_document(pool: Pool) -> dict[str, Any]:
    """``pool`` as one pool object of the format; ``parse_pool`` gives back an equal pool."""
    doc: dict[str, Any] = {
        "family": pool.family,
        "address": pool.address,
        "token0": _token_document(pool.token0),
        "token1": _token_document(pool.token1),
        "chain_id": pool.chain_id,
        "block": pool.block,
    }
    if isinstance(pool, V2Pool):
        doc |= {"reserve0": str(pool.reserve0), "reserve1": str(pool.reserve1)}
        doc["fee_bps"] = pool.fee_bps
        return doc
    doc |= {
        "fee": pool.fee,
        "tick_spacing": pool.tick_spacing,
        "sqrt_price_x96": str(pool.sqrt_price_x96),
        "tick": pool.tick,
        "liquidity": str(pool.liquidity),
        "ticks": {
            str(t): {
                "liquidity_net": str(pool.liquidity_net[t]),
                "liquidity_gross": str(pool.liquidity_gross.get(t, 0)),
            }
            for t in pool.ticks
        },
    }
    return doc


def _token_document(token: Token) -> dict[str, Any]:
    doc: dict[str, Any] = {"address": token.address}
    if token.symbol is not None:
        doc["symbol"] = token.symbol
    if token.decimals is not None:
        doc["decimals"] = token.decimals
    return doc


def checksum(value: Any, what: str) -> str:
    """A checksummed address from user input; InputError if it is not 20 bytes of hex."""
    if not isinstance(value, str) or not is_hex_address(value):
        raise InputError(f"{what}: {value!r} is not a 20-byte hex address")
    return str(to_checksum_address(value))


def _address(obj: Mapping[str, Any], key: str, where: str) -> str:
    if key not in obj:
        raise InputError(f"{where}: missing '{key}'")
    return checksum(obj[key], f"{where} {key}")


def _token(obj: Mapping[str, Any], key: str, where: str) -> Token:
    raw = obj.get(key)
    if isinstance(raw, str):
        return Token(checksum(raw, f"{where} {key}"))
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}: missing '{key}' (an object with 'address')")
    symbol = raw.get("symbol")
    if symbol is not None and not isinstance(symbol, str):
        raise InputError(f"{where}: {key} symbol must be text")
    return Token(
        address=_address(raw, "address", f"{where} {key}"),
        symbol=symbol,
        decimals=_int(raw, "decimals", f"{where} {key}", lo=0, hi=255, default=None),
    )


_MISSING = object()


def _int(
    obj: Mapping[str, Any],
    key: str,
    where: str,
    lo: int | None = None,
    hi: int | None = None,
    default: Any = _MISSING,
) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise InputError(f"{where}: missing '{key}'")
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InputError(f"{where}: '{key}' must be an integer or a decimal string")
    if isinstance(value, str):
        text = value.strip()
        if _WHOLE.fullmatch(text) is None:
            raise InputError(f"{where}: '{key}' is not a whole number: {value[:40]!r}")
        value = int(text)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        shown = value if abs(value) < 10**80 else f"a {value.bit_length()}-bit number"
        raise InputError(f"{where}: '{key}' = {shown} is out of range [{lo}, {hi}]")
    return value
