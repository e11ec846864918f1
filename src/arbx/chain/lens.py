"""PoolLens: many pools' state in a few ``eth_call``s, with no contract deployed anywhere.

The call carries the lens's creation code and its jobs; the constructor reads the pools and
returns the result (see contracts/lens/PoolLens.sol). The compiled code ships with the package
(``pool_lens.json``) so that a run needs no compiler; a test rebuilds it from the source and
compares. Jobs are packed into calls under a gas budget that every node's call cap allows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

from eth_abi.abi import decode, encode

from arbx.chain.rpc import RpcClient, RpcError, block_tag, hex_bytes

V2_RESERVES, V3_HEAD, V3_TICKS = 0, 1, 2
CALL_GAS = 25_000_000  # under geth's default RPC gas cap (50M) and anvil's block limit
# The lens returns its result as the code of the contract it "creates", which EIP-170 caps at
# 24,576 bytes: 768 words, less the array's head. Calls are packed to expect at most this many
# words, and a call that still overflows is split in two and retried.
MAX_WORDS = 700
EXPECTED_TICKS = 30  # initialized ticks expected per V3 tick job, for packing only
JOB_GAS = {V2_RESERVES: 12_000, V3_HEAD: 16_000}
WORD_GAS = 3_200  # a tickBitmap read through an external call
TICK_GAS = 9_000  # a ticks() read
MAX_WORDS_PER_JOB = 2_048
_JOB_TYPE = "(address,uint8,int24,int16,int16)[]"
BlockRef = int | str | dict[str, str]  # EIP-1898: {"blockHash": ...} pins one exact block


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

    def words(self) -> int:
        """How many output words the job is expected to return."""
        if self.kind == V3_TICKS:
            return 1 + 3 * EXPECTED_TICKS
        return 2 if self.kind == V2_RESERVES else 3


@cache
def lens_code() -> bytes:
    """The lens's creation code, as shipped with the package."""
    text = resources.files("arbx.chain").joinpath("pool_lens.json").read_text(encoding="utf-8")
    return bytes.fromhex(json.loads(text)["bytecode"])


def pack(
    jobs: Sequence[Job], budget: int = CALL_GAS, max_words: int = MAX_WORDS
) -> list[list[Job]]:
    """Jobs grouped into calls within the gas ``budget`` and the expected output size, in order."""
    calls: list[list[Job]] = []
    current: list[Job] = []
    gas = words = 0
    for job in jobs:
        if current and (gas + job.gas() > budget or words + job.words() > max_words):
            calls.append(current)
            current, gas, words = [], 0, 0
        current.append(job)
        gas += job.gas()
        words += job.words()
    if current:
        calls.append(current)
    return calls


async def run_jobs(client: RpcClient, jobs: Sequence[Job], block: BlockRef) -> list[list[int]]:
    """Each job's output words at ``block`` (a number, a tag, or ``{"blockHash": h}``)."""
    groups = pack(jobs)
    replies = await client.batch(
        [_request(group, block) for group in groups], decode=hex_bytes, return_errors=True
    )
    out: list[list[int]] = []
    for group, reply in zip(groups, replies, strict=True):
        out.extend(await _group_result(client, group, block, reply))
    return out


def _request(group: Sequence[Job], block: BlockRef) -> tuple[str, Sequence[Any]]:
    args = encode(
        [_JOB_TYPE], [[(j.pool, j.kind, j.spacing, j.word_from, j.word_to) for j in group]]
    )
    payload = {"data": "0x" + (lens_code() + args).hex(), "gas": hex(CALL_GAS + 5_000_000)}
    return "eth_call", [payload, block if isinstance(block, dict) else block_tag(block)]


async def _group_result(
    client: RpcClient, group: Sequence[Job], block: BlockRef, reply: Any
) -> list[list[int]]:
    """One call's parts; a call whose output was too large is split in two and retried: its
    jobs, or the word range of a lone V3 tick job (a pool traded on for long has many ticks)."""
    if isinstance(reply, RpcError):
        if "size" not in str(reply).lower():
            raise reply
        if len(group) == 1:
            job = group[0]
            if job.kind != V3_TICKS or job.word_from >= job.word_to:
                raise reply
            mid = (job.word_from + job.word_to) // 2
            halves = (replace(job, word_to=mid), replace(job, word_from=mid + 1))
            parts = [(await _retried(client, [h], block))[0] for h in halves]
            return [join_ticks(parts)]
        half = len(group) // 2
        out = []
        for part in (group[:half], group[half:]):
            out.extend(await _retried(client, part, block))
        return out
    (words,) = decode(["int256[]"], reply)
    return _split(group, list(words))


async def _retried(client: RpcClient, group: Sequence[Job], block: BlockRef) -> list[list[int]]:
    try:
        reply: Any = await client.call(*_request(group, block), decode=hex_bytes)
    except RpcError as exc:  # too large again: split further
        reply = exc
    return await _group_result(client, group, block, reply)


def join_ticks(parts: Sequence[Sequence[int]]) -> list[int]:
    """One V3 tick job's output from the outputs of its word ranges, in order."""
    ticks = [word for part in parts for word in part[1:]]
    return [sum(part[0] for part in parts), *ticks]


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
