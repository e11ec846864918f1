"""Bundles on the wire without a network: signatures, request shapes per builder, answer checks."""

import json
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.datatypes import Signature
from eth_utils.crypto import keccak

from arbx.chain.transport import FailureKind, TransportError
from arbx.domain.errors import ConfigError
from arbx.execution.flashbots import (
    FLASHBOTS_HEADER,
    MAX_BUNDLE_TXS,
    BuilderSpec,
    FlashbotsSigner,
    block_uuid,
    bundle_hash,
    call_bundle_params,
    cancel_request,
    parse_bundle_ack,
    parse_call_bundle,
    parse_cancel,
    parse_send_bundle,
    send_bundle_params,
    verify_flashbots_signature,
    wei,
)
from arbx.execution.rawtx import call_object, decode_raw_tx, tx_hash
from arbx.execution.relay import BundleSubmitter, RelayClient, SubmitStatus

KEY = "0x" + "42" * 32  # a throwaway key: never funded, never used elsewhere
OTHER_KEY = "0x" + "43" * 32
SENDER = Account.from_key("0x" + "44" * 32)
FLASHBOTS = BuilderSpec("flashbots", "https://relay.example", supports_call_bundle=True)
UUID_NAMED = BuilderSpec(
    "beaver", "https://beaver.example", uuid_field="uuid", cancel="empty_bundle"
)
NO_UUID = BuilderSpec("plain", "https://plain.example", uuid_field=None, cancel=None)
HASH_A = b"\xaa" * 32


def signed(nonce: int, tx_type: int = 2, **extra: Any) -> bytes:
    """A signed transaction from SENDER."""
    tx: dict[str, Any] = {
        "chainId": 1,
        "nonce": nonce,
        "to": "0x000000000000000000000000000000000000dEaD",
        "value": 7,
        "gas": 50_000,
        "data": b"\x01\x02",
    }
    if tx_type == 2:
        tx |= {"type": 2, "maxFeePerGas": 30 * 10**9, "maxPriorityFeePerGas": 10**9}
    else:
        tx["gasPrice"] = 20 * 10**9
        if tx_type == 1:
            tx["type"] = 1
            tx["accessList"] = [{"address": tx["to"], "storageKeys": ["0x" + "00" * 31 + "05"]}]
    tx |= extra
    return bytes(SENDER.sign_transaction(tx).raw_transaction)


RAW = [signed(0), signed(1)]


# -- the signature header ----------------------------------------------------------------------


def test_header_signs_the_hex_string_of_keccak_of_the_exact_body() -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[]}'
    signer = FlashbotsSigner(KEY)
    address, signature = signer(body).split(":")
    assert address == Account.from_key(KEY).address == signer.address
    # Recomputed as the Flashbots Go reference does: EIP-191 over Keccak256Hash(body).Hex()
    hashed_body = "0x" + keccak(body).hex()
    digest = keccak(
        b"\x19Ethereum Signed Message:\n" + str(len(hashed_body)).encode() + hashed_body.encode()
    )
    raw = bytes.fromhex(signature[2:])
    recovered = Signature(raw[:64] + bytes([raw[64] - 27])).recover_public_key_from_msg_hash(digest)
    assert recovered.to_checksum_address() == address
    # ... and not over the 32 raw bytes, nor over the body itself
    as_bytes = Account.recover_message(encode_defunct(keccak(body)), signature=raw)
    assert as_bytes != address
    assert Account.recover_message(encode_defunct(body), signature=raw) != address
    assert KEY[2:] not in repr(signer)


def test_verify_accepts_the_signer_and_v_as_0_or_1() -> None:
    body = b'{"a":1}'
    header = FlashbotsSigner(KEY)(body)
    assert verify_flashbots_signature(header, body) == Account.from_key(KEY).address.lower()
    address, signature = header.split(":")
    raw = bytes.fromhex(signature[2:])
    go_style = f"{address}:0x{(raw[:64] + bytes([raw[64] - 27])).hex()}"
    assert verify_flashbots_signature(go_style, body) == address.lower()


