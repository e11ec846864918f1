"""The one decoder for outside JSON: bounded size and depth, linear scans, exact integers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbx import safejson
from arbx.chain.transport import FailureKind, TransportError, decode_json

MB = 1024 * 1024


@contextmanager
def raised_recursion_limit() -> Iterator[None]:
    """The limit py_ecc (imported by web3) sets: the standard decoder then overflows C's stack."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, 100_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def depth_of(doc: Any) -> int:
    """Reference nesting depth of a decoded document (iterative: documents may be deep)."""
    deepest = 0
    stack = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, list | dict):
            deepest = max(deepest, depth + 1)
            items = node.values() if isinstance(node, dict) else node
            stack.extend((item, depth + 1) for item in items)
    return deepest


# Strings made of the characters that confuse a bracket counter.
tricky_text = st.text(alphabet='[]{}"\\/ab\u00e9\n', max_size=12)
documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**300), 2**300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
    max_leaves=40,
)


@given(documents)
@settings(max_examples=300, deadline=None)
def test_nesting_depth_ignores_brackets_inside_strings(doc: Any) -> None:
    raw = json.dumps(doc).encode()
    assert safejson.nesting_depth(raw) == depth_of(doc)
    assert safejson.loads(raw, max_depth=depth_of(doc)) == doc
    if depth_of(doc) > 0:
        with pytest.raises(safejson.JsonError, match="nested"):
            safejson.loads(raw, max_depth=depth_of(doc) - 1)


@pytest.mark.parametrize("opening", [b"[", b'{"a":', b'[{"[":'])
def test_deep_nesting_is_refused_without_touching_the_c_stack(opening: bytes) -> None:
    with raised_recursion_limit():
        for max_depth in (64, safejson.ORJSON_MAX_DEPTH):
            with pytest.raises(safejson.JsonError, match="nested"):
                safejson.loads(opening * 100_000, max_bytes=MB, max_depth=max_depth)
        with pytest.raises(safejson.JsonError):
            safejson.loads(b"{" * 100_000, max_bytes=MB)
    ok = b"[" * safejson.ORJSON_MAX_DEPTH + b"]" * safejson.ORJSON_MAX_DEPTH
    assert depth_of(safejson.loads(ok)) == safejson.ORJSON_MAX_DEPTH


def test_the_old_checks_quadratic_bait_is_measured_right_at_1_mb() -> None:
    # Unterminated strings full of escaped quotes: a backtracking string pattern rescans the rest
    # of the document from every quote (32 KB took seconds); the scan here is one pass.
    bait = b"[" * 2000 + b'"' + b'\\"' * (MB // 2)
    assert safejson.nesting_depth(bait) == 2000
    with pytest.raises(safejson.JsonError, match="nested 2000 deep"):
        safejson.loads(bait, max_bytes=2 * MB, max_depth=512)
    closed = b"[" * 600 + b'"' + b'\\"' * (MB // 2) + b'"' + b"]" * 600
    assert safejson.nesting_depth(closed) == 600
    assert depth_of(safejson.loads(closed, max_bytes=2 * MB)) == 600
    escaped = b'["' + b"\\\\" * (MB // 2) + b'"' + b"]" + b"[" * 2000
    assert safejson.nesting_depth(escaped) == 2000  # the quote after "\\\\" closes the string


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "not valid JSON"),
        (b"NaN", "not valid JSON"),
        (b"[Infinity]", "not valid JSON"),
        (b"-Infinity", "not valid JSON"),
        (b"1e999", "not valid JSON"),
        (b"1" * 5000, "not valid JSON"),
        (b'"\xff\xfe"', "UTF-8"),
        (b'"\xed\xa0\x80"', "UTF-8"),  # an encoded lone surrogate
        (b'"\\ud800"', "surrogate"),
        (b'{"a":1,}', "not valid JSON"),
        (b"[1] [2]", "not valid JSON"),
        (b"\xef\xbb\xbf[1]", "not valid JSON"),  # a byte-order mark
        ("[\ud800]", "lone surrogate"),
    ],
)
def test_hostile_documents_are_refused_with_a_reason(raw: bytes | str, message: str) -> None:
    with pytest.raises(safejson.JsonError, match=message):
        safejson.loads(raw)


def test_size_is_capped_before_decoding() -> None:
    with pytest.raises(safejson.JsonTooLargeError, match="over 10 bytes"):
        safejson.loads(b"[" + b"1," * 10 + b"1]", max_bytes=10)
    assert safejson.loads(b"[1,2,3,4]", max_bytes=9) == [1, 2, 3, 4]


def test_integers_past_64_bits_stay_exact() -> None:
    big = 2**256 - 1
    assert safejson.loads(f'{{"x":{big},"y":"0x{"0" * 64}"}}') == {"x": big, "y": "0x" + "0" * 64}
    assert safejson.loads(f"[-{big}, 1.5, 18446744073709551615]") == [-big, 1.5, 2**64 - 1]
    assert safejson.loads(b"[0.12345678901234567890123]") == [0.12345678901234567890123]
    assert safejson.loads(str(2**100)) == 2**100
    # orjson keeps -2^63 exact and rounds one below it: 19 digits with a minus are enough
    assert safejson.loads(b"-9223372036854775808") == -(2**63)
    assert safejson.loads(b"-9223372036854775809") == -(2**63) - 1
    assert safejson.loads(b'{"a":[-9999999999999999999]}') == {"a": [-9999999999999999999]}
    assert safejson.loads(b'["a 12345678901234567890", 1]') == ["a 12345678901234567890", 1]
    assert safejson.loads(f"[{big}]", exact_integers=False) == [float(big)]  # nodes: hex only
    assert safejson.dumps({"x": big, "y": [1]}) == b'{"x":%d,"y":[1]}' % big
    assert safejson.dumps({"a": 1}) == b'{"a":1}'


def test_transport_decoding_maps_refusals_to_failure_kinds() -> None:
    with raised_recursion_limit(), pytest.raises(TransportError) as deep:
        decode_json(b"[" * 100_000)
    assert deep.value.kind is FailureKind.MALFORMED
    assert decode_json(b'{"result":"0x1"}') == {"result": "0x1"}
