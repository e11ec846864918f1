"""Decoding JSON that came from outside: bounded in size and depth, linear in time, exact.

Every document from outside the process (API bodies, pool and keystore files, JSON-RPC and
builder answers, WebSocket messages) is decoded by ``loads`` and nothing else. The standard
library's decoder recurses on the C stack: with the recursion limit that ``py_ecc`` (imported by
web3) raises to 100,000, a body of ``[[[[...`` overflows the stack and kills the process instead
of raising. ``loads`` instead:

1. refuses a document over ``max_bytes`` (``JsonTooLargeError``);
2. refuses one nested deeper than ``max_depth`` (at most orjson's own limit of 1024), measured
   by a linear scan with strings taken out (escapes removed, then split on quotes);
3. decodes with orjson, which is linear, refuses nesting past 1024 without recursing on the C
   stack, and refuses invalid UTF-8, lone surrogates, ``NaN``/``Infinity`` and numbers past a
   double's range;
4. decodes again with the standard library when an integer may exceed 64 bits (orjson would
   round it to a float): amounts must stay exact. The document is then known to be valid and
   shallow, so the recursion is bounded.

Every refusal is a ``JsonError`` (a ``ValueError``) with one line saying why.
"""

from __future__ import annotations

import json
from itertools import accumulate
from typing import Any, Final

import orjson

ORJSON_MAX_DEPTH: Final = 1024  # orjson refuses deeper documents by itself
DEFAULT_MAX_BYTES: Final = 1024 * 1024

# To find an integer orjson would round to a float (past 2^64 - 1: 20 digits or more; under
# -2^63: a minus and 19 digits or more), not inside a hex or word token nor a fraction's digits,
# at C speed: digits become "0", letters, "_" and "." become "a", "-" stays, everything else
# becomes a space; then look for a space followed by twenty "0", or a "-" followed by nineteen.
_NUMBER_SHAPE: Final = bytes.maketrans(
    bytes(range(256)),
    bytes(
        ord("0")
        if chr(b).isdigit() and b < 128
        else ord("a")
        if (chr(b).isalpha() and b < 128) or b in b"_."
        else b
        if b == ord("-")
        else ord(" ")
        for b in range(256)
    ),
)
_BIG_INT_SHAPE: Final = b" " + b"0" * 20
_BIG_NEGATIVE_SHAPE: Final = b"-" + b"0" * 19
_NOT_BRACKET: Final = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_SIGN: Final = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")


class JsonError(ValueError):
    """A document refused: not JSON, too deep, or an unsupported value."""


class JsonTooLargeError(JsonError):
    """A document over the size cap."""


def nesting_depth(data: bytes) -> int:
    """How deep arrays and objects nest in ``data`` (brackets in strings do not count).

    Linear in ``len(data)``. For a document that is JSON up to some point, the depth of that
    prefix is at most the result, so a decoder that stops at the first error never nests deeper.
    """
    # Escapes first ("\\" before "\""): left to right, each backslash pairs as a decoder pairs it.
    bare = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(bare.split(b'"')[::2])
    signs = outside.translate(_BRACKET_SIGN, _NOT_BRACKET)
    return max(accumulate(memoryview(signs).cast("b"), initial=0))


def value_depth(doc: Any) -> int:
    """How deep lists and dicts nest in a decoded value (iterative: safe on any depth)."""
    deepest = 0
    stack = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, list | dict):
            deepest = max(deepest, depth + 1)
            stack.extend(
                (item, depth + 1) for item in (node.values() if type(node) is dict else node)
            )
    return deepest


def loads(
    raw: bytes | bytearray | memoryview | str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = ORJSON_MAX_DEPTH,
    exact_integers: bool = True,
) -> Any:
    """``raw`` decoded, or ``JsonError`` naming why it is refused (see the module docstring).

    ``exact_integers=False`` skips step 4 where no integer past 64 bits is legitimate (JSON-RPC
    answers from nodes carry quantities as hex strings): such a number then decodes to a float,
    which every reader of amounts refuses, and the document costs orjson's time alone.
    """
    if isinstance(raw, str):
        try:
            data = raw.encode()
        except UnicodeEncodeError:
            raise JsonError("not valid UTF-8 (a lone surrogate)") from None
    else:
        data = bytes(raw)
    if len(data) > max_bytes:
        raise JsonTooLargeError(f"over {max_bytes} bytes")
    if max_depth < ORJSON_MAX_DEPTH and data.count(b"[") + data.count(b"{") > max_depth:
        depth = nesting_depth(data)
        if depth > max_depth:
            raise JsonError(f"nested {depth} deep (at most {max_depth})")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise JsonError(_reason(exc)) from None
    if not exact_integers or not _may_hold_big_int(data):
        return doc
    try:
        return json.loads(data.decode())  # exact integers past 64 bits; valid and shallow here
    except (ValueError, RecursionError) as exc:  # over sys.int_info's digit limit
        raise JsonError(f"not supported: {exc}") from None


def _may_hold_big_int(data: bytes) -> bool:
    """True if ``data`` may hold an integer orjson cannot keep exact: 20 digits or more, or
    negative with 19 or more (linear, no false negative)."""
    shape = data.translate(_NUMBER_SHAPE)
    return (
        shape.startswith(_BIG_INT_SHAPE[1:])
        or _BIG_INT_SHAPE in shape
        or _BIG_NEGATIVE_SHAPE in shape
    )


def _reason(exc: orjson.JSONDecodeError) -> str:
    text = str(exc)
    if "depth limit" in text:
        return f"nested deeper than {ORJSON_MAX_DEPTH}"
    return f"not valid JSON: {text}"


def dumps(doc: Any) -> bytes:
    """``doc`` as compact JSON bytes (integers past 64 bits as exact JSON numbers)."""
    try:
        return orjson.dumps(doc)
    except TypeError:  # an int past 64 bits: the standard encoder is exact
        return json.dumps(doc, separators=(",", ":")).encode()
