"""The RPC client's pure parts: backoff schedule, answer validation, strict hex, decoding."""

import json
import random
import sys

import pytest

from arbx.chain.heads import decode_head
from arbx.chain.rpc import (
    Endpoint,
    ExecutionRevertedError,
    RpcError,
    backoff_delay,
    decode_log,
    hex_address,
    hex_bytes,
    hex_hash,
    hex_int,
    parse_batch,
    parse_reply,
    request_body,
)
from arbx.chain.transport import FailureKind, TransportError, decode_json
from arbx.domain.errors import ConfigError
from arbx.errors import SimulationRevertedError, TransientError

HASH = "0x" + "ab" * 32
PARENT = "0x" + "cd" * 32


def reply(request_id: object = 7, **fields: object) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": request_id, **fields}


def assert_malformed(call: object, *args: object) -> None:
    assert callable(call)
    with pytest.raises(TransportError) as caught:
        call(*args)
    assert caught.value.kind is FailureKind.MALFORMED
    assert isinstance(caught.value, TransientError)


# -- backoff ------------------------------------------------------------------------------------


def test_backoff_doubles_with_equal_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    for round_ in range(12):
        ceiling = min(1.0, 0.05 * 2**round_)
        delays = [backoff_delay(round_, 0.05, 1.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not constant
    assert backoff_delay(30, 0.05, 1.0, rng) <= 1.0


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    first = [backoff_delay(n, 0.1, 2.0, random.Random(5)) for n in range(5)]
    second = [backoff_delay(n, 0.1, 2.0, random.Random(5)) for n in range(5)]
    assert first == second


# -- single replies -----------------------------------------------------------------------------


def test_parse_reply_returns_the_result_even_when_null() -> None:
    assert parse_reply(reply(result="0x10"), 7) == "0x10"
    assert parse_reply(reply(result=None), 7) is None
    assert parse_reply(reply(result="0x1", error=None), 7) == "0x1"


def test_parse_reply_turns_error_objects_into_typed_errors() -> None:
    error = parse_reply(reply(error={"code": -32601, "message": "Method not found"}), 7)
    assert isinstance(error, RpcError)
    assert not isinstance(error, ExecutionRevertedError)
    assert (error.code, error.message, error.data) == (-32601, "Method not found", None)
    revert = parse_reply(reply(error={"code": 3, "message": "execution reverted", "data": "0x"}), 7)
    assert isinstance(revert, ExecutionRevertedError)
    assert isinstance(revert, SimulationRevertedError)
    assert revert.data == "0x"
    geth_style = parse_reply(reply(error={"code": -32000, "message": "execution reverted"}), 7)
    assert isinstance(geth_style, ExecutionRevertedError)


@pytest.mark.parametrize(
    "doc",
    [
        "0x10",
        ["0x10"],
        None,
        reply(8, result="0x1"),
        reply("7", result="0x1"),
        reply(7.0, result="0x1"),
        reply(None, result="0x1"),
        {"id": 7, "result": "0x1"},
        {"jsonrpc": "1.0", "id": 7, "result": "0x1"},
        reply(),
        reply(error=None),
        reply(result="0x1", error={"code": 1, "message": "x"}),
        reply(error="boom"),
        reply(error={"code": "1", "message": "x"}),
        reply(error={"code": True, "message": "x"}),
        reply(error={"code": 1}),
        reply(error={"code": 1, "message": 5}),
    ],
)
def test_parse_reply_refuses_malformed_replies(doc: object) -> None:
    assert_malformed(parse_reply, doc, 7)


def test_parse_reply_refuses_a_bool_id_that_equals_one() -> None:
    assert_malformed(parse_reply, reply(True, result="0x1"), 1)


# -- batches ------------------------------------------------------------------------------------


def test_parse_batch_matches_shuffled_replies_by_id() -> None:
    doc = [
        reply(12, result="c"),
        reply(10, result="a"),
        reply(11, error={"code": -1, "message": "m"}),
    ]
    results = parse_batch(doc, [10, 11, 12])
    assert results[0] == "a"
    assert isinstance(results[1], RpcError)
    assert results[2] == "c"


@pytest.mark.parametrize(
    "doc",
    [
        [reply(10, result="a")],
        [reply(10, result="a"), reply(11, result="b"), reply(12, result="c")],
        [reply(10, result="a"), reply(10, result="b")],
        [reply(10, result="a"), reply(99, result="b")],
        [reply(10, result="a"), "b"],
        [reply(10, result="a"), reply(11)],
        {"jsonrpc": "2.0", "id": None, "result": "a"},
        "nope",
    ],
)
def test_parse_batch_refuses_wrong_length_unknown_or_repeated_ids(doc: object) -> None:
    assert_malformed(parse_batch, doc, [10, 11])


def test_parse_batch_raises_a_whole_batch_error() -> None:
    doc = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch too large"}}
    with pytest.raises(RpcError, match="batch too large"):
        parse_batch(doc, [1, 2])


def test_request_body_is_the_json_rpc_document() -> None:
    assert json.loads(request_body(3, "eth_blockNumber", ())) == {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "eth_blockNumber",
        "params": [],
    }
    doc = json.loads(request_body(4, 'we"ird', ["0x1", False, {"a": None}]))
    assert doc["method"] == 'we"ird'
    assert doc["params"] == ["0x1", False, {"a": None}]


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b'{"a":', b"\xff\xfe\x00", b"[" * 100_000, b"1" * 5000]
)
def test_decode_json_turns_every_bad_body_into_a_malformed_failure(raw: bytes) -> None:
    assert_malformed(decode_json, raw)


