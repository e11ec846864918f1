"""PoolLens: many pools' state in a few ``eth_call``s, with no contract deployed anywhere.

The call carries the lens's creation code and its jobs; the constructor reads the pools and
returns the result (see contracts/lens/PoolLens.sol). The compiled code ships with the package
(``pool_lens.json``) so that a run needs no compiler; a test rebuilds it from the source and
compares. Jobs are packed into calls under a gas budget that every node's call cap allows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eth_abi.abi import decode, encode

from arbx.chain.rpc import RpcClient, block_tag, hex_bytes

V2_RESERVES, V3_HEAD, V3_TICKS = 0, 1, 2
CALL_GAS = 25_000_000  # under geth's default RPC gas cap (50M) and anvil's block limit
JOB_GAS = {V2_RESERVES: 12_000, V3_HEAD: 16_000}
WORD_GAS = 3_200  # a tickBitmap read through an external call
TICK_GAS = 9_000  # a ticks() read
MAX_WORDS_PER_JOB = 2_048
_JOB_TYPE = "(address,uint8,int24,int16,int16)[]"


@dataclass(frozen=True, slots=True)
class Job:
    """One read: V2 reserves, a V3 pool's price and liquidity, or its ticks in a word range."""

    pool: str
    kind: int
    spacing: int = 0
    word_from: int = 0
    word_to: int = 0

    def gas(self) -> int:
        """A generous estimate of what the job costs inside the lens."""
        if self.kind == V3_TICKS:
            return (self.word_to - self.word_from + 1) * WORD_GAS + 40 * TICK_GAS
        return JOB_GAS[self.kind]


@cache
def lens_code() -> bytes:
    """The lens's creation code, as shipped with the package."""
    text = resources.files("arbx.chain").joinpath("pool_lens.json").read_text(encoding="utf-8")
    return bytes.fromhex(json.loads(text)["bytecode"])


def pack(jobs: Sequence[Job], budget: int = CALL_GAS) -> list[list[Job]]:
    """Jobs grouped into calls whose estimated gas stays within ``budget``, in order."""
    calls: list[list[Job]] = []
    current: list[Job] = []
    used = 0
    for job in jobs:
        cost = job.gas()
        if current and used + cost > budget:
            calls.append(current)
            current, used = [], 0
        current.append(job)
        used += cost
    if current:
        calls.append(current)
    return calls


async def run_jobs(client: RpcClient, jobs: Sequence[Job], block: int | str) -> list[list[int]]:
    """Each job's output words at ``block``, in job order."""
    calls = pack(jobs)
    code = lens_code()
    requests: list[tuple[str, Sequence[Any]]] = []
    for group in calls:
        args = encode(
            [_JOB_TYPE],
            [[(j.pool, j.kind, j.spacing, j.word_from, j.word_to) for j in group]],
        )
        payload = {"data": "0x" + (code + args).hex(), "gas": hex(CALL_GAS + 5_000_000)}
        requests.append(("eth_call", [payload, block_tag(block)]))
    replies = await client.batch(requests, decode=hex_bytes)
    out: list[list[int]] = []
    for group, reply in zip(calls, replies, strict=True):
        (words,) = decode(["int256[]"], reply)
        out.extend(_split(group, list(words)))
    return out


def _split(group: Sequence[Job], words: list[int]) -> list[list[int]]:
    """Cut one call's flat output into the jobs' parts; ValueError if it does not fit."""
    parts: list[list[int]] = []
    at = 0
    for job in group:
        if job.kind == V2_RESERVES:
            size = 2
        elif job.kind == V3_HEAD:
            size = 3
        else:
            if at >= len(words) or words[at] < 0:
                raise ValueError("lens output ends early")
            size = 1 + 3 * words[at]
        if at + size > len(words):
            raise ValueError("lens output ends early")
        parts.append(words[at : at + size])
        at += size
    if at != len(words):
        raise ValueError("lens output has trailing words")
    return parts
