"""Find pools from their factories' creation events, prove each address, read token metadata.

V2 factories emit ``PairCreated(address indexed token0, address indexed token1, address pair,
uint256)``; the V3 factory ``PoolCreated(address indexed token0, address indexed token1, uint24
indexed fee, int24 tickSpacing, address pool)``. Logs are read in block ranges from a start
block; token allow and deny lists filter what is kept.

Anyone can emit an event with those signatures, and a pool's own code decides what its swaps
send, so a pool is kept only when its address is proven to be the factory's: the log must come
from the venue's factory, and the address must equal the CREATE2 address derived from the
factory, the sorted tokens (and fee) and the venue's init code hash, or, when no hash is
configured, the factory's own answer (``getPair`` / ``getPool``) at the last block read.
Everything else is refused, counted and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from arbx.chain.bootstrap import PoolMeta
from arbx.chain.multicall import Call, multicall, selector
from arbx.chain.rpc import ExecutionRevertedError, Log, RpcClient, eth_call, get_logs
from arbx.domain.create2 import is_sorted_pair, v2_pair_address, v3_pool_address
from arbx.domain.pools import Token
from arbx.metrics import record

log = logging.getLogger(__name__)

PAIR_CREATED = bytes(keccak(text="PairCreated(address,address,address,uint256)"))
POOL_CREATED = bytes(keccak(text="PoolCreated(address,address,uint24,int24,address)"))
GET_PAIR = selector("getPair(address,address)")
GET_POOL = selector("getPool(address,address,uint24)")
DECIMALS = selector("decimals()")
SYMBOL = selector("symbol()")
DEFAULT_RANGE = 10_000


@dataclass(frozen=True, slots=True)
class Venue:
    """A DEX deployment: its factory, kind, (for V2 forks) fee and pool init code hash."""

    name: str
    kind: str  # "uniswap_v2" or "uniswap_v3"
    factory: str
    fee_bps: int = 30  # V2 only; V3 fees come from each pool
    init_code_hash: str = ""  # empty: ask the factory for each pool's address


@dataclass(frozen=True, slots=True)
class Refusal:
    """A creation log whose pool was not kept: why, in one word (``kind``) and in a phrase."""

    venue: str
    emitter: str
    pool: str
    kind: str  # "emitter", "event", "malformed", "unsorted" or "address"
    reason: str
    block: int


@dataclass(slots=True)
class Discovery:
    """The proven pools found, and the creation logs refused."""

    pools: list[PoolMeta] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


async def discover(
    client: RpcClient,
    venues: Sequence[Venue],
    from_block: int,
    to_block: int,
    chain_id: int,
    allow: Collection[str] = (),
    deny: Collection[str] = (),
    block_range: int = DEFAULT_RANGE,
    multicall_address: str | None = None,
) -> list[PoolMeta]:
    """Every proven pool the venues' factories created in the block range that passes the filters.

    Refused logs are logged (one warning each and a count) and counted in
    ``arbx_discovery_refused_total``. Tokens carry only their address;
    ``with_metadata`` fills in symbols and decimals.
    """
    found = await find_pools(
        client,
        venues,
        from_block,
        to_block,
        chain_id,
        allow,
        deny,
        block_range,
        multicall_address,
    )
    for refusal in found.refused:
        record.discovery_refused(refusal.kind)
        log.warning(
            "discovery refused pool %s of venue %s (log from %s, block %d): %s",
            refusal.pool,
            refusal.venue,
            refusal.emitter,
            refusal.block,
            refusal.reason,
        )
    if found.refused:
        kept, refused = len(found.pools), len(found.refused)
        log.warning("discovery refused %d creation logs; kept %d pools", refused, kept)
    return found.pools


async def find_pools(
    client: RpcClient,
    venues: Sequence[Venue],
    from_block: int,
    to_block: int,
    chain_id: int,
    allow: Collection[str] = (),
    deny: Collection[str] = (),
    block_range: int = DEFAULT_RANGE,
    multicall_address: str | None = None,
) -> Discovery:
    """The proven pools and the refused creation logs of the venues in the block range.

    Without an init code hash the factory is asked at ``to_block``, through
    ``multicall_address`` when given, else one call per pool.
    """
    allow_set = {a.lower() for a in allow}
    deny_set = {a.lower() for a in deny}
    result = Discovery()
    for venue in venues:
        topic = PAIR_CREATED if venue.kind == "uniswap_v2" else POOL_CREATED
        claimed: list[tuple[PoolMeta, Log]] = []
        for start in range(from_block, to_block + 1, block_range):
            end = min(to_block, start + block_range - 1)
            logs = await get_logs(client, start, end, [venue.factory], ["0x" + topic.hex()])
            for entry in logs:
                if entry.removed:
                    continue
                meta = _claim(venue, entry, chain_id, topic, result)
                if meta is None:
                    continue
                tokens = {meta.token0.address.lower(), meta.token1.address.lower()}
                if tokens & deny_set or (allow_set and not tokens <= allow_set):
                    continue
                claimed.append((meta, entry))
        proofs = await _proofs(client, venue, [m for m, _ in claimed], to_block, multicall_address)
        for (meta, entry), proof in zip(claimed, proofs, strict=True):
            if proof is None:
                result.pools.append(meta)
            else:
                result.refused.append(_refusal(venue, entry, meta.address, "address", proof))
    return result


def _claim(
    venue: Venue, entry: Log, chain_id: int, topic: bytes, result: Discovery
) -> PoolMeta | None:
    """The pool a creation log names, or None (recorded as refused) when the log cannot be one."""
    if entry.address.lower() != venue.factory.lower():
        result.refused.append(
            _refusal(venue, entry, "", "emitter", "not emitted by the venue's factory")
        )
        return None
    if not entry.topics or entry.topics[0] != topic:
        result.refused.append(_refusal(venue, entry, "", "event", "not a creation event"))
        return None
    try:
        meta = _created(venue, entry, chain_id)
    except (ValueError, DecodingError, OverflowError) as error:
        reason = f"malformed creation event: {error}"
        result.refused.append(_refusal(venue, entry, "", "malformed", reason))
        return None
    if not is_sorted_pair(meta.token0.address, meta.token1.address):
        result.refused.append(_refusal(venue, entry, meta.address, "unsorted", "tokens not sorted"))
        return None
    return meta


def _refusal(venue: Venue, entry: Log, pool: str, kind: str, reason: str) -> Refusal:
    return Refusal(venue.name, entry.address, pool, kind, reason, entry.block_number)


async def _proofs(
    client: RpcClient,
    venue: Venue,
    metas: Sequence[PoolMeta],
    block: int,
    multicall_address: str | None,
) -> list[str | None]:
    """For each pool: None when its address is proven, else why not."""
    if venue.init_code_hash:
        return [
            None
            if _derived(venue, m).lower() == m.address.lower()
            else "not the CREATE2 address of the factory and init code hash"
            for m in metas
        ]
    calls = [Call(venue.factory, _lookup(venue, m)) for m in metas]
    if multicall_address is not None:
        answers = [
            r.data if r.success else None
            for r in await multicall(client, multicall_address, calls, block)
        ]
    else:
        answers = [await _call(client, c, block) for c in calls]
    return [
        None
        if answer is not None and len(answer) == 32 and answer[-20:] == bytes.fromhex(m.address[2:])
        else "the factory does not know this address"
        for m, answer in zip(metas, answers, strict=True)
    ]


def _derived(venue: Venue, meta: PoolMeta) -> str:
    """The address the venue's factory gives this pool's tokens (and fee)."""
    if venue.kind == "uniswap_v2":
        return v2_pair_address(
            venue.factory, meta.token0.address, meta.token1.address, venue.init_code_hash
        )
    return v3_pool_address(
        venue.factory, meta.token0.address, meta.token1.address, meta.fee, venue.init_code_hash
    )


def _lookup(venue: Venue, meta: PoolMeta) -> bytes:
    """The factory call that answers this pool's address."""
    tokens = [meta.token0.address, meta.token1.address]
    if venue.kind == "uniswap_v2":
        return GET_PAIR + encode(["address", "address"], tokens)
    return GET_POOL + encode(["address", "address", "uint24"], [*tokens, meta.fee])


async def _call(client: RpcClient, call: Call, block: int) -> bytes | None:
    """One factory lookup without a multicall contract; None when it reverts."""
    try:
        return await eth_call(client, call.target, call.data, block)
    except ExecutionRevertedError:
        return None


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
    if len(log.topics) < 4:
        raise ValueError("pool creation event without its indexed fee")
    fee = int.from_bytes(log.topics[3], "big")
    if fee >= 1 << 24:
        raise ValueError(f"fee {fee} does not fit a uint24")
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
