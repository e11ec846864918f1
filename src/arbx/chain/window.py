"""A recorded window of blocks: the pool book at its start and what the sync read for each head.

``arbx record`` writes one while the engine runs; ``arbx replay`` feeds it back to the same
sync, detection and sizing code with no node (ADR 0030). The file is gzip-compressed JSON lines:

1. ``{"format": "arbx-replay-window", "version": 1, "chain_id", "book": {"block", "hash"},
   "settings": {...}, "engine": ..., "repairs": n}``: what the window is, the strategy settings
   that decide, and how often the live run changed pools outside the sync (reloads,
   re-bootstraps: a replay cannot reproduce those);
2. one ``{"pool": {...}}`` per pool of the book as loaded, in the book's order (the pool format
   of ``docs/pool-format.md``);
3. one ``{"step": {"head", "headers", "logs"}}`` per head the pipeline processed, in order: the
   head, the headers the sync fetched for it (gaps, reorgs) and the pool logs it read per block
   hash, as the node answered them (JSON-RPC form, decoded by the same decoders);
4. ``{"end": {"pools": n, "steps": m}}``, so that a file cut at a line boundary is refused.

Reading is bounded (line and total sizes, nesting depth, counts), linear (``arbx.safejson``),
and every refusal is an ``InputError`` naming the line.
"""

from __future__ import annotations

import gzip
import os
import re
import tempfile
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from arbx import safejson
from arbx.chain.heads import Head, decode_head
from arbx.chain.rpc import Log, decode_log, to_data, to_quantity
from arbx.chain.sync import ChainSource, ChainSync, SyncUpdate
from arbx.domain.errors import InputError
from arbx.domain.journal import PoolBook
from arbx.domain.poolfile import parse_pool, pool_document
from arbx.domain.pools import Pool

FORMAT: Final = "arbx-replay-window"
VERSION: Final = 1
MAX_LINE_BYTES: Final = 8 * 1024 * 1024  # one pool's ticks or one block's logs
MAX_TOTAL_BYTES: Final = 512 * 1024 * 1024  # decompressed
MAX_DEPTH: Final = 8  # the deepest legitimate line nests 5 deep
MAX_POOLS: Final = 100_000
MAX_STEPS: Final = 100_000
MAX_HEADERS: Final = 256  # headers fetched for one head (a gap or a reorg)
_HASH: Final = re.compile(r"0x[0-9a-fA-F]{64}")


@dataclass(slots=True)
class Step:
    """One head the pipeline processed, and what the sync read for it."""

    head: Head
    headers: dict[int, Head] = field(default_factory=dict)
    logs: dict[bytes, list[Log]] = field(default_factory=dict)


@dataclass(slots=True)
class Window:
    """A recorded window: the book at its start, the settings, the steps."""

    chain_id: int
    book_block: int
    book_hash: str
    pools: list[Pool]
    settings: dict[str, Any]
    steps: list[Step]
    engine: str = ""
    repairs: int = 0

    def book(self) -> PoolBook:
        """A fresh pool book at the window's start."""
        return PoolBook(self.pools, self.book_block, self.book_hash)


# --- writing ---------------------------------------------------------------------------------


def head_json(head: Head) -> dict[str, str]:
    """``head`` as a node answers it (what ``decode_head`` reads)."""
    return {
        "number": to_quantity(head.number),
        "hash": to_data(head.hash),
        "parentHash": to_data(head.parent_hash),
        "timestamp": to_quantity(head.timestamp),
        "baseFeePerGas": to_quantity(head.base_fee),
    }


def log_json(log: Log) -> dict[str, Any]:
    """``log`` as a node answers it (what ``decode_log`` reads)."""
    return {
        "address": log.address,
        "topics": [to_data(t) for t in log.topics],
        "data": to_data(log.data),
        "blockNumber": to_quantity(log.block_number),
        "blockHash": to_data(log.block_hash),
        "transactionHash": to_data(log.transaction_hash),
        "transactionIndex": to_quantity(log.transaction_index),
        "logIndex": to_quantity(log.log_index),
        "removed": log.removed,
    }


def window_lines(window: Window) -> Iterator[dict[str, Any]]:
    """The window's lines, in file order."""
    yield {
        "format": FORMAT,
        "version": VERSION,
        "chain_id": window.chain_id,
        "book": {"block": window.book_block, "hash": window.book_hash},
        "settings": window.settings,
        "engine": window.engine,
        "repairs": window.repairs,
    }
    for pool in window.pools:
        yield {"pool": pool_document(pool)}
    for step in window.steps:
        yield {
            "step": {
                "head": head_json(step.head),
                "headers": [head_json(h) for _, h in sorted(step.headers.items())],
                "logs": [
                    {"block": to_data(block), "logs": [log_json(x) for x in logs]}
                    for block, logs in step.logs.items()
                ],
            }
        }
    yield {"end": {"pools": len(window.pools), "steps": len(window.steps)}}


