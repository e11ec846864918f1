"""Type-2 transactions and relay signatures made and read back directly are eth-account's, bit
for bit: random transactions and messages, and every corruption of a signed transaction is read
the same way (or refused) by both paths."""

from __future__ import annotations

import re

import pytest
import rlp  # type: ignore[import-untyped]
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arbx.execution.eip1559 import SECP256K1_N, SIGNED, decode_eip1559
from arbx.execution.keys import RelaySigner, TxSigner
from arbx.execution.rawtx import RawTx, decode_raw_tx, decode_with_eth_account
from arbx.execution.tx import build_execute_tx

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ACCOUNT = Account.from_key(KEY)
SIGNER = TxSigner(ACCOUNT, "test")
RELAY = RelaySigner(ACCOUNT, "test")
QUICK = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

uint64 = st.integers(0, 2**64 - 2)
uint256 = st.integers(0, 2**256 - 1)
execute_txs = st.builds(
    build_execute_tx,
    chain_id=st.integers(1, 2**64),
    executor=st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    calldata=st.binary(max_size=600),
    nonce=uint64,
    gas_limit=st.integers(1, 2**64),
    max_fee=st.integers(2**40, 2**200),
    priority_fee=st.integers(0, 2**40),
)


def _eth_account_reads(raw: bytes) -> tuple[RawTx | None, str]:
    """eth-account's reading of ``raw``, or None and why it refuses it."""
    try:
        return decode_with_eth_account(raw), ""
    except ValueError as exc:
        return None, str(exc)


@QUICK
@given(tx=execute_txs)
def test_signing_an_executor_call_gives_eth_accounts_bytes(tx: dict[str, object]) -> None:
    signed = SIGNER.sign_transaction(tx)
    reference = ACCOUNT.sign_transaction(tx)
    assert signed.raw == bytes(reference.raw_transaction)
    assert signed.hash == bytes(reference.hash) == keccak(signed.raw)


@QUICK
@given(tx=execute_txs, value=uint256)
def test_reading_back_gives_eth_accounts_fields_and_sender(
    tx: dict[str, object], value: int
) -> None:
    raw = bytes(ACCOUNT.sign_transaction({**tx, "value": value}).raw_transaction)
    assert decode_eip1559(raw) is not None  # the direct path took it
    assert decode_raw_tx(raw) == decode_with_eth_account(raw)
    assert decode_raw_tx(raw).sender == ACCOUNT.address.lower()


def test_an_access_list_is_read_the_same_way() -> None:
    tx = build_execute_tx(1, "0x" + "22" * 20, b"\x01\x02", 3, 90_000, 10**10, 10**9)
    tx["accessList"] = [
        {"address": to_checksum_address("0x" + "33" * 20), "storageKeys": ["0x" + "00" * 31 + "05"]}
    ]
    raw = bytes(ACCOUNT.sign_transaction(tx).raw_transaction)
    assert SIGNER.sign_transaction(tx).raw == raw  # eth-account's path: not a plain call
    direct = decode_raw_tx(raw)
    assert direct == decode_with_eth_account(raw)
    assert direct.access_list == (("0x" + "33" * 20, ("0x" + "00" * 31 + "05",)),)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tx=execute_txs,
    at=st.integers(0, 10_000),
    byte=st.integers(0, 255),
    cut=st.integers(0, 3),
)
def test_a_corrupted_transaction_is_read_as_eth_account_reads_it(
    tx: dict[str, object], at: int, byte: int, cut: int
) -> None:
    raw = bytearray(ACCOUNT.sign_transaction(tx).raw_transaction)
    raw[at % len(raw)] = byte
    corrupted = bytes(raw[: len(raw) - cut])
    reference, error = _eth_account_reads(corrupted)
    if decode_eip1559(corrupted) is not None:  # accepted directly: it must be eth-account's
        assert reference is not None
    if reference is None:
        with pytest.raises(ValueError, match=re.escape(error)):
            decode_raw_tx(corrupted)
    else:
        assert decode_raw_tx(corrupted) == reference


def test_what_the_direct_path_does_not_take() -> None:
    tx = build_execute_tx(1, "0x" + "22" * 20, b"", 0, 21_000, 10**10, 10**9)
    raw = bytes(ACCOUNT.sign_transaction(tx).raw_transaction)
    assert decode_eip1559(raw[:-1]) is None  # truncated
    assert decode_eip1559(b"\x01" + raw[1:]) is None  # another type
    assert decode_eip1559(raw + b"\x00") is None  # trailing bytes
    direct = decode_eip1559(raw)
    assert direct is not None
    for y_parity, r, s in [(2, direct.r, direct.s), (0, 0, direct.s), (0, direct.r, SECP256K1_N)]:
        odd = b"\x02" + rlp.encode([*direct.fields.payload(), y_parity, r, s], SIGNED)
        assert decode_eip1559(odd) is None
        reference, error = _eth_account_reads(odd)
        assert reference is None
        with pytest.raises(ValueError, match=re.escape(error)):
            decode_raw_tx(odd)


def test_a_high_s_signature_is_read_as_eth_account_reads_it() -> None:
    tx = build_execute_tx(1, "0x" + "22" * 20, b"\x05", 0, 21_000, 10**10, 10**9)
    direct = decode_eip1559(bytes(ACCOUNT.sign_transaction(tx).raw_transaction))
    assert direct is not None
    flipped = [*direct.fields.payload(), 1 - direct.y_parity, direct.r, SECP256K1_N - direct.s]
    raw = b"\x02" + rlp.encode(flipped, SIGNED)
    reference, error = _eth_account_reads(raw)
    if reference is None:
        with pytest.raises(ValueError, match=re.escape(error)):
            decode_raw_tx(raw)
    else:
        assert decode_raw_tx(raw) == reference


@QUICK
@given(body=st.binary(max_size=2000))
def test_relay_signatures_are_eth_accounts(body: bytes) -> None:
    text = "0x" + keccak(body).hex()
    reference = ACCOUNT.sign_message(encode_defunct(text=text)).signature
    assert RELAY.flashbots_signature(body) == f"{ACCOUNT.address}:0x{bytes(reference).hex()}"


@QUICK
@given(text=st.text(max_size=200))
def test_any_text_is_signed_as_eth_account_signs_it(text: str) -> None:
    reference = ACCOUNT.sign_message(encode_defunct(text=text)).signature
    assert RELAY.sign_text(text) == "0x" + bytes(reference).hex()
