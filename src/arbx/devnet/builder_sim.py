"""The local builder's work on anvil: simulate bundles without mining, and take the pool apart.

Simulation runs ``eth_simulateV1`` on the parent state with the next block's environment
(number, timestamp, base fee from ``eth_feeHistory``, the builder's coinbase), so nothing is
mined: a snapshot, ``evm_mine`` and ``evm_revert`` would publish a phantom block to every
``newHeads`` subscriber (checked on anvil 1.7.1) and empty the pool. Anvil's ``eth_simulateV1``
does not check nonces or the chain id, so those are checked here first. Between the bundle's
calls, a probe call (code set by state override) returns the coinbase balance: the difference
is each transaction's exact coinbase payment (gas tips and ETH sent), as the EVM accounted it.

``take_mempool`` empties anvil's pool, keeping every transaction's raw bytes in the order anvil
would have mined them (its "pending" block, FIFO on a node run with ``--order fifo``);
``put_back`` resubmits them after the bundles. ``call_bundle_answer`` shapes a run as the
Flashbots relay answers ``eth_callBundle``.
"""

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from eth_utils.crypto import keccak

from arbx.chain.rpc import RpcClient, RpcError, hex_bytes, hex_int
from arbx.execution.rawtx import RawTx, call_object

PROBE_ADDRESS: Final = "0x00000000000000000000000000000000000b0b0e"
PROBE_SENDER: Final = "0x00000000000000000000000000000000000b0b05"
PROBE_CODE: Final = "0x413160005260206000f3"  # mstore(0, balance(coinbase)); return(0, 32)
_PROBE_GAS: Final = 50_000
_TAKE_ROUNDS: Final = 5


@dataclass(frozen=True, slots=True)
class BlockEnv:
    """The block a simulation stands in for, on top of ``state_block``."""

    state_block: int
    number: int
    timestamp: int
    base_fee: int
    coinbase: str


@dataclass(frozen=True, slots=True)
class TxRun:
    """One transaction's simulated result."""

    tx: RawTx
    success: bool
    gas_used: int
    return_data: bytes
    coinbase_diff: int
    gas_fees: int

    @property
    def eth_sent_to_coinbase(self) -> int:
        """Coinbase payment beyond the gas tip."""
        return self.coinbase_diff - self.gas_fees


@dataclass(frozen=True, slots=True)
class Run:
    """A sequence of transactions simulated in one block; ``error`` if it could not run at all."""

    runs: tuple[TxRun, ...]
    error: str | None = None

    @property
    def coinbase_diff(self) -> int:
        """What the coinbase gains from the whole sequence."""
        return sum(r.coinbase_diff for r in self.runs)


async def next_env(
    rpc: RpcClient,
    coinbase: str,
    state_block: int | str = "latest",
    number: int | None = None,
    timestamp: int | None = None,
) -> BlockEnv:
    """The environment of the block after ``state_block`` (number and timestamp overridable)."""
    tag = hex(state_block) if isinstance(state_block, int) else state_block
    block = await rpc.call("eth_getBlockByNumber", [tag, False])
    if block is None:
        raise ValueError(f"no block {state_block}")
    parent, parent_time = hex_int(block["number"]), hex_int(block["timestamp"])
    history = await rpc.call("eth_feeHistory", ["0x1", hex(parent), []])
    base_fee = hex_int(history["baseFeePerGas"][-1])
    when = timestamp if timestamp is not None else max(parent_time + 1, int(time.time()))
    return BlockEnv(parent, number if number is not None else parent + 1, when, base_fee, coinbase)


async def _nonce_error(
    rpc: RpcClient,
    txs: Sequence[RawTx],
    env: BlockEnv,
    chain_id: int,
    counts: Mapping[str, int] | None = None,
) -> str | None:
    """Why the sequence could not be included (chain id, fee cap, nonces), or None."""
    senders = sorted({tx.sender for tx in txs})
    if counts is None or not set(senders) <= set(counts):
        read = await rpc.batch(
            [("eth_getTransactionCount", [s, hex(env.state_block)]) for s in senders],
            decode=hex_int,
        )
        counts = dict(zip(senders, read, strict=True))
    expected = {sender: counts[sender] for sender in senders}
    for index, tx in enumerate(txs):
        label = f"tx {index} 0x{tx.hash.hex()}"
        if tx.chain_id is not None and tx.chain_id != chain_id:
            return f"{label}: chain id {tx.chain_id}, not {chain_id}"
        if tx.fee_cap < env.base_fee:
            return f"{label}: fee cap {tx.fee_cap} below base fee {env.base_fee}"
        if tx.nonce != expected[tx.sender]:
            return f"{label}: nonce {tx.nonce}, the sender is at {expected[tx.sender]}"
        expected[tx.sender] += 1
    return None


def _probe(env: BlockEnv) -> dict[str, Any]:
    return {
        "from": PROBE_SENDER,
        "to": PROBE_ADDRESS,
        "gas": hex(_PROBE_GAS),
        "maxFeePerGas": hex(env.base_fee),
        "maxPriorityFeePerGas": "0x0",
    }


