"""A web3 connection to a development node that sends from an unlocked account and checks receipts.

It uses a plain ``HTTPProvider`` with no middleware: web3's defaults would add ``eth_chainId`` and
gas-estimate requests to every call. Transactions carry an explicit gas limit, so the node does not
estimate either; a reverted transaction raises with the revert reason.
"""

import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound
from web3.types import RPCEndpoint, TxParams, TxReceipt, Wei

from arbx.devnet.artifacts import Artifact
from arbx.errors import SimulationRevertedError, TransientError

DEFAULT_TX_GAS = 15_000_000
BATCH_LIMIT = 50  # requests per JSON-RPC batch (anvil refuses very large batches)


class DevChain:
    """One dev node and one unlocked sender; every sent transaction must succeed."""

    def __init__(
        self,
        url: str,
        *,
        sender: str | None = None,
        gas: int = DEFAULT_TX_GAS,
        timeout: float = 120.0,
    ) -> None:
        self.w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}), middleware=[])
        self.accounts: list[ChecksumAddress] = list(self.w3.eth.accounts)
        self.sender = Web3.to_checksum_address(sender) if sender else self.accounts[0]
        self.w3.eth.default_account = self.sender
        self.gas = gas

    def rpc(self, method: str, *params: Any) -> Any:
        """A raw JSON-RPC request (e.g. ``evm_snapshot``); raises on an error answer."""
        response = self.w3.provider.make_request(RPCEndpoint(method), list(params))
        if "error" in response:
            raise TransientError(f"{method} failed: {response['error']}")
        return response.get("result")

    def contract(self, artifact: Artifact, address: str) -> Contract:
        """A web3 contract object for ``artifact`` at ``address``."""
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact.abi)

    def deploy(self, artifact: Artifact, *args: Any) -> Contract:
        """Deploy ``artifact`` with constructor ``args`` and return the contract object."""
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        data = factory.constructor(*args).data_in_transaction
        tx: TxParams = {"data": data}
        receipt = self._check(self._receipts([self._submit(tx)])[0], f"deploy {artifact.name}", tx)
        address = receipt["contractAddress"]
        if address is None:
            raise SimulationRevertedError(f"deploy {artifact.name}: no contract address")
        return self.contract(artifact, address)

    def send(self, call: ContractFunction, *, value: int = 0) -> TxReceipt:
        """Send ``call`` as a transaction from the sender; its receipt."""
        return self.send_all([call], value=value)[0]

    def send_all(self, calls: Iterable[ContractFunction], *, value: int = 0) -> list[TxReceipt]:
        """Send the calls in order, then fetch all receipts in one batch; each must succeed."""
        pending: list[tuple[HexBytes, str, TxParams]] = []
        for call in calls:
            tx: TxParams = {"to": call.address, "data": call._encode_transaction_data()}
            if value:
                tx["value"] = Wei(value)
            pending.append((self._submit(tx), call.fn_name, tx))
        found = self._receipts([tx_hash for tx_hash, _, _ in pending])
        return [
            self._check(receipt, label, tx)
            for (_, label, tx), receipt in zip(pending, found, strict=True)
        ]

    def call_all(self, calls: Iterable[ContractFunction]) -> list[Any]:
        """``eth_call`` every call, in JSON-RPC batches; the decoded results, in order."""
        pending = list(calls)
        results: list[Any] = []
        for start in range(0, len(pending), BATCH_LIMIT):
            with self.w3.batch_requests() as batch:
                for call in pending[start : start + BATCH_LIMIT]:
                    batch.add(call)
                results.extend(batch.execute())
        return results

    def snapshot(self) -> str:
        """``evm_snapshot``: an id to return to with :meth:`revert`."""
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        """``evm_revert`` to a snapshot (which is used up)."""
        if self.rpc("evm_revert", snapshot_id) is not True:
            raise TransientError(f"evm_revert({snapshot_id}) refused")

    def _submit(self, tx: TxParams) -> HexBytes:
        full: TxParams = {"from": self.sender, "gas": self.gas, **tx}
        return self.w3.eth.send_transaction(full)

    def _receipts(self, hashes: Sequence[HexBytes], timeout: float = 120.0) -> list[TxReceipt]:
        """The receipts of ``hashes``, fetched in batches, waiting while any is not mined yet."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found: list[TxReceipt] = []
                for start in range(0, len(hashes), BATCH_LIMIT):
                    with self.w3.batch_requests() as batch:
                        for tx_hash in hashes[start : start + BATCH_LIMIT]:
                            batch.add(self.w3.eth.get_transaction_receipt(tx_hash))
                        found.extend(cast(list[TxReceipt], batch.execute()))
                return found
            except TransactionNotFound:  # automine runs behind the RPC by a moment
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.002)

    def _check(self, receipt: TxReceipt, label: str, tx: TxParams) -> TxReceipt:
        if receipt["status"] != 1:
            raise SimulationRevertedError(f"{label} reverted: {self._reason(tx, receipt)}")
        return receipt

    def _reason(self, tx: TxParams, receipt: TxReceipt) -> str:
        replay: TxParams = {"from": self.sender, "gas": self.gas, **tx}
        try:
            self.w3.eth.call(replay, block_identifier=max(receipt["blockNumber"] - 1, 0))
        except ContractLogicError as error:
            return str(error)
        return "unknown reason (the replay did not revert)"
