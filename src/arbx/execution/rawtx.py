"""Signed raw transactions, read back: hash, sender and fields, and the call that replays one.

A bundle is a list of signed transactions; simulating "the exact signed transaction" means calling
with its own sender, nonce, gas, fees, value, data and access list. ``decode_raw_tx`` recovers all
of them (legacy, EIP-2930 and EIP-1559 transactions; blob and set-code transactions are refused),
and ``call_object`` turns them into the JSON object ``eth_call`` and ``eth_simulateV1`` take.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from eth_account import Account
from eth_account._utils.legacy_transactions import Transaction
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from arbx.execution.eip1559 import SignedEip1559, decode_eip1559

SUPPORTED_TYPES: Final = frozenset({0, 1, 2})


@dataclass(frozen=True, slots=True)
class RawTx:
    """A decoded signed transaction; addresses lower-case hex, ``to`` None for a creation."""

    raw: bytes
    hash: bytes
    sender: str
    tx_type: int
    chain_id: int | None
    nonce: int
    gas: int
    to: str | None
    value: int
    data: bytes
    gas_price: int | None  # legacy and EIP-2930
    max_fee_per_gas: int | None  # EIP-1559
    max_priority_fee_per_gas: int | None
    access_list: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def fee_cap(self) -> int:
        """The most it pays per gas: ``gasPrice`` or ``maxFeePerGas``."""
        cap = self.gas_price if self.gas_price is not None else self.max_fee_per_gas
        return cap or 0

    def tip(self, base_fee: int) -> int:
        """What the block's coinbase gets per gas at ``base_fee`` (negative if it cannot pay it)."""
        if self.max_priority_fee_per_gas is None:
            return self.fee_cap - base_fee
        return min(self.max_priority_fee_per_gas, self.fee_cap - base_fee)


def raw_tx_bytes(raw: bytes | str) -> bytes:
    """A raw transaction as bytes, from bytes or "0x" hex; ValueError if it is empty or not hex."""
    if isinstance(raw, str):
        if raw[:2] != "0x":
            raise ValueError(f"raw transaction is not 0x-hex: {raw[:20]!r}")
        data = bytes.fromhex(raw[2:])
        if 2 * len(data) != len(raw) - 2:
            raise ValueError("raw transaction hex has whitespace")
    else:
        data = bytes(raw)
    if not data:
        raise ValueError("empty raw transaction")
    return data


def tx_hash(raw: bytes | str) -> bytes:
    """The transaction hash: keccak256 of the raw bytes (typed envelopes included)."""
    return keccak(raw_tx_bytes(raw))


def _address(value: Any) -> str | None:
    data = bytes(value)
    if not data:
        return None
    if len(data) != 20:
        raise ValueError(f"address of {len(data)} bytes")
    return "0x" + data.hex()


def decode_raw_tx(raw: bytes | str) -> RawTx:
    """The fields and the recovered sender of a signed transaction; ValueError if it is not one."""
    data = raw_tx_bytes(raw)
    direct = decode_eip1559(data)
    if direct is not None:  # a plain type-2 transaction, read back without eth-account
        return _from_eip1559(direct)
    return decode_with_eth_account(data)


def decode_with_eth_account(data: bytes) -> RawTx:
    """``decode_raw_tx`` by eth-account's general model (any supported type, or why not)."""
    try:
        if data[0] >= 0xC0:
            fields: dict[str, Any] = Transaction.from_bytes(data).as_dict()
            tx_type = 0
            v = fields["v"]
            chain_id = (v - 35) // 2 if v >= 35 else None
        else:
            tx_type = data[0]
            if tx_type not in SUPPORTED_TYPES:
                raise ValueError(f"transaction type {tx_type} is not supported")
            fields = TypedTransaction.from_bytes(HexBytes(data)).as_dict()
            chain_id = fields["chainId"]
        sender = Account.recover_transaction(data).lower()
    except ValueError:
        raise
    except Exception as exc:  # rlp, eth_keys and eth_account raise their own kinds
        raise ValueError(f"not a signed transaction: {exc}") from exc
    access = tuple(
        (_address(item["address"]) or "", tuple(f"0x{key:064x}" for key in item["storageKeys"]))
        for item in fields.get("accessList", ())
    )
    return RawTx(
        raw=data,
        hash=keccak(data),
        sender=sender,
        tx_type=tx_type,
        chain_id=chain_id,
        nonce=fields["nonce"],
        gas=fields["gas"],
        to=_address(fields["to"]),
        value=fields["value"],
        data=bytes(fields["data"]),
        gas_price=fields.get("gasPrice"),
        max_fee_per_gas=fields.get("maxFeePerGas"),
        max_priority_fee_per_gas=fields.get("maxPriorityFeePerGas"),
        access_list=access,
    )


def _from_eip1559(tx: SignedEip1559) -> RawTx:
    fields = tx.fields
    return RawTx(
        raw=tx.raw,
        hash=tx.hash,
        sender="0x" + tx.sender.hex(),
        tx_type=2,
        chain_id=fields.chain_id,
        nonce=fields.nonce,
        gas=fields.gas,
        to="0x" + fields.to.hex() if fields.to else None,
        value=fields.value,
        data=fields.data,
        gas_price=None,
        max_fee_per_gas=fields.max_fee_per_gas,
        max_priority_fee_per_gas=fields.max_priority_fee_per_gas,
        access_list=tuple(
            ("0x" + address.hex(), tuple(f"0x{key:064x}" for key in keys))
            for address, keys in fields.access_list
        ),
    )


def decode_all(raw_txs: Sequence[bytes | str]) -> list[RawTx]:
    """``decode_raw_tx`` of each; ValueError naming the position of the first bad one."""
    decoded: list[RawTx] = []
    for index, raw in enumerate(raw_txs):
        try:
            decoded.append(decode_raw_tx(raw))
        except ValueError as exc:
            raise ValueError(f"tx {index}: {exc}") from exc
    return decoded


def call_object(tx: RawTx, *, with_nonce: bool = False) -> dict[str, Any]:
    """The JSON-RPC call object that replays ``tx`` (``eth_call``, ``eth_simulateV1``)."""
    call: dict[str, Any] = {
        "from": tx.sender,
        "gas": hex(tx.gas),
        "value": hex(tx.value),
        "input": "0x" + tx.data.hex(),
    }
    if tx.to is not None:
        call["to"] = tx.to
    if tx.gas_price is not None:
        call["gasPrice"] = hex(tx.gas_price)
    else:
        call["maxFeePerGas"] = hex(tx.max_fee_per_gas or 0)
        call["maxPriorityFeePerGas"] = hex(tx.max_priority_fee_per_gas or 0)
    if tx.tx_type:
        call["accessList"] = [
            {"address": address, "storageKeys": list(keys)} for address, keys in tx.access_list
        ]
    if with_nonce:
        call["nonce"] = hex(tx.nonce)
    return call
