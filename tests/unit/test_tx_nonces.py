"""Transactions and nonces without a node: fee policy, gas margin, the type-2 fields as signed,
revert decoding, and the nonce manager's bookkeeping against a scripted transport."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from arbx.chain.rpc import ExecutionRevertedError, RpcClient, RpcError
from arbx.chain.transport import WebSocket
from arbx.domain.errors import InputError
from arbx.errors import SimulationRevertedError
from arbx.execution.keys import TxSigner
from arbx.execution.nonces import NonceManager
from arbx.execution.tx import (
    CallRevertedError,
    build_execute_tx,
    call_object,
    estimate_gas,
    fee_policy,
    gas_limit_from,
    latest_base_fee,
    next_base_fee,
    send_raw_transaction,
    simulate_call,
)

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
EXECUTOR = "0x" + "ee" * 20
ADDRESS = "0x" + "aa" * 20
ERROR_STRING = keccak(text="Error(string)")[:4]


class Scripted:
    """A transport whose node is a function of (method, params): a result, or an error dict."""

    def __init__(self, answer: Callable[[str, list[Any]], Any]) -> None:
        self.answer = answer
        self.methods: list[str] = []

    async def post(
        self, url: str, body: bytes, timeout: float, headers: Mapping[str, str] | None = None
    ) -> Any:
        request = json.loads(body)
        self.methods.append(request["method"])
        result = self.answer(request["method"], request["params"])
        if isinstance(result, dict) and "code" in result:
            return {"jsonrpc": "2.0", "id": request["id"], "error": result}
        return {"jsonrpc": "2.0", "id": request["id"], "result": result}

    async def websocket(self, url: str, timeout: float) -> WebSocket:
        raise NotImplementedError

    async def close(self) -> None:
        pass


def client_for(answer: Callable[[str, list[Any]], Any]) -> tuple[RpcClient, Scripted]:
    transport = Scripted(answer)
    return RpcClient(["http://node.invalid"], transport=transport, retries=0), transport


# -- fees and gas -------------------------------------------------------------------------------


def test_fee_policy_is_twice_the_base_fee_plus_the_tip() -> None:
    fees = fee_policy(30 * 10**9, 2 * 10**9)
    assert fees.max_fee == 62 * 10**9
    assert fees.priority_fee == 2 * 10**9
    assert fee_policy(0, 0).max_fee == 0
    with pytest.raises(InputError):
        fee_policy(-1, 0)


def test_next_base_fee_follows_eip1559() -> None:
    base = 10**9
    assert next_base_fee(base, 15_000_000, 30_000_000) == base  # at the target
    assert next_base_fee(base, 30_000_000, 30_000_000) == base * 9 // 8  # full: +12.5%
    assert next_base_fee(base, 0, 30_000_000) == base * 7 // 8  # empty: -12.5%
    assert next_base_fee(7, 15_000_001, 30_000_000) == 8  # grows by at least 1 wei
    assert next_base_fee(base, 22_500_000, 30_000_000) == base + base // 16


@pytest.mark.parametrize(
    ("estimate", "margin", "limit"),
    [(100_000, 2_000, 120_000), (100_001, 2_000, 120_002), (21_000, 0, 21_000), (7, 5_000, 11)],
)
def test_gas_limit_is_the_estimate_plus_the_margin_rounded_up(
    estimate: int, margin: int, limit: int
) -> None:
    assert gas_limit_from(estimate, margin) == limit


def test_gas_limit_default_margin_cap_and_refusals() -> None:
    assert gas_limit_from(250_000) == 300_000
    assert gas_limit_from(250_000, cap=280_000) == 280_000
    with pytest.raises(InputError, match="over the cap"):
        gas_limit_from(300_000, cap=280_000)
    with pytest.raises(InputError):
        gas_limit_from(0)
    with pytest.raises(InputError):
        gas_limit_from(1, -1)


@pytest.mark.asyncio
async def test_latest_base_fee_reads_the_latest_block() -> None:
    client, transport = client_for(lambda method, params: {"baseFeePerGas": "0x3b9aca00"})
    assert await latest_base_fee(client) == 10**9
    assert transport.methods == ["eth_getBlockByNumber"]


# -- building and signing -----------------------------------------------------------------------


def test_execute_tx_is_type_2_and_signs_with_exactly_those_fields() -> None:
    signer = TxSigner(Account.from_key(KEY), "test")
    tx = build_execute_tx(31337, EXECUTOR, b"\x12\x34", 5, 123_456, 3 * 10**9, 10**9)
    signed = signer.sign_transaction(tx)
    decoded = TypedTransaction.from_bytes(HexBytes(signed.raw)).as_dict()
    assert signed.raw[0] == 2
    assert decoded["chainId"] == 31337
    assert decoded["nonce"] == 5
    assert decoded["gas"] == 123_456
    assert decoded["maxFeePerGas"] == 3 * 10**9
    assert decoded["maxPriorityFeePerGas"] == 10**9
    assert bytes(decoded["to"]).hex() == "ee" * 20
    assert bytes(decoded["data"]) == b"\x12\x34"
    assert decoded["value"] == 0
    assert Account.recover_transaction(signed.raw) == signer.address


@pytest.mark.parametrize(
    "args",
    [
        (0, EXECUTOR, b"", 0, 1, 1, 1),
        (1, "0x1234", b"", 0, 1, 1, 1),
        (1, EXECUTOR, b"", -1, 1, 1, 1),
        (1, EXECUTOR, b"", 2**64, 1, 1, 1),
        (1, EXECUTOR, b"", 0, 0, 1, 1),
        (1, EXECUTOR, b"", 0, 1, 1, 2),  # tip over the max fee
    ],
)
def test_build_refuses_impossible_fields(args: tuple[Any, ...]) -> None:
    with pytest.raises(InputError):
        build_execute_tx(*args)


def test_call_object_is_hex_and_leaves_fees_out() -> None:
    tx = build_execute_tx(1, EXECUTOR, b"\xab", 3, 50_000, 100, 1)
    call = call_object(tx, ADDRESS)
    assert set(call) == {"from", "to", "data", "value"}
    assert call["from"].lower() == ADDRESS
    assert call["to"].lower() == EXECUTOR
    assert (call["data"], call["value"]) == ("0xab", "0x0")
    assert call_object(tx, ADDRESS, gas=True)["gas"] == hex(50_000)
    assert "from" not in call_object(tx)


# -- simulation ---------------------------------------------------------------------------------


def reverting(data: str | None, message: str = "execution reverted") -> Callable[..., Any]:
    def answer(method: str, params: list[Any]) -> Any:
        error: dict[str, Any] = {"code": 3, "message": message}
        if data is not None:
            error["data"] = data
        return error

    return answer


@pytest.mark.asyncio
async def test_revert_reason_is_decoded_from_error_string() -> None:
    data = "0x" + (ERROR_STRING + encode(["string"], ["UniswapV2: EXPIRED"])).hex()
    client, _ = client_for(reverting(data))
    tx = {"to": EXECUTOR, "data": b""}
    with pytest.raises(CallRevertedError) as caught:
        await estimate_gas(client, tx, sender=ADDRESS)
    assert caught.value.reason == "UniswapV2: EXPIRED"
    assert caught.value.method == "eth_estimateGas"
    assert isinstance(caught.value, SimulationRevertedError)
    assert not isinstance(caught.value, RpcError)
    with pytest.raises(CallRevertedError, match="eth_call reverted: UniswapV2: EXPIRED"):
        await simulate_call(client, tx, 123, sender=ADDRESS)


@pytest.mark.asyncio
async def test_revert_of_a_custom_error_uses_the_abi() -> None:
    abi = [{"type": "error", "name": "ProfitTooLow", "inputs": [{"type": "uint256"}] * 2}]
    selector = keccak(text="ProfitTooLow(uint256,uint256)")[:4]
    data = "0x" + (selector + encode(["uint256", "uint256"], [5, 9])).hex()
    client, _ = client_for(reverting(data))
    with pytest.raises(CallRevertedError) as caught:
        await estimate_gas(client, {"to": EXECUTOR}, abi=abi)
    assert caught.value.reason == "ProfitTooLow(5, 9)"
    with pytest.raises(CallRevertedError) as unknown:
        await estimate_gas(client, {"to": EXECUTOR})
    assert unknown.value.reason == data  # without the ABI: the raw bytes


@pytest.mark.asyncio
async def test_revert_without_data_or_with_garbage_is_still_clear() -> None:
    client, _ = client_for(reverting(None, "execution reverted: out of luck"))
    with pytest.raises(CallRevertedError) as caught:
        await estimate_gas(client, {"to": EXECUTOR})
    assert caught.value.reason == "out of luck"
    client, _ = client_for(reverting("0x" + ERROR_STRING.hex() + "00"))
    with pytest.raises(CallRevertedError) as garbled:
        await estimate_gas(client, {"to": EXECUTOR})
    assert garbled.value.reason == "0x" + ERROR_STRING.hex() + "00"
    client, _ = client_for(reverting(None))
    with pytest.raises(CallRevertedError, match="no revert data"):
        await simulate_call(client, {"to": EXECUTOR})


@pytest.mark.asyncio
async def test_other_rpc_errors_are_not_reverts() -> None:
    client, _ = client_for(lambda m, p: {"code": -32000, "message": "insufficient funds"})
    with pytest.raises(RpcError) as caught:
        await estimate_gas(client, {"to": EXECUTOR})
    assert not isinstance(caught.value, (SimulationRevertedError, ExecutionRevertedError))


@pytest.mark.asyncio
async def test_send_treats_already_known_as_sent_and_checks_the_hash() -> None:
    signer = TxSigner(Account.from_key(KEY), "test")
    signed = signer.sign_transaction(build_execute_tx(1, EXECUTOR, b"", 0, 50_000, 10, 1))
    client, _ = client_for(lambda m, p: {"code": -32000, "message": "already known"})
    assert await send_raw_transaction(client, signed) == signed.hash
    client, _ = client_for(lambda m, p: signed.hash_hex)
    assert await send_raw_transaction(client, signed) == signed.hash
    client, _ = client_for(lambda m, p: {"code": -32000, "message": "nonce too low"})
    with pytest.raises(RpcError, match="nonce too low"):
        await send_raw_transaction(client, signed)


# -- nonces -------------------------------------------------------------------------------------


class Chain:
    """A node whose pending count the test sets."""

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.asked: list[list[Any]] = []

    def __call__(self, method: str, params: list[Any]) -> Any:
        assert method == "eth_getTransactionCount"
        self.asked.append(params)
        return hex(self.pending)


@pytest.mark.asyncio
async def test_nonces_start_from_the_pending_count_and_count_up_locally() -> None:
    chain = Chain(7)
    client, _ = client_for(chain)
    nonces = NonceManager(client, ADDRESS.upper().replace("0X", "0x"))
    assert nonces.needs_sync
    assert await nonces.sync() == 7
    assert chain.asked == [[ADDRESS, "pending"]]
    assert [await nonces.reserve() for _ in range(3)] == [7, 8, 9]
    assert nonces.tentative == {7, 8, 9}
    assert nonces.syncs == 1  # no chain read per reservation
    nonces.confirm(7)
    assert nonces.tentative == {8, 9}


@pytest.mark.asyncio
async def test_reserve_syncs_first_when_never_synced() -> None:
    client, _ = client_for(Chain(3))
    nonces = NonceManager(client, ADDRESS)
    assert await nonces.reserve() == 3
    assert nonces.syncs == 1


@pytest.mark.asyncio
async def test_failed_bundle_nonce_is_reused_after_a_resync() -> None:
    chain = Chain(10)
    client, _ = client_for(chain)
    nonces = NonceManager(client, ADDRESS)
    await nonces.sync()
    first = await nonces.reserve()
    assert await nonces.reserve() == 11  # tentative while the first bundle is in flight
    nonces.failed(first)  # not included: the chain never used 10
    assert nonces.needs_sync
    assert await nonces.reserve() == 10
    assert nonces.syncs == 2
    assert nonces.tentative == {10}


@pytest.mark.asyncio
async def test_failure_takes_the_chain_count_even_when_it_moved_on() -> None:
    chain = Chain(4)
    client, _ = client_for(chain)
    nonces = NonceManager(client, ADDRESS)
    nonce = await nonces.reserve()
    chain.pending = 6  # another sender used 4 and 5 ("nonce too low")
    nonces.failed(nonce)
    assert await nonces.reserve() == 6


@pytest.mark.asyncio
async def test_release_gives_back_the_top_nonce_without_a_chain_read() -> None:
    client, _ = client_for(Chain(0))
    nonces = NonceManager(client, ADDRESS)
    a = await nonces.reserve()
    b = await nonces.reserve()
    nonces.release(b)
    assert await nonces.reserve() == b
    assert nonces.syncs == 1
    nonces.release(a)  # a gap under b: let the chain decide
    assert nonces.needs_sync
    assert await nonces.reserve() == 0
    nonces.release(99)  # never handed out: ignored
    assert not nonces.needs_sync


@pytest.mark.asyncio
async def test_confirm_of_a_nonce_ahead_moves_the_count() -> None:
    client, _ = client_for(Chain(0))
    nonces = NonceManager(client, ADDRESS)
    await nonces.sync()
    nonces.confirm(4)  # included after a resync forgot it: 0..4 are used
    assert await nonces.reserve() == 5
