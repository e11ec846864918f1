"""Read the swaps of a range of blocks, per transaction with its sender, for self-scoring.

One ``eth_getLogs`` for the V2 and V3 ``Swap`` topics over the range, then one batch of
``eth_getTransactionByHash`` for the transactions that swapped (their ``from`` and ``to``).
Only pools we know are decoded (their tokens come from our pool book); a log of another shape
than its topic promises is skipped and counted, never trusted. Amounts are checked against
their ABI types; a range is bounded (``MAX_RANGE`` blocks, ``MAX_LOGS`` logs).

:func:`coinbase_payments` tells what a rival's arbitrage paid the block's builder per gas, from
its receipt and its block's base fee: the priority fee, plus the WETH that the contract it
called unwrapped in it (an executor pays its builder share so, ours and the devnet's rivals';
the ETH transfer to the coinbase that follows is in no log, and a node's traces would show any
other way of paying, which this does not read).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_utils.crypto import keccak

from arbx.chain.rpc import (
    Log,
    RpcClient,
    decode_log,
    decode_logs,
    hex_address,
    hex_int,
    to_quantity,
)
from arbx.domain.pools import Pool, V2Pool
from arbx.domain.scoring import Swap, TxSwaps

V2_SWAP = bytes(keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)"))
V3_SWAP = bytes(keccak(text="Swap(address,address,int256,int256,uint160,uint128,int24)"))
WETH_WITHDRAWAL = bytes(keccak(text="Withdrawal(address,uint256)"))
MAX_PAYMENTS = 256  # transactions whose payment is read at once
MAX_RANGE = 256
MAX_LOGS = 50_000
_UINT_LIMIT = 1 << 256
_INT_LIMIT = 1 << 255


@dataclass(slots=True)
class SwapReader:
    """Swaps of block ranges, decoded against the pools in ``pools`` (address -> state)."""

    client: RpcClient
    pools: Mapping[str, Pool]
    skipped: int = 0  # logs of unknown pools or of a shape their topic does not allow
    _lower: dict[str, Pool] = field(default_factory=dict)

    async def read(self, first: int, last: int) -> dict[int, list[TxSwaps]]:
        """Block number -> the transactions with swaps in it, in block order."""
        if last < first:
            return {}
        if last - first + 1 > MAX_RANGE:
            raise ValueError(f"at most {MAX_RANGE} blocks at once, asked {first}..{last}")
        query = {
            "fromBlock": to_quantity(first),
            "toBlock": to_quantity(last),
            "topics": [["0x" + V2_SWAP.hex(), "0x" + V3_SWAP.hex()]],
        }
        logs = await self.client.call("eth_getLogs", [query], decode=decode_logs)
        if len(logs) > MAX_LOGS:
            raise ValueError(f"{len(logs)} swap logs in {first}..{last}: more than {MAX_LOGS}")
        by_tx: dict[bytes, list[tuple[Log, Swap]]] = defaultdict(list)
        for log in logs:
            swap = self._swap(log)
            if swap is None:
                self.skipped += 1
            elif not log.removed:
                by_tx[log.transaction_hash].append((log, swap))
        hashes = list(by_tx)
        txs = await self.client.batch(
            [("eth_getTransactionByHash", ["0x" + h.hex()]) for h in hashes]
        )
        blocks: dict[int, list[TxSwaps]] = defaultdict(list)
        for tx_hash, tx in zip(hashes, txs, strict=True):
            if not isinstance(tx, dict):
                self.skipped += len(by_tx[tx_hash])
                continue
            entries = sorted(by_tx[tx_hash], key=lambda item: item[0].log_index)
            head = entries[0][0]
            to = tx.get("to")
            blocks[head.block_number].append(
                TxSwaps(
                    head.block_number,
                    head.transaction_index,
                    "0x" + tx_hash.hex(),
                    hex_address(tx["from"]),
                    hex_address(to) if to else None,
                    tuple(swap for _, swap in entries),
                )
            )
        for listed in blocks.values():
            listed.sort(key=lambda t: t.index)
        return dict(blocks)

    def _pool(self, address: str) -> Pool | None:
        if not self._lower:
            self._lower = {a.lower(): p for a, p in self.pools.items()}
        return self._lower.get(address.lower())

    def _swap(self, log: Log) -> Swap | None:
        """The swap a log tells of, or None for an unknown pool or a malformed log."""
        pool = self._pool(log.address)
        if pool is None:
            return None
        v2 = isinstance(pool, V2Pool)
        return decode_swap(log, v2, pool.token0.address, pool.token1.address)


def decode_swap(log: Log, v2: bool, t0: str, t1: str) -> Swap | None:
    """The swap ``log`` tells of, for a V2 pair (``v2``) or a V3 pool of tokens ``t0``/``t1``,
    or None if it is not a ``Swap`` of the shape its topic promises."""
    if not log.topics:
        return None
    words = [int.from_bytes(log.data[i : i + 32]) for i in range(0, len(log.data), 32)]
    if log.topics[0] == V2_SWAP and v2:
        if len(log.topics) != 3 or len(log.data) != 128:
            return None
        in0, in1, out0, out1 = words
        if in0 > 0 and out1 > 0:
            return Swap(log.address, t0, in0, t1, out1)
        if in1 > 0 and out0 > 0:
            return Swap(log.address, t1, in1, t0, out0)
        return None
    if log.topics[0] == V3_SWAP and not v2:
        if len(log.topics) != 3 or len(log.data) != 160:
            return None
        amount0, amount1 = (w - _UINT_LIMIT if w >= _INT_LIMIT else w for w in words[:2])
        if amount0 > 0 > amount1:
            return Swap(log.address, t0, amount0, t1, -amount1)
        if amount1 > 0 > amount0:
            return Swap(log.address, t1, amount1, t0, -amount0)
    return None


async def coinbase_payments(
    client: RpcClient, txs: Mapping[str, str | None], weth: str
) -> dict[str, int]:
    """Transaction hash -> what it paid the coinbase per gas (wei), for ``txs`` (hash -> the
    contract it called): its priority fee (effective gas price over its block's base fee) and
    the ``weth`` that contract unwrapped in it, over its gas used. A transaction the node does
    not answer for, or answers in a shape it should not, is left out."""
    hashes = list(txs)[:MAX_PAYMENTS]
    if not hashes:
        return {}
    receipts = await client.batch(
        [("eth_getTransactionReceipt", [h]) for h in hashes], return_errors=True
    )
    numbers = sorted(
        {r["blockNumber"] for r in receipts if isinstance(r, dict) and "blockNumber" in r}
    )
    headers = await client.batch(
        [("eth_getBlockByNumber", [n, False]) for n in numbers], return_errors=True
    )
    base_fees = {
        n: h.get("baseFeePerGas", "0x0") for n, h in zip(numbers, headers, strict=True)
        if isinstance(h, dict)
    }  # fmt: skip
    paid: dict[str, int] = {}
    for tx_hash, receipt in zip(hashes, receipts, strict=True):
        try:
            paid[tx_hash] = _paid_per_gas(receipt, base_fees, txs[tx_hash], weth)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return paid


def _paid_per_gas(receipt: Any, base_fees: Mapping[str, Any], to: str | None, weth: str) -> int:
    gas_used = hex_int(receipt["gasUsed"])
    if gas_used <= 0:
        raise ValueError("no gas used")
    priority = hex_int(receipt["effectiveGasPrice"]) - hex_int(base_fees[receipt["blockNumber"]])
    unwrapped = 0
    for raw in receipt["logs"]:
        log = decode_log(raw)
        if (
            to is not None
            and log.address == weth.lower()
            and len(log.topics) == 2
            and log.topics[0] == WETH_WITHDRAWAL
            and log.topics[1][-20:].hex() == to.lower().removeprefix("0x")
            and len(log.data) == 32
        ):
            unwrapped += int.from_bytes(log.data)
    return max(0, priority) + unwrapped // gas_used
