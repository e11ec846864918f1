"""Find pools from their factories' creation events, and read their tokens' metadata.

V2 factories emit ``PairCreated(address indexed token0, address indexed token1, address pair,
uint256)``; the V3 factory ``PoolCreated(address indexed token0, address indexed token1, uint24
indexed fee, int24 tickSpacing, address pool)``. Logs are read in block ranges from a start
block; token allow and deny lists filter what is kept.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from eth_abi.abi import decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from arbx.chain.bootstrap import PoolMeta
from arbx.chain.multicall import Call, multicall, selector
from arbx.chain.rpc import Log, RpcClient, get_logs
from arbx.domain.pools import Token

PAIR_CREATED = bytes(keccak(text="PairCreated(address,address,address,uint256)"))
POOL_CREATED = bytes(keccak(text="PoolCreated(address,address,uint24,int24,address)"))
DECIMALS = selector("decimals()")
SYMBOL = selector("symbol()")
DEFAULT_RANGE = 10_000


@dataclass(frozen=True, slots=True)
class Venue:
    """A DEX deployment: its factory, kind and (for V2 forks) fee."""

    name: str
    kind: str  # "uniswap_v2" or "uniswap_v3"
    factory: str
    fee_bps: int = 30  # V2 only; V3 fees come from each pool
    init_code_hash: str = ""


async def discover(
    client: RpcClient,
    venues: Sequence[Venue],
    from_block: int,
    to_block: int,
    chain_id: int,
    allow: Collection[str] = (),
    deny: Collection[str] = (),
    block_range: int = DEFAULT_RANGE,
) -> list[PoolMeta]:
    """Every pool the venues' factories created in the block range that passes the filters.

    Tokens carry only their address; ``with_metadata`` fills in symbols and decimals.
    """
    allow_set = {a.lower() for a in allow}
    deny_set = {a.lower() for a in deny}
    found: list[PoolMeta] = []
    for venue in venues:
        topic = PAIR_CREATED if venue.kind == "uniswap_v2" else POOL_CREATED
        for start in range(from_block, to_block + 1, block_range):
            end = min(to_block, start + block_range - 1)
            logs = await get_logs(client, start, end, [venue.factory], ["0x" + topic.hex()])
            for log in logs:
                if log.removed:
                    continue
                meta = _created(venue, log, chain_id)
                tokens = {meta.token0.address.lower(), meta.token1.address.lower()}
                if tokens & deny_set or (allow_set and not tokens <= allow_set):
                    continue
                found.append(meta)
    return found


def _created(venue: Venue, log: Log, chain_id: int) -> PoolMeta:
    if len(log.topics) < 3:
        raise ValueError("creation event without its indexed tokens")
    token0 = Token(to_checksum_address(log.topics[1][-20:]))
    token1 = Token(to_checksum_address(log.topics[2][-20:]))
    if venue.kind == "uniswap_v2":
        pair, _ = decode(["address", "uint256"], log.data)
        return PoolMeta(
            to_checksum_address(pair),
            "uniswap_v2",
            token0,
            token1,
            venue.fee_bps,
            0,
            chain_id,
            venue.name,
        )
    fee = int.from_bytes(log.topics[3], "big")
    spacing, pool = decode(["int24", "address"], log.data)
    return PoolMeta(
        to_checksum_address(pool),
        "uniswap_v3",
        token0,
        token1,
        fee,
        int(spacing),
        chain_id,
        venue.name,
    )


async def token_metadata(
    client: RpcClient, multicall_address: str, addresses: Sequence[str], block: int
) -> dict[str, Token]:
    """Symbol and decimals of each token (None where the token does not answer)."""
    calls = [Call(a, sel) for a in addresses for sel in (DECIMALS, SYMBOL)]
    results = await multicall(client, multicall_address, calls, block)
    tokens: dict[str, Token] = {}
    for i, address in enumerate(addresses):
        dec, sym = results[2 * i], results[2 * i + 1]
        decimals = int.from_bytes(dec.data[:32], "big") if dec.success and dec.data else None
        tokens[address] = Token(
            address, _symbol(sym.data) if sym.success else None, _small(decimals)
        )
    return tokens


def _small(decimals: int | None) -> int | None:
    return decimals if decimals is not None and decimals <= 255 else None


def _symbol(data: bytes) -> str | None:
    """An ERC-20 symbol returned as a string or as bytes32 (older tokens)."""
    try:
        if len(data) == 32:
            return data.rstrip(b"\0").decode("utf-8") or None
        (text,) = decode(["string"], data)
        return str(text)[:32] or None
    except (UnicodeDecodeError, ValueError, TypeError, OverflowError):
        return None


def with_metadata(metas: Sequence[PoolMeta], tokens: Mapping[str, Token]) -> list[PoolMeta]:
    """The pools with their tokens' symbols and decimals filled in where known."""
    return [
        replace(
            m,
            token0=tokens.get(m.token0.address, m.token0),
            token1=tokens.get(m.token1.address, m.token1),
        )
        for m in metas
    ]
