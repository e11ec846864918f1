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
