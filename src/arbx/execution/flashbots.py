"""Flashbots-style bundles on the wire: the signature header, request params per builder, answers.

Pure (no IO), shared by the relay client (``arbx.execution.relay``) and the devnet's local builder.

- Authentication: ``X-Flashbots-Signature: <address>:<signature>``, the signature an EIP-191
  personal-sign of the string ``"0x" + hex(keccak256(body))`` over the exact request body bytes
  (the Flashbots Go reference: ``accounts.TextHash([]byte(crypto.Keccak256Hash(body).Hex()))``).
  ``FlashbotsSigner`` holds the reputation key and signs; ``verify_flashbots_signature`` checks.
- Builders differ: the replacement field is ``replacementUuid`` or ``uuid`` (or absent), a cancel
  is ``eth_cancelBundle`` or an empty bundle with the same uuid (or impossible). ``BuilderSpec``
  records that; ``send_bundle_params`` and ``cancel_request`` shape requests by it.
- A builder reads requests with ``parse_send_bundle`` / ``parse_call_bundle_request`` /
  ``parse_cancel`` (ValueError with the reason for anything malformed).
- Answers are validated strictly: ``parse_bundle_ack`` and ``parse_call_bundle`` raise ValueError
  (or TypeError, KeyError) for anything off-shape, so a hostile answer is counted, never trusted.
"""

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak

from arbx.chain.rpc import hex_address, hex_hash, hex_int
from arbx.domain.errors import ConfigError
from arbx.execution.rawtx import RawTx, decode_all, raw_tx_bytes, tx_hash

FLASHBOTS_HEADER: Final = "X-Flashbots-Signature"
MAX_BUNDLE_TXS: Final = 100  # the Flashbots relay's limits
MAX_BUNDLE_BYTES: Final = 300_000

UuidField = Literal["replacementUuid", "uuid"]
CancelMode = Literal["eth_cancelBundle", "empty_bundle"]

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}").fullmatch
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}").fullmatch
_DECIMAL = re.compile(r"[0-9]{1,78}").fullmatch
_UINT256_LIMIT: Final = 1 << 256


@dataclass(frozen=True, slots=True)
class BuilderSpec:
    """One builder's endpoint and what it supports."""

    name: str
    url: str
    uuid_field: UuidField | None = "replacementUuid"
    cancel: CancelMode | None = "eth_cancelBundle"
    supports_call_bundle: bool = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if not self.name:
            raise ConfigError("a builder needs a name")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"builder {self.name}: URL must be http(s), not {self.url!r}")
        if self.uuid_field is not None and self.uuid_field not in get_args(UuidField):
            raise ConfigError(f"builder {self.name}: unknown uuid field {self.uuid_field!r}")
        if self.cancel is not None and self.cancel not in get_args(CancelMode):
            raise ConfigError(f"builder {self.name}: unknown cancel mode {self.cancel!r}")
        if self.cancel is not None and self.uuid_field is None:
            raise ConfigError(f"builder {self.name}: cancelling needs a uuid field")


# -- signing ----------------------------------------------------------------------------------


def signature_message(body: bytes) -> str:
    """The text that is personal-signed for ``body``: "0x" and keccak256(body) in hex."""
    return "0x" + keccak(body).hex()


class FlashbotsSigner:
    """Signs request bodies with the relay reputation key, which never leaves this object."""

    __slots__ = ("_account",)

    def __init__(self, private_key: str | bytes) -> None:
        self._account = Account.from_key(private_key)

    @property
    def address(self) -> str:
        """The reputation address (checksummed)."""
        return str(self._account.address)

    def __call__(self, body: bytes) -> str:
        """The ``X-Flashbots-Signature`` value for ``body``: ``<address>:<signature>``."""
        signed = self._account.sign_message(encode_defunct(text=signature_message(body)))
        return f"{self.address}:0x{bytes(signed.signature).hex()}"

    def __repr__(self) -> str:
        return f"FlashbotsSigner({self.address})"