@pytest.mark.parametrize(
    "make_header",
    [
        lambda body: None,
        lambda body: "",
        lambda body: FlashbotsSigner(KEY)(body + b" "),  # another body
        lambda body: (
            Account.from_key(OTHER_KEY).address + ":" + FlashbotsSigner(KEY)(body).split(":")[1]
        ),
        lambda body: FlashbotsSigner(KEY)(body).replace(":", ""),
        lambda body: FlashbotsSigner(KEY)(body)[:-2],
        lambda body: FlashbotsSigner(KEY)(body)[:-2] + "zz",
        lambda body: FlashbotsSigner(KEY)(body)[:-2] + "1d",  # v = 29
        lambda body: "0x1234:" + FlashbotsSigner(KEY)(body).split(":")[1],
    ],
)
def test_verify_refuses_missing_malformed_and_foreign_signatures(make_header: Any) -> None:
    body = b'{"jsonrpc":"2.0"}'
    with pytest.raises(ValueError, match=FLASHBOTS_HEADER):
        verify_flashbots_signature(make_header(body), body)


# -- requests -----------------------------------------------------------------------------------


def test_send_bundle_puts_the_uuid_under_each_builders_own_field() -> None:
    common: dict[str, Any] = {
        "replacement_uuid": "u-1",
        "min_timestamp": 5,
        "reverting_hashes": [HASH_A],
    }
    fb = send_bundle_params(FLASHBOTS, RAW, 100, **common)
    assert fb == {
        "txs": ["0x" + raw.hex() for raw in RAW],
        "blockNumber": "0x64",
        "minTimestamp": 5,
        "revertingTxHashes": ["0x" + "aa" * 32],
        "replacementUuid": "u-1",
    }
    beaver = send_bundle_params(UUID_NAMED, RAW, 100, **common)
    assert beaver["uuid"] == "u-1"
    assert "replacementUuid" not in beaver
    plain = send_bundle_params(NO_UUID, RAW, 100, **common)
    assert "uuid" not in plain
    assert "replacementUuid" not in plain
    assert "maxTimestamp" not in plain


def test_bundle_requests_refuse_what_a_relay_would() -> None:
    with pytest.raises(ValueError, match="empty"):
        send_bundle_params(FLASHBOTS, [], 100)
    with pytest.raises(ValueError, match="at most"):
        send_bundle_params(FLASHBOTS, [RAW[0]] * (MAX_BUNDLE_TXS + 1), 100)
    with pytest.raises(ValueError, match="over"):
        send_bundle_params(FLASHBOTS, [b"\x02" + b"\x00" * 300_000], 100)
    with pytest.raises(ValueError, match="hex"):
        send_bundle_params(FLASHBOTS, ["02f8"], 100)


def test_cancel_follows_the_builders_capability() -> None:
    assert cancel_request(FLASHBOTS, "u") == ("eth_cancelBundle", [{"replacementUuid": "u"}])
    method, params = cancel_request(UUID_NAMED, "u", 9)
    assert method == "eth_sendBundle"
    assert params == [{"txs": [], "blockNumber": "0x9", "uuid": "u"}]
    with pytest.raises(ValueError, match="its block"):
        cancel_request(UUID_NAMED, "u")
    with pytest.raises(ValueError, match="cannot cancel"):
        cancel_request(NO_UUID, "u", 9)


def test_call_bundle_params_and_hashes() -> None:
    params = call_bundle_params(RAW, 10, "latest", timestamp=99)
    assert params["stateBlockNumber"] == "latest"
    assert params["blockNumber"] == "0xa"
    assert params["timestamp"] == 99
    assert call_bundle_params(RAW, 10, 9)["stateBlockNumber"] == "0x9"
    assert bundle_hash(RAW) == keccak(keccak(RAW[0]) + keccak(RAW[1]))


