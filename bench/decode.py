"""Decoding outside JSON: the old depth check against ``arbx.safejson``, on hostile and normal
answers.

``python -m bench.decode`` (project venv). The "before" side is the depth check the transport
used until ``arbx.safejson`` replaced it, kept here verbatim as the reference: a pattern that
takes strings out, then a bracket count, then the standard decoder. Rows:

- a 32 KB crafted reply (unterminated strings full of escaped quotes behind 600 brackets): the
  pattern rescans the rest of the reply from every quote, so its time grows with the square of
  the size; the same at 1 MB for ``arbx.safejson`` alone (the old check would take hours);
- a normal ``eth_getLogs`` answer of 1,000 logs (about 900 KB): the price of safety on the
  everyday path;
- 1 MB of integers past 2^64, decoded exactly (the standard library's second pass): the most a
  builder's answer can cost per megabyte.

Prints a table; JSON in ``build/bench/decode.json``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from itertools import accumulate
from pathlib import Path
from typing import Any

from arbx import safejson
from arbx.chain.transport import TransportError, decode_json
from bench.timing import measure

RESULTS = Path(__file__).resolve().parents[1] / "build" / "bench" / "decode.json"
CRAFTED_KB = 32

# -- before: the transport's check until safejson replaced it -----------------------------------

_OLD_MAX_DEPTH = 512
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_SIGN = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")


def old_too_deep(raw: bytes) -> bool:
    """The old check: True if ``raw`` nests deeper than 512 (strings taken out by a pattern)."""
    if raw.count(b"[") + raw.count(b"{") <= _OLD_MAX_DEPTH:
        return False
    signs = _JSON_STRING.sub(b"", raw).translate(_BRACKET_SIGN, _NOT_BRACKET)
    return max(accumulate(memoryview(signs).cast("b")), default=0) > _OLD_MAX_DEPTH


def old_decode(raw: bytes) -> Any:
    """The old decoder: the check, then the standard library (None for a refusal)."""
    if old_too_deep(raw):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def new_decode(raw: bytes) -> Any:
    """The transport's decoder now, as it reads a node's answer (None for a refusal)."""
    try:
        return decode_json(raw, exact_integers=False)
    except TransportError:
        return None


# -- inputs -------------------------------------------------------------------------------------


def crafted(size: int) -> bytes:
    """A reply of ``size`` bytes: 600 brackets, then one quote and escaped quotes to the end."""
    head = b"[" * 600 + b'"'
    return head + b'\\"' * ((size - len(head)) // 2)


def logs_answer(n: int) -> bytes:
    """A JSON-RPC ``eth_getLogs`` answer with ``n`` swap-sized logs."""
    log = {
        "address": "0x" + "ab" * 20,
        "topics": ["0x" + "cd" * 32, "0x" + "00" * 12 + "ef" * 20, "0x" + "00" * 12 + "12" * 20],
        "data": "0x" + "00" * 31 + "01" + "ff" * 32 + "00" * 64 + "0" * 60 + "1234",
        "blockNumber": "0x10d4f",
        "blockHash": "0x" + "34" * 32,
        "transactionHash": "0x" + "56" * 32,
        "transactionIndex": "0x3",
        "logIndex": "0x7",
        "removed": False,
    }
    return json.dumps({"jsonrpc": "2.0", "id": 1, "result": [log] * n}).encode()


def once(fn: Any, raw: bytes) -> float:
    """Seconds for one call (for the slow side, where one call is already long)."""
    started = time.perf_counter()
    fn(raw)
    return time.perf_counter() - started


def main() -> int:
    """Measure, print the table, write the JSON."""
    print("bench.decode: timing the old check on a crafted reply...", file=sys.stderr, flush=True)
    bait = crafted(CRAFTED_KB * 1024)
    bait_mb = crafted(1024 * 1024)
    logs = logs_answer(1000)
    assert old_decode(bait) is None  # both refuse it
    assert new_decode(bait) is None
    assert old_decode(logs) == new_decode(logs) == safejson.loads(logs, max_bytes=len(logs))
    big_ints = b"[" + b"123456789012345678901234," * 40_000 + b"1]"  # 1 MB, a builder's path
    result = {
        "crafted_32kb": {
            "bytes": len(bait),
            "before_s": min(once(old_decode, bait) for _ in range(3)),
            "after_s": measure(lambda: new_decode(bait)).median,
        },
        "crafted_1mb_after_s": measure(lambda: new_decode(bait_mb)).median,
        "big_integers_1mb_exact_s": measure(lambda: decode_json(big_ints)).median,
        "logs_1000": {
            "bytes": len(logs),
            "before_s": measure(lambda: old_decode(logs)).median,
            "after_s": measure(lambda: new_decode(logs)).median,
        },
    }
    c, lg = result["crafted_32kb"], result["logs_1000"]
    rows = [
        (f"crafted reply, {c['bytes'] / 1024:.0f} KB", c["before_s"], c["after_s"]),
        ("crafted reply, 1 MB", None, result["crafted_1mb_after_s"]),
        ("1 MB of integers past 2^64, exact (builders)", None, result["big_integers_1mb_exact_s"]),
        (
            f"eth_getLogs answer, 1,000 logs ({lg['bytes'] // 1024} KB)",
            lg["before_s"],
            lg["after_s"],
        ),
    ]
    print("\ndecoding outside JSON: old depth check + json vs arbx.safejson (median per call)\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'input':<{width}}  {'before':>10}  {'after':>10}")
    for name, before, after in rows:
        shown = "-" if before is None else _ms(before)
        print(f"{name:<{width}}  {shown:>10}  {_ms(after):>10}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {RESULTS}")
    return 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 1 else f"{seconds:.2f} s"


if __name__ == "__main__":
    raise SystemExit(main())