async def simulate(
    rpc: RpcClient,
    txs: Sequence[RawTx],
    env: BlockEnv,
    chain_id: int,
    *,
    counts: Mapping[str, int] | None = None,
) -> Run:
    """Run ``txs`` in order at the top of the block ``env`` stands for; nothing is mined.

    ``counts``: the senders' nonces at the state block, when the caller already read them.
    """
    if not txs:
        return Run(())
    invalid = await _nonce_error(rpc, txs, env, chain_id, counts)
    if invalid is not None:
        return Run((), invalid)
    calls: list[dict[str, Any]] = [_probe(env)]
    for tx in txs:
        calls += [call_object(tx, with_nonce=True), _probe(env)]
    payload = {
        "blockStateCalls": [
            {
                "blockOverrides": {
                    "number": hex(env.number),
                    "time": hex(env.timestamp),
                    "baseFeePerGas": hex(env.base_fee),
                    "feeRecipient": env.coinbase,
                },
                "stateOverrides": {
                    PROBE_ADDRESS: {"code": PROBE_CODE},
                    PROBE_SENDER: {"balance": hex(10**30)},
                },
                "calls": calls,
            }
        ],
        "validation": True,
    }
    try:
        blocks = await rpc.call("eth_simulateV1", [payload, hex(env.state_block)])
    except RpcError as error:
        return Run((), f"simulation refused: {error.message}")
    results = blocks[0]["calls"]
    if len(results) != len(calls):
        raise ValueError(f"eth_simulateV1 gave {len(results)} results for {len(calls)} calls")
    balances = [
        int.from_bytes(hex_bytes(results[i]["returnData"])) for i in range(0, len(calls), 2)
    ]
    runs = []
    for index, tx in enumerate(txs):
        result = results[2 * index + 1]
        gas_used = hex_int(result["gasUsed"])
        runs.append(
            TxRun(
                tx=tx,
                success=hex_int(result["status"]) == 1,
                gas_used=gas_used,
                return_data=hex_bytes(result.get("returnData", "0x")),
                coinbase_diff=balances[index + 1] - balances[index],
                gas_fees=gas_used * max(tx.tip(env.base_fee), 0),
            )
        )
    return Run(tuple(runs))


# -- the pool ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolTx:
    """A transaction taken out of anvil's pool."""

    hash: str
    raw: str
    sender: str
    nonce: int


def _pool_entries(content: Any) -> dict[str, tuple[str, int]]:
    """hash -> (sender, nonce) of every pending and queued transaction in ``txpool_content``."""
    entries: dict[str, tuple[str, int]] = {}
    for section in ("pending", "queued"):
        for sender, by_nonce in (content.get(section) or {}).items():
            for tx in by_nonce.values():
                entries[tx["hash"].lower()] = (sender.lower(), hex_int(tx["nonce"]))
    return entries


async def take_mempool(rpc: RpcClient) -> list[PoolTx]:
    """Empty anvil's pool; its transactions with their raw bytes, in the order anvil would mine."""
    taken: list[PoolTx] = []
    seen: set[str] = set()
    for _ in range(_TAKE_ROUNDS):  # a transaction may arrive while the pool is emptied
        entries = _pool_entries(await rpc.call("txpool_content"))
        fresh = {h: e for h, e in entries.items() if h not in seen}
        if not fresh:
            break
        pending = await rpc.call("eth_getBlockByNumber", ["pending", False])
        mined_order = [h.lower() for h in (pending or {}).get("transactions", [])]
        ordered = [h for h in mined_order if h in fresh]
        ordered += sorted((h for h in fresh if h not in set(ordered)), key=lambda h: fresh[h])
        raws = await rpc.batch(
            [("eth_getRawTransactionByHash", [h]) for h in ordered], return_errors=True
        )
        await rpc.batch([("anvil_dropTransaction", [h]) for h in ordered], return_errors=True)
        for tx_hash, raw in zip(ordered, raws, strict=True):
            seen.add(tx_hash)
            if isinstance(raw, str):
                sender, nonce = fresh[tx_hash]
                taken.append(PoolTx(tx_hash, raw, sender, nonce))
    return taken


async def put_back(rpc: RpcClient, txs: Sequence[PoolTx]) -> int:
    """Resubmit ``txs`` one by one, in order (a batch may be handled out of order); the refused."""
    refused = 0
    for tx in txs:
        try:
            await rpc.call("eth_sendRawTransaction", [tx.raw])
        except RpcError:
            refused += 1
    return refused


def call_bundle_answer(txs: tuple[RawTx, ...], run: Run, env: BlockEnv) -> dict[str, Any]:
    """``eth_callBundle``'s answer, shaped as the Flashbots relay's."""
    results = []
    for tx_run in run.runs:
        tx = tx_run.tx
        item: dict[str, Any] = {
            "txHash": "0x" + tx.hash.hex(),
            "gasUsed": tx_run.gas_used,
            "gasPrice": str(env.base_fee + max(tx.tip(env.base_fee), 0)),
            "gasFees": str(tx_run.gas_fees),
            "coinbaseDiff": str(tx_run.coinbase_diff),
            "ethSentToCoinbase": str(tx_run.eth_sent_to_coinbase),
            "fromAddress": tx.sender,
            "toAddress": tx.to or "0x",
            "value": "0x" + tx_run.return_data.hex(),
        }
        if not tx_run.success:
            item["error"] = "execution reverted"
            item["revert"] = "0x" + tx_run.return_data.hex()
        results.append(item)
    total_gas = sum(r.gas_used for r in run.runs)
    gas_fees = sum(r.gas_fees for r in run.runs)
    return {
        "bundleGasPrice": str(run.coinbase_diff // total_gas if total_gas else 0),
        "bundleHash": "0x" + keccak(b"".join(tx.hash for tx in txs)).hex(),
        "coinbaseDiff": str(run.coinbase_diff),
        "ethSentToCoinbase": str(run.coinbase_diff - gas_fees),
        "gasFees": str(gas_fees),
        "results": results,
        "stateBlockNumber": env.state_block,
        "totalGasUsed": total_gas,
    }