def test_block_uuids_are_stable_distinct_and_uuids() -> None:
    base = str(uuid.uuid4())
    first = {block_uuid(base, n) for n in (10, 11, 12)}
    assert len(first) == 3
    assert first == {block_uuid(base, n) for n in (10, 11, 12)}
    assert all(uuid.UUID(u).version == 5 for u in first)
    with pytest.raises(ValueError, match="not a UUID"):
        block_uuid("nope", 1)


def test_builder_spec_refuses_bad_settings() -> None:
    with pytest.raises(ConfigError):
        BuilderSpec("x", "ftp://relay")
    with pytest.raises(ConfigError):
        BuilderSpec("x", "https://relay", uuid_field=None)  # can cancel without a uuid?
    with pytest.raises(ConfigError):
        BuilderSpec("", "https://relay")


# -- a builder reading requests ------------------------------------------------------------------


def test_builder_side_parsing_round_trips_and_refuses() -> None:
    params = send_bundle_params(FLASHBOTS, RAW, 7, replacement_uuid="u", reverting_hashes=[HASH_A])
    request = parse_send_bundle([params])
    assert [tx.raw for tx in request.txs] == RAW
    assert (request.block_number, request.uuid, request.reverting) == (7, "u", frozenset({HASH_A}))
    assert parse_send_bundle([{"txs": [], "blockNumber": "0x7", "uuid": "u"}]).txs == ()
    assert parse_cancel([{"replacementUuid": "u"}]) == "u"
    bad: Any
    for bad in (
        {},
        [],
        [{"txs": [], "blockNumber": "0x7"}],  # empty without a uuid
        [{"txs": ["0x02"], "blockNumber": "0x7"}],
        [{"txs": ["0x" + RAW[0].hex()], "blockNumber": 7}],
        [{"txs": ["0x" + RAW[0].hex()], "blockNumber": "0x7", "minTimestamp": True}],
        [{"txs": ["0x" + RAW[0].hex()], "blockNumber": "0x7", "revertingTxHashes": ["0x12"]}],
    ):
        with pytest.raises(ValueError):  # noqa: PT011 (each says its own reason)
            parse_send_bundle(bad)
    with pytest.raises(ValueError, match="replacementUuid"):
        parse_cancel([{}])


# -- answers ------------------------------------------------------------------------------------


def flashbots_answer(**changes: Any) -> dict[str, Any]:
    """An eth_callBundle answer shaped as the Flashbots documentation shows it."""
    answer: dict[str, Any] = {
        "bundleGasPrice": "476190476193",
        "bundleHash": "0x" + bundle_hash(RAW).hex(),
        "coinbaseDiff": "20000000000126000",
        "ethSentToCoinbase": "20000000000000000",
        "gasFees": "126000",
        "results": [
            {
                "coinbaseDiff": "10000000000063000",
                "ethSentToCoinbase": "10000000000000000",
                "fromAddress": SENDER.address,
                "gasFees": "63000",
                "gasPrice": "476190476193",
                "gasUsed": 21000,
                "toAddress": "0x73625f59CAdc5009Cb458B751b3E7b6b48C06f2C",
                "txHash": "0x" + tx_hash(RAW[0]).hex(),
                "value": "0x",
            },
            {
                "coinbaseDiff": "10000000000063000",
                "ethSentToCoinbase": "10000000000000000",
                "fromAddress": SENDER.address,
                "gasFees": "63000",
                "gasPrice": "476190476193",
                "gasUsed": 21000,
                "toAddress": "0x73625f59CAdc5009Cb458B751b3E7b6b48C06f2C",
                "txHash": "0x" + tx_hash(RAW[1]).hex(),
                "value": "0x",
                "error": "execution reverted",
                "revert": "no profit",
            },
        ],
        "stateBlockNumber": 5221585,
        "totalGasUsed": 42000,
    }
    answer.update(changes)
    return answer


