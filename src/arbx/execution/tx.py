"""EIP-1559 transactions to the executor: fees, gas limit from simulation, signing, sending.

The fee policy takes the latest block's base fee: ``max_fee = 2 * base_fee + priority_fee``,
which stays valid through about six full blocks of base-fee growth (12.5% each) while paying only
``base_fee + priority_fee`` when included. The gas limit is the node's estimate plus a margin
(20% by default), since the state the transaction lands on is not the one it was estimated on.

Simulation (``eth_estimateGas``, ``eth_call``) omits the fee fields, so the node checks what the
call does, not whether the sender could pay a worst-case ``gas * max_fee``. A revert raises
:class:`CallRevertedError`, a ``SimulationRevertedError`` carrying the decoded reason.
Encoding and signing are eth-account's and eth-abi's, except the executor's plain type-2 calls,
which ``TxSigner`` signs with pyrlp and libsecp256k1 directly (the same bytes; ADR 0023).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from eth_abi.exceptions import DecodingError
from eth_utils.address import is_hex_address, to_checksum_address

from arbx.chain.rpc import ExecutionRevertedError, RpcClient, RpcError, hex_bytes, hex_hash, hex_int
from arbx.domain.errors import ConfigError, InputError
from arbx.errors import SimulationRevertedError, TransientError
from arbx.execution.contract import revert_reason
from arbx.execution.keys import SignedTx, TxSigner
from arbx.execution.nonces import NonceManager

log = logging.getLogger(__name__)

BPS: Final = 10_000
DEFAULT_MARGIN_BPS: Final = 2_000
TX_TYPE_EIP1559: Final = 2
MAX_NONCE: Final = 2**64 - 2  # EIP-2681
ELASTICITY: Final = 2  # EIP-1559: the gas target is half the gas limit
BASE_FEE_CHANGE_DENOMINATOR: Final = 8
_ALREADY_KNOWN: Final = ("already known", "known transaction", "already imported")


class CallRevertedError(SimulationRevertedError):
    """A simulated call or gas estimate reverted; ``reason`` is decoded, ``data`` the raw bytes."""

    def __init__(self, method: str, reason: str, data: bytes) -> None:
        super().__init__(f"{method} reverted: {reason}")
        self.method = method
        self.reason = reason
        self.data = data


# -- fees and gas ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fees:
    """The EIP-1559 fee fields of a transaction, in wei per gas."""

    max_fee: int
    priority_fee: int


def fee_policy(base_fee: int, priority_fee: int) -> Fees:
    """The fees for a base fee and tip: ``max_fee = 2 * base_fee + priority_fee``."""
    if base_fee < 0 or priority_fee < 0:
        raise InputError(f"fees must not be negative (base {base_fee}, priority {priority_fee})")
    return Fees(max_fee=2 * base_fee + priority_fee, priority_fee=priority_fee)


def next_base_fee(base_fee: int, gas_used: int, gas_limit: int) -> int:
    """The base fee of the block after one with these figures (EIP-1559's update rule)."""
    target = gas_limit // ELASTICITY
    if target in (0, gas_used):
        return base_fee
    if gas_used > target:
        delta = max(base_fee * (gas_used - target) // target // BASE_FEE_CHANGE_DENOMINATOR, 1)
        return base_fee + delta
    return base_fee - base_fee * (target - gas_used) // target // BASE_FEE_CHANGE_DENOMINATOR


def _base_fee_of(block: Any) -> int:
    if not isinstance(block, dict):
        raise TypeError("block is not an object")
    if block.get("baseFeePerGas") is None:
        return -1  # a chain without EIP-1559: refused by the caller, not a malformed answer
    return hex_int(block["baseFeePerGas"])


async def latest_base_fee(client: RpcClient) -> int:
    """The base fee of the latest block; ConfigError on a chain without EIP-1559."""
    base_fee = await client.call("eth_getBlockByNumber", ["latest", False], decode=_base_fee_of)
    if base_fee < 0:
        raise ConfigError("the chain's latest block has no base fee: EIP-1559 is required")
    return base_fee


async def current_fees(client: RpcClient, priority_fee: int) -> Fees:
    """The fee policy applied to the latest base fee."""
    return fee_policy(await latest_base_fee(client), priority_fee)


def gas_limit_from(
    estimate: int, margin_bps: int = DEFAULT_MARGIN_BPS, *, cap: int | None = None
) -> int:
    """The gas limit for an estimate: ``ceil(estimate * (1 + margin))``, at most ``cap``."""
    if estimate <= 0:
        raise InputError(f"gas estimate must be positive, not {estimate}")
    if margin_bps < 0:
        raise InputError(f"gas margin must not be negative, not {margin_bps} bps")
    limit = -(-estimate * (BPS + margin_bps) // BPS)
    if cap is not None:
        if estimate > cap:
            raise InputError(f"gas estimate {estimate} is over the cap {cap}")
        limit = min(limit, cap)
    return limit


# -- transactions ---------------------------------------------------------------------------


def build_execute_tx(
    chain_id: int,
    executor: str,
    calldata: bytes,
    nonce: int,
    gas_limit: int,
    max_fee: int,
    priority_fee: int,
) -> dict[str, Any]:
    """A type-2 transaction calling the executor with ``calldata``, ready for the signer."""
    if chain_id < 1:
        raise InputError(f"chain id must be positive, not {chain_id}")
    if not is_hex_address(executor):
        raise InputError(f"executor {executor!r} is not an address")
    if not 0 <= nonce <= MAX_NONCE:
        raise InputError(f"nonce {nonce} is outside 0..2^64-2")
    if gas_limit <= 0:
        raise InputError(f"gas limit must be positive, not {gas_limit}")
    if not 0 <= priority_fee <= max_fee:
        raise InputError(f"priority fee {priority_fee} must be within 0..max fee {max_fee}")
    return {
        "type": TX_TYPE_EIP1559,
        "chainId": chain_id,
        "nonce": nonce,
        "to": to_checksum_address(executor),
        "value": 0,
        "data": bytes(calldata),
        "gas": gas_limit,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": priority_fee,
        "accessList": [],
    }


def call_object(
    tx: Mapping[str, Any], sender: str | None = None, *, gas: bool = False
) -> dict[str, str]:
    """The JSON-RPC call object of ``tx`` (from, to, data, value; gas if asked), fees left out."""
    frm = sender if sender is not None else tx.get("from")
    data = tx.get("data", b"")
    call = {
        "to": to_checksum_address(tx["to"]),
        "data": data if isinstance(data, str) else "0x" + bytes(data).hex(),
        "value": hex(int(tx.get("value", 0))),
    }
    if frm is not None:
        call["from"] = to_checksum_address(frm)
    if gas and tx.get("gas") is not None:
        call["gas"] = hex(int(tx["gas"]))
    return call


def _revert_error(
    method: str, error: ExecutionRevertedError, abi: Sequence[Mapping[str, Any]]
) -> CallRevertedError:
    """The readable revert of ``error``: decoded revert data, else the node's message."""
    raw = error.data.get("data") if isinstance(error.data, dict) else error.data
    try:
        data = hex_bytes(raw) if raw is not None else b""
    except ValueError:
        data = b""
    if not data:
        reason = error.message.removeprefix("execution reverted").lstrip(": ") or "(no revert data)"
        return CallRevertedError(method, reason, data)
    try:
        reason = revert_reason(data, [dict(item) for item in abi])
    except (DecodingError, ValueError, TypeError, KeyError, OverflowError):
        reason = "0x" + data.hex()
    return CallRevertedError(method, reason, data)


async def estimate_gas(
    client: RpcClient,
    tx: Mapping[str, Any],
    *,
    sender: str | None = None,
    abi: Sequence[Mapping[str, Any]] = (),
) -> int:
    """``eth_estimateGas`` of ``tx``; CallRevertedError (reason decoded with ``abi``) on revert."""
    try:
        return await client.call("eth_estimateGas", [call_object(tx, sender)], decode=hex_int)
    except ExecutionRevertedError as error:
        raise _revert_error("eth_estimateGas", error, abi) from None


async def simulate_call(
    client: RpcClient,
    tx: Mapping[str, Any],
    block: int | str = "latest",
    *,
    sender: str | None = None,
    abi: Sequence[Mapping[str, Any]] = (),
) -> bytes:
    """``eth_call`` of ``tx`` (with its gas limit) at ``block``; its return data."""
    tag = hex(block) if isinstance(block, int) else block
    params = [call_object(tx, sender, gas=True), tag]
    try:
        return await client.call("eth_call", params, decode=hex_bytes)
    except ExecutionRevertedError as error:
        raise _revert_error("eth_call", error, abi) from None


async def send_raw_transaction(client: RpcClient, signed: SignedTx) -> bytes:
    """Send a signed transaction to the node; its hash. A node that already has it is success."""
    try:
        sent = await client.call("eth_sendRawTransaction", [signed.raw_hex], decode=hex_hash)
    except RpcError as error:
        if any(text in error.message.lower() for text in _ALREADY_KNOWN):
            return signed.hash  # a retry after a lost answer: the first send got through
        raise
    if sent != signed.hash:
        raise TransientError(f"node answered hash 0x{sent.hex()} for {signed.hash_hex}")
    return sent


async def signed_execute_tx(
    client: RpcClient,
    signer: TxSigner,
    nonces: NonceManager,
    executor: str,
    calldata: bytes,
    *,
    priority_fee: int,
    margin_bps: int = DEFAULT_MARGIN_BPS,
    abi: Sequence[Mapping[str, Any]] = (),
) -> SignedTx:
    """Estimate, reserve a nonce, build and sign an executor call (the nonce stays tentative)."""
    probe = {"to": executor, "data": calldata, "value": 0}
    estimate = await estimate_gas(client, probe, sender=signer.address, abi=abi)
    fees = await current_fees(client, priority_fee)
    chain_id = await client.chain_id()
    nonce = await nonces.reserve()
    try:
        tx = build_execute_tx(
            chain_id,
            executor,
            calldata,
            nonce,
            gas_limit_from(estimate, margin_bps),
            fees.max_fee,
            fees.priority_fee,
        )
        signed = signer.sign_transaction(tx)
    except BaseException:
        nonces.release(nonce)
        raise
    log.debug("signed %s nonce %d gas %d for %s", signed.hash_hex, nonce, tx["gas"], executor)
    return signed


async def sign_execute_tx(
    signer: TxSigner,
    nonces: NonceManager,
    chain_id: int,
    executor: str,
    calldata: bytes,
    *,
    gas_limit: int,
    fees: Fees,
) -> SignedTx:
    """Reserve a nonce, build and sign an executor call whose gas and fees are already known.

    No node round trip when the nonce is known: the gas limit comes from the caller's bound
    (the simulation of the signed transaction then proves it is enough), the fees from the head.
    """
    nonce = await nonces.reserve()
    try:
        tx = build_execute_tx(
            chain_id, executor, calldata, nonce, gas_limit, fees.max_fee, fees.priority_fee
        )
        signed = signer.sign_transaction(tx)
    except BaseException:
        nonces.release(nonce)
        raise
    return signed
