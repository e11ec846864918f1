"""A web3 connection to a development node that sends from an unlocked account and checks receipts.

It uses a plain ``HTTPProvider`` with no middleware: web3's defaults would add ``eth_chainId`` and
gas-estimate requests to every call. Transactions carry an explicit gas limit, so the node does not
estimate either; a reverted transaction raises with the revert reason.

``TxQueue`` sends many transactions from several unlocked accounts at once (nonces counted
locally, JSON-RPC batches, receipts collected at the end): the devnet world and the market
simulator are built on it.
"""

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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
RawReceipt = dict[str, Any]  # a receipt as the node sends it: hex strings, not decoded
MINE_CHUNK = 300  # transactions per mined block when TxQueue mines
MAX_FEE_PER_GAS = 10**12  # 1,000 gwei
PRIORITY_FEE = 10**9


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
        self.provider = HTTPProvider(url, request_kwargs={"timeout": timeout})
        self.w3 = Web3(self.provider, middleware=[])
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

    def rpc_batch(
        self, requests: Sequence[tuple[str, Sequence[Any]]], *, tolerate: bool = False
    ) -> list[Any]:
        """Raw JSON-RPC requests in batches of ``BATCH_LIMIT``; the results, in order.

        An error answer raises TransientError, or with ``tolerate`` gives None in its place.
        """
        results: list[Any] = []
        for start in range(0, len(requests), BATCH_LIMIT):
            part = [(RPCEndpoint(m), list(p)) for m, p in requests[start : start + BATCH_LIMIT]]
            answers = self.provider.make_batch_request(part)
            if not isinstance(answers, list):
                raise TransientError(f"batch of {part[0][0]} failed: {answers.get('error')}")
            for (method, _), answer in zip(part, answers, strict=True):
                if "error" in answer and not tolerate:
                    raise TransientError(f"{method} failed: {answer['error']}")
                results.append(answer.get("result"))
        return results

    def raw_receipts(self, hashes: Sequence[str], timeout: float = 120.0) -> list[RawReceipt]:
        """Undecoded receipts of ``hashes``, in batches, waiting until every one is mined."""
        deadline = time.monotonic() + timeout
        found: dict[str, RawReceipt] = {}
        delay = 0.002
        while True:
            missing = [h for h in hashes if h not in found]
            if not missing:
                return [found[h] for h in hashes]
            answers = self.rpc_batch([("eth_getTransactionReceipt", [h]) for h in missing])
            found.update({h: r for h, r in zip(missing, answers, strict=True) if r is not None})
            if len(found) < len(hashes):
                if time.monotonic() > deadline:
                    raise TransientError(f"{len(hashes) - len(found)} transactions not mined")
                time.sleep(delay)
                delay = min(2 * delay, 0.05)  # interval mining: the next block may be seconds away

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


@dataclass(frozen=True)
class QueuedTx:
    """A transaction waiting in a :class:`TxQueue`: its JSON-RPC object and a label for errors."""

    tx: dict[str, str]
    label: str