def test_call_bundle_answer_is_read_with_its_mixed_number_formats() -> None:
    simulation = parse_call_bundle(flashbots_answer(), [tx_hash(raw) for raw in RAW])
    assert simulation.total_gas_used == 42000
    assert simulation.coinbase_diff == 20000000000126000
    assert simulation.state_block == 5221585
    assert [r.gas_used for r in simulation.results] == [21000, 21000]
    assert not simulation.ok
    assert simulation.results[1].revert == "no profit"
    assert "tx 1" in (simulation.first_failure() or "")


@pytest.mark.parametrize(
    "answer",
    [
        None,
        [],
        "ok",
        flashbots_answer(results={}),
        flashbots_answer(totalGasUsed=41999),
        flashbots_answer(totalGasUsed=True),
        flashbots_answer(coinbaseDiff="-1"),
        flashbots_answer(coinbaseDiff=str(2**256)),
        flashbots_answer(coinbaseDiff=1.5),
        flashbots_answer(results=list(reversed(flashbots_answer()["results"]))),
        flashbots_answer(results=flashbots_answer()["results"][:1]),
        flashbots_answer(results=[{**flashbots_answer()["results"][0], "error": 3}, {}]),
    ],
)
def test_hostile_call_bundle_answers_are_refused(answer: Any) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)):
        parse_call_bundle(answer, [tx_hash(raw) for raw in RAW])


def test_send_bundle_ack_is_checked() -> None:
    assert parse_bundle_ack({"bundleHash": "0x" + "ab" * 32}) == b"\xab" * 32
    assert parse_bundle_ack(None) is None
    for bad in ({}, {"bundleHash": "0x12"}, {"bundleHash": 5}, ["0x" + "ab" * 32], "0x"):
        with pytest.raises((ValueError, TypeError, KeyError)):
            parse_bundle_ack(bad)
    assert wei("0x10") == 16
    assert wei("10") == 10
    with pytest.raises(ValueError, match="amount"):
        wei(False)


# -- the client over a fake transport ----------------------------------------------------------


class FakeRelays:
    """Answers per URL: a result, an error object, garbage, or a transport failure."""

    def __init__(self, behaviour: Mapping[str, Any]) -> None:
        self.behaviour = behaviour
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def post(
        self, url: str, body: bytes, timeout: float, headers: Mapping[str, str] | None = None
    ) -> Any:
        self.sent.append((url, body, dict(headers or {})))
        request = json.loads(body)
        what = self.behaviour[url]
        if isinstance(what, TransportError):
            raise what
        if what == "ack":
            return {
                "jsonrpc": "2.0",
                "id": request["id"],
                "result": {"bundleHash": "0x" + "cd" * 32},
            }
        if what == "error":
            return {
                "jsonrpc": "2.0",
                "id": request["id"],
                "error": {"code": -32000, "message": "no"},
            }
        if what == "bad hash":
            return {"jsonrpc": "2.0", "id": request["id"], "result": {"bundleHash": "0x1"}}
        if what == "wrong id":
            return {"jsonrpc": "2.0", "id": 999, "result": {"bundleHash": "0x" + "cd" * 32}}
        return what  # garbage as it is

    async def close(self) -> None:
        pass


SPECS = [
    BuilderSpec("ok", "http://ok"),
    BuilderSpec("slow", "http://slow", uuid_field="uuid", cancel="empty_bundle"),
    BuilderSpec("garbage", "http://garbage"),
    BuilderSpec("refusing", "http://refusing"),
    BuilderSpec("liar", "http://liar"),
    BuilderSpec("bad-hash", "http://bad-hash"),
]
BEHAVIOUR = {
    "http://ok": "ack",
    "http://slow": TransportError(FailureKind.TIMEOUT, "no answer"),
    "http://garbage": [1, 2, 3],
    "http://refusing": "error",
    "http://liar": "wrong id",
    "http://bad-hash": "bad hash",
}