# -- strict hex ---------------------------------------------------------------------------------


def test_hex_int_accepts_quantities_up_to_256_bits() -> None:
    assert hex_int("0x0") == 0
    assert hex_int("0x1b4") == 0x1B4
    assert hex_int("0x00ff") == 255
    assert hex_int("0x" + "f" * 64) == 2**256 - 1


@pytest.mark.parametrize(
    "value",
    ["0x", "1b4", "0X1b", "0x1_0", " 0x10", "0x10 ", "0x10\n", "0xg", "0x" + "1" * 65, 16, None,
     True, 1.5, ["0x1"], "0x١"],
)  # fmt: skip
def test_hex_int_refuses_anything_else(value: object) -> None:
    with pytest.raises(ValueError, match="not a hex quantity"):
        hex_int(value)


def test_hex_bytes_and_hashes_are_strict() -> None:
    assert hex_bytes("0x") == b""
    assert hex_bytes("0xdeADbeef") == bytes.fromhex("deadbeef")
    assert hex_hash(HASH) == bytes.fromhex("ab" * 32)
    for bad in ("0xabc", "deadbeef", "0xde ad", "0x zz", 5, None, "0x\u0661\u0662"):
        with pytest.raises(ValueError):  # noqa: PT011 (fromhex and ours both raise ValueError)
            hex_bytes(bad)
    with pytest.raises(ValueError, match="32-byte"):
        hex_hash("0x" + "ab" * 31)
    assert hex_address("0x" + "AB" * 20) == "0x" + "ab" * 20
    with pytest.raises(ValueError, match="not an address"):
        hex_address("0x" + "ab" * 21)


# -- decoding -----------------------------------------------------------------------------------


def test_decode_head_and_log() -> None:
    head = decode_head({"number": "0x10", "hash": HASH, "parentHash": PARENT, "timestamp": "0x5"})
    assert (head.number, head.timestamp) == (16, 5)
    assert head.hash == bytes.fromhex("ab" * 32)
    assert head.parent_hash == bytes.fromhex("cd" * 32)
    raw_log = {
        "address": "0x" + "Aa" * 20,
        "topics": [HASH],
        "data": "0x01",
        "blockNumber": "0x10",
        "blockHash": PARENT,
        "transactionHash": HASH,
        "transactionIndex": "0x0",
        "logIndex": "0x2",
        "removed": False,
    }
    log = decode_log(raw_log)
    assert log.address == "0x" + "aa" * 20
    assert log.topics == (bytes.fromhex("ab" * 32),)
    assert (log.data, log.block_number, log.log_index, log.removed) == (b"\x01", 16, 2, False)
    for broken in ({**raw_log, "removed": "no"}, {**raw_log, "topics": HASH}, {"address": 1}):
        with pytest.raises((ValueError, TypeError, KeyError)):
            decode_log(broken)
    with pytest.raises(TypeError):
        decode_head(["0x10"])


def test_endpoints_need_http_and_ws_urls() -> None:
    endpoint = Endpoint.of("http://user:secret@127.0.0.1:8545/key")
    assert endpoint.name == "127.0.0.1:8545"  # no credentials in names used by logs and metrics
    assert Endpoint("https://node.example", ws_url="wss://node.example").ws_url
    with pytest.raises(ConfigError):
        Endpoint("ws://127.0.0.1:8545")
    with pytest.raises(ConfigError):
        Endpoint("http://127.0.0.1:8545", ws_url="http://127.0.0.1:8545")


def test_deep_nesting_is_refused_even_with_a_raised_recursion_limit() -> None:
    # py_ecc (imported by web3) raises the limit to 100,000; json.loads would then overflow the C
    # stack on a hostile "[[[[..." body and kill the process instead of raising.
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, 100_000))
    try:
        for raw in (b"[" * 300_000, "{" * 300_000, b'["' + b"]" * 600 + b'",' + b"[" * 600):
            assert_malformed(decode_json, raw)
    finally:
        sys.setrecursionlimit(previous)
    assert decode_json(b'{"a":[1,{"b":"]]]"}]}') == {"a": [1, {"b": "]]]"}]}
    assert decode_json(json.dumps([[i] for i in range(2000)])) == [[i] for i in range(2000)]
