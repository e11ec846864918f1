"""Many contract reads in few requests, through Uniswap's multicall contract.

``UniswapInterfaceMulticall.multicall((address target, uint256 gasLimit, bytes callData)[])``
returns the block number and, per call, ``(bool success, uint256 gasUsed, bytes returnData)``.
It is deployed on mainnet and most EVM chains (0x1F98415757620B543A52E61c46B32eB19261F984 on
Ethereum) and by our devnet. Calls go out in chunks, as one JSON-RPC batch, all at one block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.crypto import keccak

from arbx.chain.rpc import RpcClient, block_tag, hex_bytes

MULTICALL_SELECTOR = bytes(keccak(text="multicall((address,uint256,bytes)[])"))[:4]
DEFAULT_CHUNK = 150  # calls per eth_call: 150 x 200k gas stays under every node's call gas cap
DEFAULT_GAS_PER_CALL = 200_000


def selector(signature: str) -> bytes:
    """The 4-byte function selector of a signature such as ``slot0()``."""
    return bytes(keccak(text=signature))[:4]


@dataclass(frozen=True, slots=True)
class Call:
    """One read: the contract and its calldata."""

    target: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Result:
    """One read's outcome: ``success`` false when the call reverted."""

    success: bool
    data: bytes


async def multicall(
    client: RpcClient,
    multicall_address: str,
    calls: Sequence[Call],
    block: int | str,
    chunk: int = DEFAULT_CHUNK,
    gas_per_call: int = DEFAULT_GAS_PER_CALL,
) -> list[Result]:
    """The results of ``calls`` at ``block``, in order."""
    if not calls:
        return []
    requests: list[tuple[str, Sequence[Any]]] = []
    for start in range(0, len(calls), chunk):
        part = calls[start : start + chunk]
        payload = MULTICALL_SELECTOR + encode(
            ["(address,uint256,bytes)[]"], [[(c.target, gas_per_call, c.data) for c in part]]
        )
        requests.append(
            (
                "eth_call",
                [
                    {"to": multicall_address, "data": "0x" + payload.hex()},
                    block_tag(block),
                ],
            )
        )
    replies = await client.batch(requests, decode=hex_bytes)
    results: list[Result] = []
    for reply, start in zip(replies, range(0, len(calls), chunk), strict=True):
        _, rows = decode(["uint256", "(bool,uint256,bytes)[]"], reply)
        expected = min(chunk, len(calls) - start)
        if len(rows) != expected:
            raise ValueError(f"multicall answered {len(rows)} results for {expected} calls")
        results.extend(Result(bool(ok), bytes(data)) for ok, _, data in rows)
    return results