def write_window(window: Window, path: Path) -> int:
    """Write ``window`` to ``path`` atomically (a temporary file renamed); its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, 0o644)  # a window holds public chain data
    try:
        with os.fdopen(fd, "wb") as raw:
            # mtime 0 and no name: the same window gives the same bytes
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                for line in window_lines(window):
                    gz.write(safejson.dumps(line) + b"\n")
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path.stat().st_size


# --- recording -------------------------------------------------------------------------------


class WindowRecorder:
    """Records a run's window: the book as loaded, then each head's headers and logs as the sync
    reads them (through ``source`` and ``sync``, which wrap the run's own)."""

    def __init__(self, settings: Mapping[str, Any], engine: str = "") -> None:
        self.settings = dict(settings)
        self.engine = engine
        self.window: Window | None = None
        self.current: Step | None = None  # the head being applied

    def begin(self, chain_id: int, book: PoolBook) -> None:
        """The book as loaded, before any block is applied."""
        self.window = Window(
            chain_id,
            book.head_number,
            book.head_hash,
            list(book.pools.values()),
            self.settings,
            [],
            self.engine,
        )

    def source(self, inner: ChainSource) -> ChainSource:
        """``inner``, with what it answers recorded into the current step."""
        return _RecordingSource(self, inner)

    def sync(self, inner: ChainSync) -> RecordingSync:
        """``inner``, with each head it advances to opening a step."""
        return RecordingSync(self, inner)

    def open(self, head: Head) -> None:
        """``head`` is being applied (again, when a failed attempt is retried: the step keeps
        what every attempt read, the last one's answers last)."""
        if self.current is None or self.current.head != head:
            self.current = Step(head)

    def done(self) -> None:
        """The current head was applied: its step joins the window."""
        assert self.window is not None, "begin first"
        if self.current is not None:
            self.window.steps.append(self.current)
        self.current = None

    def write(self, path: Path, repairs: int) -> int:
        """The window to ``path``; its size in bytes."""
        assert self.window is not None, "begin first"
        self.window.repairs = repairs
        return write_window(self.window, path)


class RecordingSync:
    """A ``ChainSync`` whose heads open the recorder's steps."""

    def __init__(self, recorder: WindowRecorder, inner: ChainSync) -> None:
        self.recorder = recorder
        self.inner = inner

    async def advance(self, head: Head) -> SyncUpdate:
        """The inner sync's ``advance``, recorded."""
        self.recorder.open(head)
        update = await self.inner.advance(head)
        self.recorder.done()
        return update

    async def block_at(self, number: int) -> Head | None:
        """The inner sync's ``block_at`` (the header it reads is recorded with the others)."""
        return await self.inner.block_at(number)


class _RecordingSource:
    def __init__(self, recorder: WindowRecorder, inner: ChainSource) -> None:
        self.recorder = recorder
        self.inner = inner

    async def header(self, number: int) -> Head:
        head = await self.inner.header(number)
        if self.recorder.current is not None:
            self.recorder.current.headers[number] = head
        return head

    async def logs(self, blocks: list[Head]) -> list[list[Log]]:
        answers = await self.inner.logs(blocks)
        if self.recorder.current is not None:
            for block, logs in zip(blocks, answers, strict=False):
                self.recorder.current.logs[block.hash] = logs
        return answers


# --- playing back ----------------------------------------------------------------------------


class Playback:
    """A window's heads, and the headers and logs the sync reads for each (a ``ChainSource``)."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self._step: Step | None = None

    async def heads(self) -> AsyncIterator[Head]:
        """The recorded heads, in order."""
        for step in self.window.steps:
            self._step = step
            yield step.head

    async def header(self, number: int) -> Head:
        """The header the live sync fetched for this head."""
        step = self._current()
        if number not in step.headers:
            raise InputError(f"the window holds no header {number} for head {step.head.number}")
        return step.headers[number]

    async def logs(self, blocks: list[Head]) -> list[list[Log]]:
        """The logs the live sync read for these blocks."""
        step = self._current()
        missing = [b.number for b in blocks if b.hash not in step.logs]
        if missing:
            raise InputError(f"the window holds no logs of block {missing[0]}")
        return [step.logs[b.hash] for b in blocks]

    def _current(self) -> Step:
        if self._step is None:
            raise InputError("the sync read the window before its first head")
        return self._step


# --- reading ---------------------------------------------------------------------------------


def read_window(path: Path) -> Window:
    """The window in ``path``; InputError (one line) when it is malformed, truncated, too large
    or of another version."""
    try:
        with path.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            return _Reader(path, gz).read()
    except OSError as exc:  # unreadable, not gzip (BadGzipFile is an OSError)
        raise InputError(f"{path}: cannot read the window: {exc.strerror or exc}") from None
    except (EOFError, zlib.error) as exc:
        raise InputError(f"{path}: truncated or corrupt ({exc})") from None


class _Reader:
    def __init__(self, path: Path, stream: gzip.GzipFile) -> None:
        self.path = path
        self.stream = stream
        self.number = 0
        self.total = 0

    def fail(self, why: str) -> InputError:
        return InputError(f"{self.path}: line {self.number}: {why}")

    def line(self) -> Any:
        data = self.stream.readline(MAX_LINE_BYTES + 1)
        self.number += 1
        self.total += len(data)
        if not data:
            raise self.fail("the file ends before its 'end' line (truncated)")
        if len(data) > MAX_LINE_BYTES or self.total > MAX_TOTAL_BYTES:
            raise self.fail("too large")
        try:
            doc = safejson.loads(data, max_bytes=MAX_LINE_BYTES, max_depth=MAX_DEPTH)
        except safejson.JsonError as exc:
            raise self.fail(str(exc)) from None
        if type(doc) is not dict or len(doc) < 1:
            raise self.fail("not an object")
        return doc

    def read(self) -> Window:
        first = self.line()
        if first.get("format") != FORMAT:
            raise self.fail(f"not a replay window (format {str(first.get('format'))[:40]!r})")
        if first.get("version") != VERSION:
            raise self.fail(
                f"window version {str(first.get('version'))[:20]} (this arbx reads {VERSION})"
            )
        book, settings = first.get("book"), first.get("settings")
        if type(book) is not dict or type(settings) is not dict:
            raise self.fail("'book' and 'settings' must be objects")
        window = Window(
            chain_id=self.whole(first.get("chain_id"), "chain_id"),
            book_block=self.whole(book.get("block"), "book block"),
            book_hash=self.hash(book.get("hash"), "book hash"),
            pools=[],
            settings=settings,
            steps=[],
            engine=str(first.get("engine", ""))[:64],
            repairs=self.whole(first.get("repairs", 0), "repairs"),
        )
        seen: set[str] = set()
        while True:
            doc = self.line()
            if "pool" in doc:
                if window.steps or len(window.pools) >= MAX_POOLS:
                    raise self.fail("a pool after the steps, or too many pools")
                pool = self._pool(doc["pool"])
                if pool.address in seen:
                    raise self.fail(f"pool {pool.address} appears twice")
                seen.add(pool.address)
                window.pools.append(pool)
            elif "step" in doc:
                if len(window.steps) >= MAX_STEPS:
                    raise self.fail(f"more than {MAX_STEPS} steps")
                window.steps.append(self._step(doc["step"]))
            elif "end" in doc:
                end = doc["end"]
                if type(end) is not dict or end.get("pools") != len(window.pools):
                    raise self.fail("the 'end' line does not count the pools read (truncated?)")
                if end.get("steps") != len(window.steps):
                    raise self.fail("the 'end' line does not count the steps read (truncated?)")
                if self.stream.read(1):
                    raise self.fail("data after the 'end' line")
                return window
            else:
                raise self.fail("expected a 'pool', 'step' or 'end' line")

    def whole(self, value: Any, what: str) -> int:
        if type(value) is not int or not 0 <= value < 2**63:
            raise self.fail(f"{what} must be a whole number")
        return value

    def hash(self, value: Any, what: str) -> str:
        if type(value) is not str or _HASH.fullmatch(value) is None:
            raise self.fail(f"{what} must be a 32-byte hex hash")
        return value.lower()

    def _pool(self, obj: Any) -> Pool:
        try:
            return parse_pool(obj)
        except InputError as exc:
            raise self.fail(str(exc)) from None

    def _step(self, obj: Any) -> Step:
        if type(obj) is not dict:
            raise self.fail("a step must be an object")
        headers, blocks = obj.get("headers"), obj.get("logs")
        if type(headers) is not list or type(blocks) is not list:
            raise self.fail("a step needs 'headers' and 'logs' lists")
        if len(headers) > MAX_HEADERS or len(blocks) > MAX_HEADERS + 1:
            raise self.fail(f"more than {MAX_HEADERS} blocks for one head")
        try:
            step = Step(decode_head(obj.get("head")))
            for raw in headers:
                header = decode_head(raw)
                step.headers[header.number] = header
            for entry in blocks:
                if type(entry) is not dict or type(entry.get("logs")) is not list:
                    raise TypeError("each block's logs must be an object with a 'logs' list")
                block = bytes.fromhex(self.hash(entry.get("block"), "block")[2:])
                step.logs[block] = [decode_log(_object(x)) for x in entry["logs"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise self.fail(f"bad step: {str(exc)[:200] or type(exc).__name__}") from None
        return step


def _object(raw: Any) -> dict[str, Any]:
    if type(raw) is not dict:
        raise TypeError(f"a log is an object, not {type(raw).__name__}")
    return raw
