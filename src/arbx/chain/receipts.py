"""Transaction receipts, decoded once and checked: the one reader of ``eth_getTransactionReceipt``.

A receipt says where a transaction landed (block number and hash), whether it succeeded, and
what it cost. Everything that settles our own transactions reads it: the inclusion tracker
(after a reorg), the live executor (a settled bundle's gas and profit), the start-up
reconciliation and the check of rows after a re-bootstrap. A node's answer is checked field by
field; one that is not a receipt is a malformed answer (``RpcClient`` counts it against the
endpoint and asks another), never a raw exception in the caller. ``None`` is the node's own
answer for a transaction it has not mined (or whose block a reorg replaced).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arbx.chain.rpc import RpcClient, hex_address, hex_hash, hex_int


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a receipt says of one mined transaction."""

    block_number: int
    block_hash: bytes
    succeeded: bool
    gas_used: int
    effective_gas_price: int  # 0 where a node leaves it out (before EIP-1559)
    contract_address: str | None = None  # lower-case hex, for a transaction that created one

    @property
    def gas_cost(self) -> int:
        """Wei the sender paid for gas."""
        return self.gas_used * self.effective_gas_price

    @property
    def block_hash_hex(self) -> str:
        """The block hash as the database keeps it: ``0x`` and 64 lower-case hex digits."""
        return "0x" + self.block_hash.hex()


def decode_receipt(raw: Any) -> Receipt | None:
    """A node's receipt (``None`` for a transaction not mined); ValueError, TypeError or
    KeyError for anything that is not a receipt."""
    if raw is None:
        return None
    if type(raw) is not dict:
        raise TypeError("a receipt is an object")
    status = hex_int(raw["status"])
    if status not in (0, 1):
        raise ValueError(f"receipt status {status}")
    price = raw.get("effectiveGasPrice")
    created = raw.get("contractAddress")
    return Receipt(
        block_number=hex_int(raw["blockNumber"]),
        block_hash=hex_hash(raw["blockHash"]),
        succeeded=status == 1,
        gas_used=hex_int(raw["gasUsed"]),
        effective_gas_price=0 if price is None else hex_int(price),
        contract_address=None if created is None else hex_address(created),
    )


def tx_param(tx: bytes | str) -> str:
    """A transaction hash as a JSON-RPC parameter."""
    return tx if isinstance(tx, str) else "0x" + tx.hex()


async def receipt(client: RpcClient, tx: bytes | str) -> Receipt | None:
    """``tx``'s receipt, or None while it is not mined."""
    found: Receipt | None = await client.call(
        "eth_getTransactionReceipt", [tx_param(tx)], decode=decode_receipt
    )
    return found


async def receipts(client: RpcClient, txs: Sequence[bytes | str]) -> list[Receipt | None]:
    """The receipts of ``txs`` in order, in one batch (None for each one not mined)."""
    if not txs:
        return []
    return await client.batch(
        [("eth_getTransactionReceipt", [tx_param(tx)]) for tx in txs], decode=decode_receipt
    )