@pytest.mark.asyncio
async def test_fan_out_signs_every_body_and_counts_every_failure() -> None:
    fake = FakeRelays(BEHAVIOUR)
    base = str(uuid.uuid4())
    async with RelayClient(FlashbotsSigner(KEY), transport=fake) as relay:
        report = await relay.fan_out(SPECS, RAW, 100, replacement_uuid=base)
    assert report.blocks == (100, 101, 102)
    assert len(report.submissions) == 18
    assert [s.builder for s in report.acks] == ["ok"] * 3
    assert {s.builder: str(s.status) for s in report.failures} == {
        "slow": "timeout",
        "garbage": "malformed",
        "refusing": "rpc_error",
        "liar": "malformed",
        "bad-hash": "malformed",
    }
    assert relay.stats.failures() == 15
    assert relay.stats.by_builder["ok"]["ack"] == 3
    for url, body, headers in fake.sent:
        assert verify_flashbots_signature(headers[FLASHBOTS_HEADER], body) == (
            Account.from_key(KEY).address.lower()
        )
        params = json.loads(body)["params"][0]
        block = int(params["blockNumber"], 16)
        field = "uuid" if url == "http://slow" else "replacementUuid"
        assert params[field] == block_uuid(base, block)
    assert report.bundle_hash == bundle_hash(RAW)


@pytest.mark.asyncio
async def test_cancel_without_capability_is_unsupported_not_raised() -> None:
    fake = FakeRelays({"http://plain": "ack", "http://ok": "ack"})
    async with RelayClient(FlashbotsSigner(KEY), transport=fake) as relay:
        refused = await relay.cancel_bundle(BuilderSpec("plain", "http://plain", None, None), "u")
        done = await relay.cancel_bundle(BuilderSpec("ok", "http://ok"), "u")
    assert refused.status is SubmitStatus.UNSUPPORTED
    assert done.ok
    assert json.loads(fake.sent[0][1])["method"] == "eth_cancelBundle"
    with pytest.raises(ConfigError, match="eth_callBundle"):
        await relay.call_bundle(BuilderSpec("ok", "http://ok"), RAW, 1)


@pytest.mark.asyncio
async def test_the_submitter_sends_bundles_to_builders_only() -> None:
    fake = FakeRelays({"http://ok": "ack"})
    async with RelayClient(FlashbotsSigner(KEY), transport=fake) as relay:
        report = await BundleSubmitter(relay, [SPECS[0]], blocks_ahead=1).submit(RAW, 10)
        with pytest.raises(ConfigError, match="no builder"):
            BundleSubmitter(relay, [])
    assert report.blocks == (10, 11)
    assert [sent[0] for sent in fake.sent] == ["http://ok", "http://ok"]
    assert {json.loads(sent[1])["method"] for sent in fake.sent} == {"eth_sendBundle"}


# -- raw transactions ---------------------------------------------------------------------------


@pytest.mark.parametrize("tx_type", [0, 1, 2])
def test_raw_transactions_decode_to_their_signed_fields(tx_type: int) -> None:
    raw = signed(3, tx_type)
    tx = decode_raw_tx("0x" + raw.hex())
    assert tx.sender == SENDER.address.lower()
    assert (tx.nonce, tx.value, tx.gas, tx.data, tx.tx_type) == (3, 7, 50_000, b"\x01\x02", tx_type)
    assert tx.hash == keccak(raw)
    assert tx.chain_id == 1
    call = call_object(tx)
    assert call["from"] == tx.sender
    assert call["input"] == "0x0102"
    if tx_type == 2:
        assert (call["maxFeePerGas"], call["maxPriorityFeePerGas"]) == (hex(30 * 10**9), hex(10**9))
        assert tx.tip(29 * 10**9) == 10**9
        assert tx.tip(int(29.5 * 10**9)) == int(0.5 * 10**9)
    else:
        assert call["gasPrice"] == hex(20 * 10**9)
    if tx_type == 1:
        assert call["accessList"][0]["storageKeys"] == ["0x" + "00" * 31 + "05"]


@pytest.mark.parametrize(
    "raw", ["", "0x", "0x02", "0xc0", "0x05aabb", "zz", b"\x02" + b"\xff" * 40]
)
def test_garbage_is_not_a_transaction(raw: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the reason varies with the garbage)
        decode_raw_tx(raw)
