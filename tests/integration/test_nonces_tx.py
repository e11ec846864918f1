"""Nonces, EIP-1559 transactions and keys against a real node (this module's own anvil).

The nonce manager reconciles with the chain at start (with transactions still in the pool),
after a refused send and after a bundle that was not included; a transaction signed by our signer
is mined with exactly the fields we built; a revert comes back as a reason; and the whole path
from the keystore to a mined transaction never writes a private key to a log, stdout or stderr.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3.contract import Contract

from arbx.chain.rpc import RpcClient, RpcError, hex_int
from arbx.devnet.anvil import Anvil, start_anvil
from arbx.devnet.artifacts import load_artifact
from arbx.devnet.chain import DevChain
from arbx.devnet.deploy import deploy_executor_on
from arbx.domain.errors import ConfigError
from arbx.execution.contract import locked_build
from arbx.execution.keys import TxSigner, load_keys, new_keystore
from arbx.execution.nonces import NonceManager
from arbx.execution.tx import (
    CallRevertedError,
    build_execute_tx,
    current_fees,
    estimate_gas,
    gas_limit_from,
    send_raw_transaction,
    signed_execute_tx,
    simulate_call,
)
from arbx.redaction import RedactionFilter

pytestmark = pytest.mark.integration

ETHER = 10**18
PRIORITY = 2 * 10**9
FAST_N = 2**4
PASSWORD = "a test keystore password"


@dataclass
class World:
    """This module's node: a funded signer that owns an executor, and a V2 factory."""

    node: Anvil
    chain: DevChain
    signer: TxSigner
    executor: Contract
    factory: Contract
    weth: str

    def withdraw_eth(self) -> bytes:
        """Calldata of ``withdrawEth(owner, 0)``: an owner-only call that succeeds."""
        return bytes.fromhex(self.executor.encode_abi("withdrawEth", [self.signer.address, 0])[2:])


def fund_and_deploy(chain: DevChain, url: str, owner: str) -> Contract:
    """Give ``owner`` 100 ether and deploy an executor it owns (as its own deployer)."""
    chain.rpc("anvil_setBalance", owner, hex(100 * ETHER))
    chain.rpc("anvil_impersonateAccount", owner)
    try:
        weth = chain.deploy(load_artifact("WETH9")).address
        return deploy_executor_on(DevChain(url, sender=owner), weth)
    finally:
        chain.rpc("anvil_stopImpersonatingAccount", owner)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with start_anvil() as node:
        chain = DevChain(node.url)
        signer = TxSigner(Account.create(), "test")
        executor = fund_and_deploy(chain, node.url, signer.address)
        factory = chain.deploy(load_artifact("UniswapV2Factory"), chain.sender)
        weth = str(executor.functions.weth().call())
        yield World(node, chain, signer, executor, factory, weth)


async def receipt_of(client: RpcClient, tx_hash: bytes) -> dict[str, Any]:
    """The receipt of a mined transaction (anvil mines on every transaction)."""
    for _ in range(100):
        receipt = await client.call("eth_getTransactionReceipt", ["0x" + tx_hash.hex()])
        if receipt is not None:
            return dict(receipt)
        await asyncio.sleep(0.02)
    raise AssertionError("transaction not mined")


async def chain_count(client: RpcClient, address: str, tag: str) -> int:
    return await client.call("eth_getTransactionCount", [address, tag], decode=hex_int)


async def sign_with(world: World, client: RpcClient, nonce: int, gas: int = 100_000) -> Any:
    fees = await current_fees(client, PRIORITY)
    tx = build_execute_tx(
        31337, world.executor.address, world.withdraw_eth(), nonce, gas, fees.max_fee, PRIORITY
    )
    return world.signer.sign_transaction(tx)


# -- nonces -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_start_counts_transactions_still_in_the_pool(world: World) -> None:
    async with RpcClient([world.node.url]) as client:
        first_run = NonceManager(client, world.signer.address)
        world.chain.rpc("evm_setAutomine", False)
        try:
            for _ in range(2):
                nonce = await first_run.reserve()
                await send_raw_transaction(client, await sign_with(world, client, nonce))
            latest = await chain_count(client, world.signer.address, "latest")
            restarted = NonceManager(client, world.signer.address)  # a new process, same key
            assert await restarted.sync() == latest + 2
            assert await restarted.reserve() == latest + 2
        finally:
            world.chain.rpc("evm_mine")
            world.chain.rpc("evm_setAutomine", True)
        assert await chain_count(client, world.signer.address, "latest") == latest + 2