class TxQueue:
    """Transactions from several unlocked accounts, sent in JSON-RPC batches without waiting.

    Nonces are counted here, from each sender's pending count, so one account can have many
    transactions in flight; the node mines them in nonce order. ``flush`` sends what is queued,
    mines a block if asked (automine off), and returns the receipts in the order queued.
    """

    def __init__(self, chain: DevChain, gas: int = DEFAULT_TX_GAS) -> None:
        self.chain = chain
        self.gas = gas
        self._nonces: dict[str, int] = {}
        self._queued: list[QueuedTx] = []

    def __len__(self) -> int:
        return len(self._queued)

    def call(self, sender: str, fn: ContractFunction, *, value: int = 0, gas: int = 0) -> int:
        """Queue ``fn`` as a transaction from ``sender``; its index in the next flush."""
        return self.raw(sender, fn.address, fn._encode_transaction_data(), value, gas, fn.fn_name)

    def deploy(self, sender: str, artifact: Artifact, *args: Any, gas: int = 0) -> int:
        """Queue the creation of ``artifact`` with constructor ``args``; its index."""
        factory = self.chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        data = factory.constructor(*args).data_in_transaction
        return self.raw(sender, None, data, 0, gas, f"deploy {artifact.name}")

    def raw(self, sender: str, to: str | None, data: str, value: int, gas: int, label: str) -> int:
        """Queue a transaction given by its fields; its index."""
        key = Web3.to_checksum_address(sender)
        if key not in self._nonces:
            self._nonces[key] = self.chain.w3.eth.get_transaction_count(key, "pending")
        tx = {
            "from": key,
            "data": data,
            "gas": hex(gas or self.gas),
            "nonce": hex(self._nonces[key]),
        }
        # a fee cap far above the base fee: full blocks raise it, and anvil drops queued
        # transactions whose cap it passes (leaving a nonce gap)
        tx["maxFeePerGas"] = hex(MAX_FEE_PER_GAS)
        tx["maxPriorityFeePerGas"] = hex(PRIORITY_FEE)
        self._nonces[key] += 1
        if to is not None:
            tx["to"] = to
        if value:
            tx["value"] = hex(value)
        self._queued.append(QueuedTx(tx, label))
        return len(self._queued) - 1

    def resync(self) -> None:
        """Forget the counted nonces (after a failed send): they are read again when needed."""
        self._nonces.clear()

    def flush(
        self,
        *,
        mine: bool = False,
        check: bool = True,
        timeout: float = 120.0,
        on_sent: Callable[[Sequence[str]], None] | None = None,
    ) -> list[RawReceipt]:
        """Send everything queued and return the receipts in order.

        ``on_sent`` is called with the hashes sent so far once the first part is sent and
        before any block is mined (the devnet's competitors act there).

        With ``mine`` (automine off), a block is mined after every ``MINE_CHUNK`` transactions
        and then until all are in: anvil builds a block's receipts in time quadratic in its
        transactions, so blocks stay small. With ``check``, a reverted transaction raises
        SimulationRevertedError with its reason.
        """
        queued, self._queued = self._queued, []
        if not queued:
            return []
        head = int(self.chain.rpc("eth_blockNumber"), 16) if mine else 0
        hashes: list[str] = []
        try:
            for start in range(0, len(queued), MINE_CHUNK if mine else len(queued)):
                part = queued[start : start + MINE_CHUNK] if mine else queued
                sent = self.chain.rpc_batch([("eth_sendTransaction", [q.tx]) for q in part])
                hashes += [str(h) for h in sent]
                if on_sent is not None and start == 0:
                    on_sent(hashes)
                if mine:
                    self.chain.rpc("evm_mine")
        except TransientError:
            self.resync()
            raise
        if mine:
            receipts = self._mined(hashes, head, timeout)
        else:
            receipts = self.chain.raw_receipts(hashes, timeout)
        if check:
            for item, receipt in zip(queued, receipts, strict=True):
                if int(receipt["status"], 16) != 1:
                    raise SimulationRevertedError(
                        f"{item.label} reverted: {self._reason(item, receipt)}"
                    )
        return receipts

    def _mined(self, hashes: Sequence[str], head: int, timeout: float) -> list[RawReceipt]:
        """The receipts of ``hashes``, read per block after ``head``, mining until all are in.

        ``eth_getBlockReceipts`` reads a block in one pass. A block that mines none of the
        missing transactions, twice in a row, means they never will (a nonce gap): an error.
        """
        deadline = time.monotonic() + timeout
        wanted = {h.lower() for h in hashes}
        found: dict[str, RawReceipt] = {}
        idle = 0
        while True:
            top = int(self.chain.rpc("eth_blockNumber"), 16)
            blocks = [("eth_getBlockReceipts", [hex(n)]) for n in range(head + 1, top + 1)]
            before = len(found)
            for receipts in self.chain.rpc_batch(blocks):
                for receipt in receipts or []:
                    if receipt["transactionHash"].lower() in wanted:
                        found[receipt["transactionHash"].lower()] = receipt
            head = top
            if len(found) == len(wanted):
                return [found[h.lower()] for h in hashes]
            idle = 0 if len(found) > before else idle + 1
            if idle > 2 or time.monotonic() > deadline:
                self.resync()
                raise TransientError(f"{len(wanted) - len(found)} transactions not mined")
            self.chain.rpc("evm_mine")

    def _reason(self, item: QueuedTx, receipt: RawReceipt) -> str:
        params = {k: v for k, v in item.tx.items() if k != "nonce"}
        block = hex(max(int(receipt["blockNumber"], 16) - 1, 0))
        answer = self.chain.w3.provider.make_request(RPCEndpoint("eth_call"), [params, block])
        error = answer.get("error")
        return str(error.get("message", error)) if isinstance(error, dict) else "unknown reason"