def verify_flashbots_signature(header: str | None, body: bytes) -> str:
    """The lower-case address that signed ``body``; ValueError if missing, malformed or wrong."""
    if not header:
        raise ValueError(f"missing {FLASHBOTS_HEADER} header")
    address, colon, signature = header.strip().partition(":")
    if not colon or _ADDRESS(address) is None or _SIGNATURE(signature) is None:
        raise ValueError(f"{FLASHBOTS_HEADER} is not <address>:<65-byte signature>")
    raw = bytes.fromhex(signature[2:])
    v = raw[64] + 27 if raw[64] < 27 else raw[64]  # Go signers send v as 0/1
    if v not in (27, 28):
        raise ValueError(f"{FLASHBOTS_HEADER} signature has v = {raw[64]}")
    try:
        recovered = Account.recover_message(
            encode_defunct(text=signature_message(body)), signature=raw[:64] + bytes([v])
        )
    except Exception as exc:  # eth_keys refuses signatures off the curve in its own ways
        raise ValueError(f"{FLASHBOTS_HEADER} signature does not recover: {exc}") from exc
    if recovered.lower() != address.lower():
        raise ValueError(f"{FLASHBOTS_HEADER} is not signed by {address}")
    return address.lower()


# -- requests ---------------------------------------------------------------------------------


def bundle_hash(raw_txs: Sequence[bytes | str]) -> bytes:
    """keccak256 of the bundle's transaction hashes, concatenated (the relays' bundleHash)."""
    return keccak(b"".join(tx_hash(raw) for raw in raw_txs))


def block_uuid(replacement_uuid: str, block_number: int) -> str:
    """The uuid of a bundle's copy for one target block (a uuid names one bundle, not a series)."""
    try:
        base = uuid.UUID(replacement_uuid)
    except ValueError as exc:
        raise ValueError(f"replacement uuid {replacement_uuid!r} is not a UUID") from exc
    return str(uuid.uuid5(base, f"block:{block_number}"))


def _hex_txs(raw_txs: Sequence[bytes | str]) -> list[str]:
    txs = ["0x" + raw_tx_bytes(raw).hex() for raw in raw_txs]
    if len(txs) > MAX_BUNDLE_TXS:
        raise ValueError(f"bundle of {len(txs)} transactions: at most {MAX_BUNDLE_TXS}")
    if sum(len(tx) - 2 for tx in txs) // 2 > MAX_BUNDLE_BYTES:
        raise ValueError(f"bundle over {MAX_BUNDLE_BYTES} bytes")
    return txs


def send_bundle_params(
    builder: BuilderSpec,
    raw_txs: Sequence[bytes | str],
    block_number: int,
    *,
    replacement_uuid: str | None = None,
    min_timestamp: int | None = None,
    max_timestamp: int | None = None,
    reverting_hashes: Sequence[bytes] = (),
) -> dict[str, Any]:
    """The ``eth_sendBundle`` parameter object for ``builder`` (uuid under its own field name)."""
    if not raw_txs:
        raise ValueError("an empty bundle is only sent to cancel")
    if block_number <= 0:
        raise ValueError(f"target block {block_number}")
    params: dict[str, Any] = {"txs": _hex_txs(raw_txs), "blockNumber": hex(block_number)}
    if min_timestamp is not None:
        params["minTimestamp"] = min_timestamp
    if max_timestamp is not None:
        params["maxTimestamp"] = max_timestamp
    if reverting_hashes:
        params["revertingTxHashes"] = ["0x" + bytes(h).hex() for h in reverting_hashes]
    if replacement_uuid is not None and builder.uuid_field is not None:
        params[builder.uuid_field] = replacement_uuid
    return params


def call_bundle_params(
    raw_txs: Sequence[bytes | str],
    block_number: int,
    state_block: int | str = "latest",
    timestamp: int | None = None,
) -> dict[str, Any]:
    """The ``eth_callBundle`` parameter object."""
    if not raw_txs:
        raise ValueError("nothing to simulate")
    params: dict[str, Any] = {
        "txs": _hex_txs(raw_txs),
        "blockNumber": hex(block_number),
        "stateBlockNumber": hex(state_block) if isinstance(state_block, int) else state_block,
    }
    if timestamp is not None:
        params["timestamp"] = timestamp
    return params


def cancel_request(
    builder: BuilderSpec, replacement_uuid: str, block_number: int | None = None
) -> tuple[str, list[Any]]:
    """The method and params that cancel ``replacement_uuid`` at ``builder``; ValueError if none."""
    field = builder.uuid_field
    if builder.cancel is None or field is None:
        raise ValueError(f"builder {builder.name} cannot cancel bundles")
    if builder.cancel == "eth_cancelBundle":
        return "eth_cancelBundle", [{field: replacement_uuid}]
    if block_number is None:
        raise ValueError(f"builder {builder.name} cancels by an empty bundle: give its block")
    return "eth_sendBundle", [
        {"txs": [], "blockNumber": hex(block_number), field: replacement_uuid}
    ]