@pytest.mark.asyncio
async def test_refused_send_resyncs_with_the_chain(world: World) -> None:
    async with RpcClient([world.node.url]) as client:
        ours = NonceManager(client, world.signer.address)
        stale = await ours.reserve()
        # another sender with the same key spends that nonce first (what the signer lock prevents)
        other = await sign_with(world, client, stale)
        await receipt_of(client, await send_raw_transaction(client, other))
        with pytest.raises(RpcError, match="nonce too low"):
            await send_raw_transaction(client, await sign_with(world, client, stale, gas=90_000))
        ours.failed(stale)
        fresh = await ours.reserve()
        assert fresh == stale + 1
        receipt = await receipt_of(
            client, await send_raw_transaction(client, await sign_with(world, client, fresh))
        )
        assert hex_int(receipt["status"]) == 1
        ours.confirm(fresh)
        assert await ours.reserve() == fresh + 1
        assert ours.syncs == 2


@pytest.mark.asyncio
async def test_bundle_not_included_leaves_its_nonce_for_the_next(world: World) -> None:
    async with RpcClient([world.node.url]) as client:
        nonces = NonceManager(client, world.signer.address)
        start = await nonces.sync()
        bundle = await signed_execute_tx(
            client, world.signer, nonces, world.executor.address, world.withdraw_eth(),
            priority_fee=PRIORITY,
        )  # fmt: skip
        assert bundle.nonce == start
        assert nonces.tentative == {start}
        # sent to a relay, never included: the chain did not use the nonce
        assert await chain_count(client, world.signer.address, "pending") == start
        nonces.failed(bundle.nonce)
        retry = await signed_execute_tx(
            client, world.signer, nonces, world.executor.address, world.withdraw_eth(),
            priority_fee=PRIORITY,
        )  # fmt: skip
        assert retry.nonce == start
        await receipt_of(client, await send_raw_transaction(client, retry))
        nonces.confirm(retry.nonce)
        assert await nonces.reserve() == start + 1
        assert nonces.syncs == 2


