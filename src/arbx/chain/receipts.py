"""Transaction receipts, decoded once and checked: the one reader of ``eth_getTransactionReceipt``.

A receipt says where a transaction landed (block number and hash), whether it succeeded, and
what it cost, and what its logs moved of a token (``balance_change``: the profit a bundle kept,
exact for its own transaction and with no state of an older block needed). Everything that
settles our own transactions reads it: the inclusion tracker
(after a reorg), the live executor (a settled bundle's gas and profit), the start-up
reconciliation and the check of rows after a re-bootstrap. A node's answer is checked field by
field; one that is not a receipt is a malformed answer (``RpcClient`` counts it against the
endpoint and asks another), never a raw exception in the caller. ``None`` is the node's own
answer for a transaction it has not mined (or whose block a reorg replaced).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from arbx.chain.rpc import RpcClient, hex_address, hex_bytes, hex_hash, hex_int

MAX_LOGS: Final = 4096  # logs decoded from one receipt; more is not a receipt of ours
# The events that move an ERC-20 balance, WETH9's wrapping included (topic 0 of each).
TRANSFER: Final = bytes.fromhex("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")
DEPOSIT: Final = bytes.fromhex("e1fffcc4923d04b559f4d29a8bfc6cda04eb5b0d3c460751c2402c5c5cc9109c")
WITHDRAWAL: Final = bytes.fromhex(
    "7fcf532c15f0a6db0bd6d0e038bea71d30d808c7d98cb3bf7268a95bf5081b65"
)


@dataclass(frozen=True, slots=True)
class Log:
    """One log of a receipt: the emitting contract (lower-case hex), its topics, its data."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a receipt says of one mined transaction."""

    block_number: int
    block_hash: bytes
    succeeded: bool
    gas_used: int
    effective_gas_price: int  # 0 where a node leaves it out (before EIP-1559)
    contract_address: str | None = None  # lower-case hex, for a transaction that created one
    logs: tuple[Log, ...] | None = None  # None where the node sent none

    def balance_change(self, token: str, holder: str) -> int | None:
        """What this transaction's logs moved of ``token`` to ``holder`` (in less out: its
        Transfers, and WETH9's Deposit and Withdrawal); None when the node sent no logs or one
        of ``token``'s balance events is not in the standard's shape."""
        if self.logs is None:
            return None
        token, who = token.lower(), bytes(12) + bytes.fromhex(holder.lower().removeprefix("0x"))
        change = 0
        for log in self.logs:
            if log.address != token or not log.topics:
                continue
            kind, topics = log.topics[0], log.topics
            if kind not in (TRANSFER, DEPOSIT, WITHDRAWAL):
                continue
            if len(log.data) != 32 or len(topics) != (3 if kind == TRANSFER else 2):
                return None
            amount = int.from_bytes(log.data, "big")
            if kind == TRANSFER:
                change += (amount if topics[2] == who else 0) - (amount if topics[1] == who else 0)
            elif topics[1] == who:
                change += amount if kind == DEPOSIT else -amount
        return change

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
    logs = raw.get("logs")
    return Receipt(
        block_number=hex_int(raw["blockNumber"]),
        block_hash=hex_hash(raw["blockHash"]),
        succeeded=status == 1,
        gas_used=hex_int(raw["gasUsed"]),
        effective_gas_price=0 if price is None else hex_int(price),
        contract_address=None if created is None else hex_address(created),
        logs=None if logs is None else _logs(logs),
    )


def _logs(raw: Any) -> tuple[Log, ...]:
    if type(raw) is not list:
        raise TypeError("a receipt's logs are a list")
    if len(raw) > MAX_LOGS:
        raise ValueError(f"{len(raw)} logs in one receipt (at most {MAX_LOGS})")
    found = []
    for entry in raw:
        if type(entry) is not dict or type(entry["topics"]) is not list:
            raise TypeError("a log is an object with a list of topics")
        if len(entry["topics"]) > 4:
            raise ValueError(f"a log with {len(entry['topics'])} topics (at most 4)")
        topics = tuple(hex_hash(t) for t in entry["topics"])
        found.append(Log(hex_address(entry["address"]), topics, hex_bytes(entry["data"])))
    return tuple(found)


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
