"""Deploying the shipped executor contract from the signing key, on any chain.

The signing key becomes the contract's ``owner`` (the only address that may call ``execute`` and
the withdrawals); the constructor takes the wrapped native token the contract pays builders in.
The creation code is the shipped one (``arb_executor.json``), so no compiler is involved. After
the receipt, the code at the new address is read back and compared with the shipped runtime, and
the ``owner`` and ``weth`` getters with what was asked: a deployment that is not exactly ours is
an error, never an address to configure.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from eth_abi.abi import decode, encode
from eth_utils.address import is_hex_address, to_checksum_address
from eth_utils.crypto import keccak

from arbx.chain.receipts import Receipt, receipt
from arbx.chain.rpc import ExecutionRevertedError, RpcClient, hex_bytes, hex_int
from arbx.domain.errors import ConfigError, InputError
from arbx.errors import TransientError
from arbx.execution.contract import locked_build, runtime_matches
from arbx.execution.keys import TxSigner
from arbx.execution.nonces import NonceManager
from arbx.execution.tx import current_fees, gas_limit_from, send_raw_transaction

RECEIPT_TIMEOUT: Final = 120.0
POLL_INTERVAL: Final = 0.2


@dataclass(frozen=True, slots=True)
class Deployed:
    """A deployed executor: where, by which transaction, in which block."""

    address: str
    tx_hash: str
    block: int
    owner: str


async def deploy_executor(
    client: RpcClient,
    signer: TxSigner,
    nonces: NonceManager,
    weth: str,
    *,
    priority_fee: int,
    receipt_timeout: float = RECEIPT_TIMEOUT,
) -> Deployed:
    """Deploy the shipped executor owned by ``signer`` for ``weth``; checked on chain."""
    if not is_hex_address(weth):
        raise InputError(f"{weth!r} is not an address")
    weth = to_checksum_address(weth)
    build = locked_build()
    code = build.bytecode + encode(["address"], [weth])
    probe = {"from": signer.address, "data": "0x" + code.hex(), "value": "0x0"}
    try:
        estimate = await client.call("eth_estimateGas", [probe], decode=hex_int)
    except ExecutionRevertedError as error:
        raise ConfigError(f"the chain refuses to deploy the executor: {error.message}") from None
    fees = await current_fees(client, priority_fee)
    nonce = await nonces.reserve()
    try:
        tx = {
            "type": 2,
            "chainId": await client.chain_id(),
            "nonce": nonce,
            "value": 0,
            "data": code,
            "gas": gas_limit_from(estimate),
            "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.priority_fee,
        }
        signed = signer.sign_transaction(tx)
        await send_raw_transaction(client, signed)
    except BaseException:
        nonces.failed(nonce)
        raise
    mined = await _receipt(client, signed.hash_hex, receipt_timeout)
    nonces.confirm(nonce)
    if not mined.succeeded or mined.contract_address is None:
        raise ConfigError(f"the executor's deployment {signed.hash_hex} reverted")
    address = to_checksum_address(mined.contract_address)
    await verify_executor(client, address, owner=signer.address, weth=weth)
    return Deployed(address, signed.hash_hex, mined.block_number, signer.address)


async def verify_executor(client: RpcClient, address: str, *, owner: str, weth: str) -> None:
    """ConfigError unless ``address`` runs the shipped executor owned by ``owner`` for ``weth``."""
    code = await client.call("eth_getCode", [address, "latest"], decode=hex_bytes)
    if not runtime_matches(code):
        raise ConfigError(f"the code at {address} is not the shipped executor")
    for getter, wanted in (("owner", owner), ("weth", weth)):
        found = await _address_getter(client, address, getter)
        if found.lower() != wanted.lower():
            raise ConfigError(f"the executor at {address} has {getter} {found}, not {wanted}")


async def _address_getter(client: RpcClient, address: str, name: str) -> str:
    data = "0x" + keccak(text=f"{name}()")[:4].hex()
    raw = await client.call("eth_call", [{"to": address, "data": data}, "latest"], decode=hex_bytes)
    (value,) = decode(["address"], raw)
    return str(to_checksum_address(value))


async def _receipt(client: RpcClient, tx_hash: str, timeout: float) -> Receipt:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        mined = await receipt(client, tx_hash)
        if mined is not None:
            return mined
        if loop.time() > deadline:
            raise TransientError(f"transaction {tx_hash} was not mined in {timeout:.0f} s")
        await asyncio.sleep(POLL_INTERVAL)