# -- transactions -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_signed_eip1559_tx_is_mined_with_the_fields_built(world: World) -> None:
    calldata = world.withdraw_eth()
    async with RpcClient([world.node.url]) as client:
        nonces = NonceManager(client, world.signer.address)
        probe = {"to": world.executor.address, "data": calldata}
        estimate = await estimate_gas(client, probe, sender=world.signer.address)
        fees = await current_fees(client, PRIORITY)
        signed = await signed_execute_tx(
            client, world.signer, nonces, world.executor.address, calldata, priority_fee=PRIORITY
        )
        receipt = await receipt_of(client, await send_raw_transaction(client, signed))
        tx = await client.call("eth_getTransactionByHash", [signed.hash_hex])
        block = await client.call("eth_getBlockByHash", [receipt["blockHash"], False])
    assert hex_int(receipt["status"]) == 1
    assert hex_int(tx["type"]) == 2
    assert hex_int(tx["chainId"]) == 31337
    assert hex_int(tx["nonce"]) == signed.nonce
    assert tx["from"].lower() == world.signer.address.lower()
    assert tx["to"].lower() == world.executor.address.lower()
    assert tx["input"] == "0x" + calldata.hex()
    assert hex_int(tx["gas"]) == gas_limit_from(estimate, 2_000) == -(-estimate * 12 // 10)
    assert hex_int(tx["maxFeePerGas"]) == fees.max_fee
    assert hex_int(tx["maxPriorityFeePerGas"]) == PRIORITY
    assert hex_int(receipt["gasUsed"]) <= estimate < hex_int(tx["gas"])
    base_fee = hex_int(block["baseFeePerGas"])
    assert hex_int(receipt["effectiveGasPrice"]) == base_fee + PRIORITY
    assert fees.max_fee >= 2 * base_fee  # the policy left room for the base fee to grow


@pytest.mark.asyncio
async def test_reverts_come_back_with_their_reason(world: World) -> None:
    same = world.signer.address
    identical = bytes.fromhex(world.factory.encode_abi("createPair", [same, same])[2:])
    bad_route = bytes.fromhex(world.executor.encode_abi("execute", [world.weth, 1, 0, 0, []])[2:])
    abi = locked_build().abi
    async with RpcClient([world.node.url]) as client:
        string_revert = {"to": world.factory.address, "data": identical}
        with pytest.raises(CallRevertedError) as estimated:
            await estimate_gas(client, string_revert, sender=same)
        assert estimated.value.reason == "UniswapV2: IDENTICAL_ADDRESSES"
        with pytest.raises(CallRevertedError, match="eth_call reverted: UniswapV2: IDENTICAL"):
            await simulate_call(client, string_revert)
        custom = {"to": world.executor.address, "data": bad_route}
        with pytest.raises(CallRevertedError) as routed:
            await estimate_gas(client, custom, sender=same, abi=abi)
        assert routed.value.reason == "BadRoute()"
        stranger = {"to": world.executor.address, "data": world.withdraw_eth()}
        with pytest.raises(CallRevertedError) as owner_only:
            await simulate_call(client, stranger, sender=world.chain.accounts[1], abi=abi)
        assert owner_only.value.reason == "NotOwner()"
        nonces = NonceManager(client, same)
        with pytest.raises(CallRevertedError, match="BadRoute"):
            await signed_execute_tx(
                client, world.signer, nonces, world.executor.address, bad_route,
                priority_fee=PRIORITY, abi=abi,
            )  # fmt: skip
        assert nonces.tentative == frozenset()  # a revert in simulation reserves no nonce


# -- no key in any output -------------------------------------------------------------------------


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def debug_logs() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def test_no_private_key_reaches_logs_stdout_or_stderr(
    world: World, tmp_path: Path, debug_logs: Lines, capfd: pytest.CaptureFixture[str]
) -> None:
    # the code itself must not leak: no redaction filter in the way
    assert getattr(logging.getLogRecordFactory(), "redaction", None) is None
    filters = [f for h in logging.getLogger().handlers for f in h.filters]
    assert not any(isinstance(f, RedactionFilter) for f in filters)
    keystore = tmp_path / "signing.json"
    address = new_keystore(keystore, PASSWORD, scrypt_n=FAST_N)
    relay_key = os.urandom(32)
    relay_file = tmp_path / "relay.key"
    relay_file.write_text("0x" + relay_key.hex())
    relay_file.chmod(0o600)
    env = {
        "ARBX_SIGNING_KEYSTORE": str(keystore),
        "ARBX_KEYSTORE_PASSWORD": PASSWORD,
        "ARBX_RELAY_KEY_FILE": str(relay_file),
    }
    mistakes = [
        {**env, "ARBX_KEYSTORE_PASSWORD": "wrong password!"},
        {**env, "ARBX_SIGNING_KEY": "0x" + relay_key.hex()},
        {"ARBX_SIGNING_KEY": relay_key.hex(), "ARBX_RELAY_KEY_FILE": str(relay_file)},
        {"ARBX_SIGNING_KEY": relay_key.hex()[:-2], "ARBX_RELAY_KEY_FILE": str(relay_file)},
    ]
    log = logging.getLogger("arbx.test.keys")
    for bad in mistakes:
        with pytest.raises(ConfigError) as caught:
            load_keys(bad, live=True)
        log.error("refused: %s", caught.value, exc_info=caught.value)
        print(f"arbx: {caught.value}")  # what the CLI shows the user
    keys = load_keys(env, live=True)
    assert keys.signer is not None
    assert keys.relay is not None
    signer, relay = keys.signer, keys.relay
    assert signer.address == address
    executor = fund_and_deploy(world.chain, world.node.url, signer.address)
    log.debug("keys %r %s %r", keys, signer, relay)
    print(keys, signer, relay)

    async def send() -> dict[str, Any]:
        async with RpcClient([world.node.url]) as client:
            nonces = NonceManager(client, signer.address)
            await nonces.sync()
            calldata = bytes.fromhex(executor.encode_abi("withdrawEth", [signer.address, 0])[2:])
            signed = await signed_execute_tx(
                client, signer, nonces, executor.address, calldata,
                priority_fee=PRIORITY,
            )  # fmt: skip
            log.debug("signed %s", signed)
            receipt = await receipt_of(client, await send_raw_transaction(client, signed))
            nonces.confirm(signed.nonce)
            log.debug("relay header %s", relay.flashbots_signature(b'{"id":1}'))
            return receipt

    receipt = asyncio.run(send(), debug=True)
    assert hex_int(receipt["status"]) == 1
    signing_key = bytes(Account.decrypt(keystore.read_text(), PASSWORD))
    out, err = capfd.readouterr()
    logs = "\n".join(debug_logs.lines)
    assert signer.address in logs  # the capture works: the loaded address is logged
    assert "refused" in logs
    assert "arbx: " in out
    for text in (logs, out, err):
        for key in (signing_key, relay_key):
            assert_no_part_of(key, text)


def assert_no_part_of(key: bytes, text: str) -> None:
    """No 8-byte stretch of ``key`` in ``text``: as hex in any case (0x or not), bytes or int."""
    lowered, digits = text.lower(), key.hex()
    for start in range(len(digits) - 16 + 1):
        assert digits[start : start + 16] not in lowered, "a private key (or part) leaked"
    assert repr(key)[2:-1] not in text
    assert str(int.from_bytes(key, "big")) not in text