# -- answers ----------------------------------------------------------------------------------


def wei(value: Any) -> int:
    """An amount as relays send it: a JSON int, a decimal string or a hex quantity; 0..2^256-1."""
    if type(value) is int:
        amount = value
    elif type(value) is str and _DECIMAL(value) is not None:
        amount = int(value)
    elif type(value) is str:
        amount = hex_int(value)
    else:
        raise ValueError(f"not an amount: {str(value)[:80]!r}")
    if not 0 <= amount < _UINT256_LIMIT:
        raise ValueError(f"amount out of range: {amount}")
    return amount


def parse_bundle_ack(result: Any) -> bytes | None:
    """The bundle hash of an ``eth_sendBundle`` answer (``{bundleHash}``); None if it is null."""
    if result is None:
        return None
    if type(result) is not dict:
        raise TypeError(f"eth_sendBundle answered a {type(result).__name__}")
    return hex_hash(result["bundleHash"])


@dataclass(frozen=True, slots=True)
class TxSimulation:
    """One transaction of a simulated bundle."""

    tx_hash: bytes
    gas_used: int
    coinbase_diff: int
    eth_sent_to_coinbase: int = 0
    gas_fees: int = 0
    error: str | None = None
    revert: str | None = None
    from_address: str | None = None

    @property
    def reverted(self) -> bool:
        """True if the transaction failed."""
        return self.error is not None or self.revert is not None


@dataclass(frozen=True, slots=True)
class BundleSimulation:
    """An ``eth_callBundle`` answer: totals and one result per transaction, in order."""

    results: tuple[TxSimulation, ...]
    total_gas_used: int
    coinbase_diff: int
    eth_sent_to_coinbase: int = 0
    gas_fees: int = 0
    bundle_gas_price: int = 0
    bundle_hash: bytes | None = None
    state_block: int | None = None

    @property
    def ok(self) -> bool:
        """True if no transaction reverted."""
        return not any(result.reverted for result in self.results)

    def first_failure(self) -> str | None:
        """What the first failing transaction reported, or None if all succeeded."""
        for index, result in enumerate(self.results):
            if result.reverted:
                detail = " ".join(filter(None, (result.error, result.revert)))
                return f"tx {index} 0x{result.tx_hash.hex()}: {detail}"
        return None


