"""Replay: the engine's own pipeline over a recorded window, offline, and its decisions.

The pipeline's block work (``Pipeline.process``), the chain sync, the strategy and its sizing are
the run's; only the heads and the sync's source are the window's (``arbx.chain.window.Playback``),
and the executor keeps each block's decisions instead of acting on them. There is no node: no
parity check, no resync, and nothing to supervise (a failure is the window's, and ends the replay).

A block's decisions are its opportunities as the shadow executor records them (route, pools,
input, amounts, gross and net profit, gas, builder payment), in the order the strategy ranked
them. The digest is the SHA-256 of the decisions as canonical JSON (sorted keys, no spaces),
the same for the same window and code on every machine and every run (ADR 0030).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from arbx import safejson
from arbx.chain.sync import ChainSync, hex_hash
from arbx.chain.window import Playback, Window
from arbx.domain.errors import InputError
from arbx.domain.journal import PoolBook
from arbx.engine.pipeline import BlockResult, Pipeline, Strategy

FORMAT: Final = "arbx-decisions"
VERSION: Final = 1
MAX_BYTES: Final = 64 * 1024 * 1024
MAX_DEPTH: Final = 6
MAX_BLOCKS: Final = 100_000


class _Decisions:
    """An executor that keeps each block's decisions."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = []

    async def on_block(self, block: BlockResult) -> None:
        self.blocks.append(block_decisions(block))


def block_decisions(block: BlockResult) -> dict[str, Any]:
    """One block's decisions, JSON-ready."""
    return {
        "number": block.head.number,
        "hash": hex_hash(block.head.hash),
        "opportunities": [o.to_json() for o in block.opportunities],
    }


def digest(blocks: Sequence[Mapping[str, Any]]) -> str:
    """The SHA-256 of ``blocks`` as canonical JSON."""
    canonical = json.dumps(list(blocks), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def decisions_document(window: Window, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """The decisions of a replay, as ``arbx replay --json`` prints them."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "window": {
            "chain_id": window.chain_id,
            "start": window.book_block,
            "heads": len(window.steps),
            "recorded_by": window.engine,
            "repairs": window.repairs,  # pools the live run reloaded from the node
        },
        "blocks": blocks,
        "digest": digest(blocks),
    }


async def replay(window: Window, strategy: Callable[[PoolBook], Strategy]) -> dict[str, Any]:
    """Run the pipeline over ``window``; its decisions document."""
    book = window.book()
    playback = Playback(window)
    kept = _Decisions()
    pipeline = Pipeline(
        playback.heads(),
        ChainSync(playback, book),
        strategy(book),
        kept,
        pools=lambda: len(book),
    )
    async for head in playback.heads():  # no IO, so no fault to supervise: a failure is the file's
        await pipeline.process(head)
    return decisions_document(window, kept.blocks)


def load_decisions(data: bytes, where: str) -> list[dict[str, Any]]:
    """The blocks of a decisions document; InputError (one line) when it is not one, or its
    digest does not match its blocks."""
    try:
        doc = safejson.loads(data, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH)
    except safejson.JsonError as exc:
        raise InputError(f"{where}: {exc}") from None
    if type(doc) is not dict or doc.get("format") != FORMAT:
        raise InputError(f"{where}: not a decisions document (arbx replay --json)")
    if doc.get("version") != VERSION:
        raise InputError(f"{where}: decisions version {str(doc.get('version'))[:20]}")
    blocks = doc.get("blocks")
    if type(blocks) is not list or len(blocks) > MAX_BLOCKS:
        raise InputError(f"{where}: 'blocks' must be a list of at most {MAX_BLOCKS}")
    for i, block in enumerate(blocks):
        if (
            type(block) is not dict
            or type(block.get("number")) is not int
            or type(block.get("hash")) is not str
            or type(block.get("opportunities")) is not list
        ):
            raise InputError(f"{where}: block #{i + 1} needs 'number', 'hash', 'opportunities'")
    if doc.get("digest") != digest(blocks):
        raise InputError(f"{where}: the digest does not match the blocks (edited or cut)")
    return blocks


def pack_decisions(blocks: Sequence[Mapping[str, Any]]) -> bytes:
    """A decisions document of ``blocks`` as stored: compact JSON, gzip (mtime 0)."""
    doc = {"format": FORMAT, "version": VERSION, "blocks": list(blocks), "digest": digest(blocks)}
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0)


def unpack_decisions(data: bytes, where: str) -> list[dict[str, Any]]:
    """The blocks of a stored decisions document (``pack_decisions``); InputError (one line)
    when it is not one, inflates past ``MAX_BYTES`` or its digest does not match."""
    inflate = zlib.decompressobj(wbits=31)
    try:
        raw = inflate.decompress(data, MAX_BYTES + 1)
    except zlib.error as exc:
        raise InputError(f"{where}: not gzip ({exc})") from None
    if len(raw) > MAX_BYTES or inflate.unconsumed_tail:
        raise InputError(f"{where}: decisions larger than {MAX_BYTES} bytes")
    return load_decisions(raw, where)


@dataclass(frozen=True, slots=True)
class Difference:
    """One block where two replays decided differently."""

    number: int
    hash: str
    what: str


def compare_decisions(
    ours: Sequence[Mapping[str, Any]], theirs: Sequence[Mapping[str, Any]]
) -> list[Difference]:
    """Where ``ours`` and ``theirs`` differ, block by block in ``ours``' order, then the blocks
    only ``theirs`` holds."""
    keyed_theirs = dict(_keyed(theirs))
    differences = []
    seen = set()
    for key, block in _keyed(ours):
        seen.add(key)
        other = keyed_theirs.get(key)
        what = "only in ours" if other is None else _difference(block, other)
        if what:
            differences.append(Difference(key[0], key[1], what))
    differences += [
        Difference(key[0], key[1], "only in theirs") for key in keyed_theirs if key not in seen
    ]
    return differences


def _keyed(
    blocks: Sequence[Mapping[str, Any]],
) -> list[tuple[tuple[int, str, int], Mapping[str, Any]]]:
    """Each block keyed by number, hash and occurrence (a head may come twice)."""
    count: Counter[tuple[int, str]] = Counter()
    keyed = []
    for block in blocks:
        base = (block["number"], block["hash"])
        keyed.append(((*base, count[base]), block))
        count[base] += 1
    return keyed


def _difference(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> str:
    a, b = ours["opportunities"], theirs["opportunities"]
    if a == b:
        return ""
    if len(a) != len(b):
        return f"{len(a)} opportunities against {len(b)}"
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x == y:
            continue
        if type(x) is not dict or type(y) is not dict:
            return f"opportunity #{i + 1} differs"
        fields = sorted(str(k)[:40] for k in set(x) | set(y) if x.get(k) != y.get(k))
        return f"opportunity #{i + 1} differs in {', '.join(fields[:4])}"
    return "differs"
