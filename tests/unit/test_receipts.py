"""Receipts from a node: decoded and checked field by field, anything else refused."""

from __future__ import annotations

from typing import Any

import pytest

from arbx.chain.receipts import Receipt, decode_receipt

BLOCK = "0x" + "Ab" * 32


def raw(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "blockNumber": "0x10",
        "blockHash": BLOCK,
        "status": "0x1",
        "gasUsed": "0x5208",
        "effectiveGasPrice": "0x3b9aca00",
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not ...}


def test_a_receipt_is_decoded_with_its_cost_and_a_lower_case_block_hash() -> None:
    found = decode_receipt(raw())
    assert found == Receipt(16, bytes.fromhex("ab" * 32), True, 21_000, 10**9)
    assert found.gas_cost == 21_000 * 10**9
    assert found.block_hash_hex == "0x" + "ab" * 32
    assert found.contract_address is None


def test_not_mined_is_none_a_failure_is_not_succeeded_and_an_old_node_pays_no_price() -> None:
    assert decode_receipt(None) is None
    failed = decode_receipt(raw(status="0x0", effectiveGasPrice=...))
    assert failed is not None
    assert (failed.succeeded, failed.gas_cost) == (False, 0)


def test_a_created_contract_s_address_is_checked_and_lower_cased() -> None:
    created = decode_receipt(raw(contractAddress="0x" + "AB" * 20))
    assert created is not None
    assert created.contract_address == "0x" + "ab" * 20
    with pytest.raises(ValueError, match="not an address"):
        decode_receipt(raw(contractAddress="0x1234"))


@pytest.mark.parametrize(
    "hostile",
    [
        [],
        "0x1",
        7,
        raw(status="0x2"),
        raw(status=1),
        raw(status=...),
        raw(blockNumber="16"),
        raw(blockNumber="0x" + "f" * 65),  # over 256 bits
        raw(blockHash="0x1234"),
        raw(blockHash=None),
        raw(gasUsed=...),
        raw(gasUsed="0x-1"),
        raw(effectiveGasPrice=[]),
    ],
)
def test_anything_that_is_not_a_receipt_is_refused_with_a_decoding_error(hostile: Any) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)):
        decode_receipt(hostile)


# --- what a receipt's logs moved of a token ---------------------------------------------------

WETH = "0x" + "C0" * 20
US = "0x" + "Ee" * 20
POOL = "0x" + "11" * 20
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
DEPOSIT_TOPIC = "0xe1fffcc4923d04b559f4d29a8bfc6cda04eb5b0d3c460751c2402c5c5cc9109c"
WITHDRAWAL_TOPIC = "0x7fcf532c15f0a6db0bd6d0e038bea71d30d808c7d98cb3bf7268a95bf5081b65"


def word(address: str) -> str:
    return "0x" + address[2:].rjust(64, "0")


def amount(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def log(address: str, *topics: str, data: str) -> dict[str, Any]:
    return {"address": address, "topics": list(topics), "data": data}


def transfer(src: str, dst: str, value: int, token: str = WETH) -> dict[str, Any]:
    return log(token, TRANSFER_TOPIC, word(src), word(dst), data=amount(value))


def test_the_logs_give_what_a_transaction_moved_of_a_token_to_a_holder() -> None:
    logs = [
        transfer(US, POOL, 10**18),  # out: the input
        transfer(POOL, US, 10**18 + 5_000),  # in: the output
        transfer(POOL, US, 7, token="0x" + "99" * 20),  # another token: not counted
        log(WETH, WITHDRAWAL_TOPIC, word(US), data=amount(300)),  # unwrapped to pay the builder
        log(WETH, DEPOSIT_TOPIC, word(US), data=amount(20)),
        log(WETH, WITHDRAWAL_TOPIC, word(POOL), data=amount(999)),  # someone else's
        log(WETH, "0x" + "00" * 32, data="0x"),  # an event that moves no balance
        transfer(US, US, 50),  # to itself: nothing
    ]
    found = decode_receipt(raw(logs=logs))
    assert found is not None
    assert found.logs is not None
    assert len(found.logs) == 8
    assert found.balance_change(WETH.upper().replace("0X", "0x"), US) == 5_000 - 300 + 20
    assert found.balance_change(WETH, POOL) == -5_000 - 999


def test_no_logs_or_a_balance_event_out_of_shape_is_unknown() -> None:
    bare = decode_receipt(raw())
    assert bare is not None
    assert bare.balance_change(WETH, US) is None
    unindexed = log(WETH, TRANSFER_TOPIC, data="0x" + "00" * 96)  # from, to, value in the data
    odd = decode_receipt(raw(logs=[transfer(POOL, US, 5), unindexed]))
    assert odd is not None
    assert odd.balance_change(WETH, US) is None
    short = decode_receipt(raw(logs=[log(WETH, DEPOSIT_TOPIC, word(US), data="0x01")]))
    assert short is not None
    assert short.balance_change(WETH, US) is None


@pytest.mark.parametrize(
    "logs",
    [
        "0x",
        [None],
        [{"address": WETH, "topics": "0x", "data": "0x"}],
        [log("0x12", TRANSFER_TOPIC, data="0x")],
        [log(WETH, "0x1234", data="0x")],
        [log(WETH, TRANSFER_TOPIC, data="0xzz")],
        [log(WETH, *([TRANSFER_TOPIC] * 5), data="0x")],
        [log(WETH, data="0x")] * 4097,
    ],
)
def test_logs_that_are_not_logs_are_refused(logs: Any) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)):
        decode_receipt(raw(logs=logs))