def _optional_text(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        return None
    if type(value) is not str:
        raise TypeError(f"{key} is a {type(value).__name__}, not a string")
    return value[:500]


def _tx_simulation(doc: Any) -> TxSimulation:
    if type(doc) is not dict:
        raise TypeError("a callBundle result item is not an object")
    sender = doc.get("fromAddress")
    return TxSimulation(
        tx_hash=hex_hash(doc["txHash"]),
        gas_used=wei(doc["gasUsed"]),
        coinbase_diff=wei(doc["coinbaseDiff"]),
        eth_sent_to_coinbase=wei(doc.get("ethSentToCoinbase", 0)),
        gas_fees=wei(doc.get("gasFees", 0)),
        error=_optional_text(doc, "error"),
        revert=_optional_text(doc, "revert"),
        from_address=None if sender is None else hex_address(sender),
    )


def parse_call_bundle(result: Any, expected: Sequence[bytes] | None = None) -> BundleSimulation:
    """An ``eth_callBundle`` answer, checked; ``expected`` are the tx hashes sent, in order."""
    if type(result) is not dict:
        raise TypeError(f"eth_callBundle answered a {type(result).__name__}")
    items = result["results"]
    if type(items) is not list:
        raise TypeError("results is not a list")
    results = tuple(_tx_simulation(item) for item in items)
    if expected is not None and [r.tx_hash for r in results] != [bytes(h) for h in expected]:
        raise ValueError("results do not match the transactions sent")
    state = result.get("stateBlockNumber")
    raw_hash = result.get("bundleHash")
    simulation = BundleSimulation(
        results=results,
        total_gas_used=wei(result["totalGasUsed"]),
        coinbase_diff=wei(result["coinbaseDiff"]),
        eth_sent_to_coinbase=wei(result.get("ethSentToCoinbase", 0)),
        gas_fees=wei(result.get("gasFees", 0)),
        bundle_gas_price=wei(result.get("bundleGasPrice", 0)),
        bundle_hash=None if raw_hash is None else hex_hash(raw_hash),
        state_block=None if state is None else wei(state),
    )
    if simulation.total_gas_used != sum(r.gas_used for r in results):
        raise ValueError("totalGasUsed is not the sum of the results' gasUsed")
    return simulation


# -- requests, as a builder reads them -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BundleRequest:
    """An ``eth_sendBundle`` request, checked; no transactions means a cancel by uuid."""

    txs: tuple[RawTx, ...]
    block_number: int
    min_timestamp: int = 0
    max_timestamp: int = 0
    reverting: frozenset[bytes] = frozenset()
    uuid: str | None = None


@dataclass(frozen=True, slots=True)
class CallBundleRequest:
    """An ``eth_callBundle`` request, checked."""

    txs: tuple[RawTx, ...]
    block_number: int
    state_block: int | str
    timestamp: int | None


def _object(params: Any) -> dict[str, Any]:
    if type(params) is not list or len(params) != 1 or type(params[0]) is not dict:
        raise ValueError("params must be one object")
    return params[0]


def _natural(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise ValueError(f"{key} must be a non-negative integer")
    return value


def _request_uuid(doc: dict[str, Any]) -> str | None:
    value = doc.get("replacementUuid", doc.get("uuid"))
    if value is None:
        return None
    if type(value) is not str or not 0 < len(value) <= 100:
        raise ValueError("replacementUuid must be a short string")
    return value


def _request_txs(doc: dict[str, Any], *, allow_empty: bool) -> tuple[RawTx, ...]:
    txs = doc.get("txs")
    if type(txs) is not list or not all(type(tx) is str for tx in txs):
        raise ValueError("txs must be a list of 0x-hex signed transactions")
    if len(txs) > MAX_BUNDLE_TXS or (not txs and not allow_empty):
        raise ValueError(f"a bundle has 1 to {MAX_BUNDLE_TXS} transactions")
    if sum(len(tx) for tx in txs) > 2 * MAX_BUNDLE_BYTES + 2 * len(txs):
        raise ValueError(f"bundle over {MAX_BUNDLE_BYTES} bytes")
    return tuple(decode_all(txs))


def _request_block(doc: dict[str, Any], key: str) -> int:
    try:
        return hex_int(doc.get(key))
    except ValueError as exc:
        raise ValueError(f"{key} must be a hex quantity") from exc


def parse_send_bundle(params: Any) -> BundleRequest:
    """The checked ``eth_sendBundle`` request in ``params``; ValueError saying what is wrong."""
    doc = _object(params)
    uuid_ = _request_uuid(doc)
    reverting = doc.get("revertingTxHashes") or []
    if type(reverting) is not list:
        raise ValueError("revertingTxHashes must be a list")
    try:
        may_revert = frozenset(hex_hash(h) for h in reverting)
    except ValueError as exc:
        raise ValueError("revertingTxHashes must be 32-byte hashes") from exc
    return BundleRequest(
        txs=_request_txs(doc, allow_empty=uuid_ is not None),
        block_number=_request_block(doc, "blockNumber"),
        min_timestamp=_natural(doc, "minTimestamp"),
        max_timestamp=_natural(doc, "maxTimestamp"),
        reverting=may_revert,
        uuid=uuid_,
    )


def parse_call_bundle_request(params: Any) -> CallBundleRequest:
    """The checked ``eth_callBundle`` request in ``params``; ValueError saying what is wrong."""
    doc = _object(params)
    state = doc.get("stateBlockNumber", "latest")
    return CallBundleRequest(
        txs=_request_txs(doc, allow_empty=False),
        block_number=_request_block(doc, "blockNumber"),
        state_block="latest" if state == "latest" else _request_block(doc, "stateBlockNumber"),
        timestamp=_natural(doc, "timestamp") or None,
    )


def parse_cancel(params: Any) -> str:
    """The uuid an ``eth_cancelBundle`` request names; ValueError if there is none."""
    found = _request_uuid(_object(params))
    if found is None:
        raise ValueError("a cancel needs replacementUuid")
    return found
