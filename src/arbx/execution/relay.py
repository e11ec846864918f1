"""Sending bundles to builders: signed JSON-RPC over the nodes' HTTP transport, fanned out.

``RelayClient`` signs every request body with the relay reputation key (through a ``sign(body)``
callable, so the key lives elsewhere) and posts it with ``X-Flashbots-Signature``.
``send_bundle`` and ``cancel_bundle`` never raise for a builder's failure: they return a
``Submission`` whose status says what happened (ack, JSON-RPC error, timeout, connection, HTTP
status, rate limit, malformed or oversize answer, unsupported). ``fan_out`` sends one bundle to
every builder for the target block and the ``blocks_ahead`` after it, all at once, and returns
every submission; ``stats`` counts them per builder. ``call_bundle`` returns a checked
``BundleSimulation`` or raises (``TransientError`` for the network or a hostile answer,
``RpcError`` for an error object).

A replacement uuid names one bundle, and a later bundle with the same uuid replaces it whatever
its block: so each target block gets its own uuid, derived from the caller's (``block_uuid``).

``BundleSubmitter`` holds the builders and blocks ahead for the live executor. Nothing is ever
sent to the public mempool (docs/adr/0011-no-public-mempool.md).
"""

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, Final, Self

from arbx.chain.rpc import RpcError, parse_reply, request_body
from arbx.chain.transport import AiohttpTransport, FailureKind, Poster, TransportError
from arbx.domain.errors import ConfigError
from arbx.errors import TransientError
from arbx.execution.flashbots import (
    FLASHBOTS_HEADER,
    BuilderSpec,
    BundleSimulation,
    FlashbotsSigner,
    TxSimulation,
    block_uuid,
    bundle_hash,
    call_bundle_params,
    cancel_request,
    parse_bundle_ack,
    parse_call_bundle,
    send_bundle_params,
)
from arbx.execution.rawtx import tx_hash

__all__ = [
    "BuilderSpec",
    "BundleSimulation",
    "BundleSubmitter",
    "FanOut",
    "FlashbotsSigner",
    "RelayClient",
    "RelayStats",
    "Sign",
    "Submission",
    "SubmitStatus",
    "TxSimulation",
]

Sign = Callable[[bytes], str]  # request body -> "<address>:<signature>"
DEFAULT_BLOCKS_AHEAD: Final = 2
MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024


class SubmitStatus(StrEnum):
    """What one request to one builder came to."""

    ACK = "ack"
    RPC_ERROR = "rpc_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    HTTP_STATUS = "http_status"
    RATE_LIMITED = "rate_limited"
    MALFORMED = "malformed"
    OVERSIZE = "oversize"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class Submission:
    """One request to one builder and its outcome."""

    builder: str
    method: str
    block_number: int | None
    status: SubmitStatus
    bundle_hash: bytes | None = None
    uuid: str | None = None
    error: str = ""
    latency: float = 0.0

    @property
    def ok(self) -> bool:
        """True if the builder acknowledged the request."""
        return self.status is SubmitStatus.ACK


@dataclass(frozen=True, slots=True)
class FanOut:
    """One bundle sent everywhere: its hashes, target blocks and every submission."""

    bundle_hash: bytes
    tx_hashes: tuple[bytes, ...]
    blocks: tuple[int, ...]
    submissions: tuple[Submission, ...]

    @property
    def acks(self) -> list[Submission]:
        """The acknowledged submissions."""
        return [s for s in self.submissions if s.ok]

    @property
    def failures(self) -> list[Submission]:
        """The submissions that failed, whatever the reason."""
        return [s for s in self.submissions if not s.ok]

    def counts(self) -> Counter[str]:
        """Submissions by status."""
        return Counter(str(s.status) for s in self.submissions)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """One request to one builder, its body built and signed, ready to post."""

    builder: BuilderSpec
    method: str
    request_id: int
    body: bytes
    headers: Mapping[str, str]
    block_number: int | None = None
    uuid: str | None = None


@dataclass(frozen=True, slots=True)
class PreparedFanOut:
    """A bundle's requests to every builder for every target block, signed, not yet sent."""

    bundle_hash: bytes
    tx_hashes: tuple[bytes, ...]
    blocks: tuple[int, ...]
    requests: tuple[SignedRequest, ...]


@dataclass(slots=True)
class RelayStats:
    """Counters for metrics: requests by builder and status."""

    requests: int = 0
    by_builder: dict[str, Counter[str]] = field(default_factory=dict)

    def count(self, builder: str, status: SubmitStatus) -> None:
        """Count one request's outcome."""
        self.requests += 1
        self.by_builder.setdefault(builder, Counter())[str(status)] += 1

    def failures(self) -> int:
        """Requests that were not acknowledged."""
        return sum(n for c in self.by_builder.values() for s, n in c.items() if s != "ack")


# -- the client -------------------------------------------------------------------------------


class RelayClient:
    """Signed bundle requests to builders; an async context manager."""

    def __init__(
        self, sign: Sign, *, timeout: float = 2.0, transport: Poster | None = None
    ) -> None:
        self._sign = sign
        self.timeout = timeout
        self.transport: Poster = transport or AiohttpTransport(
            max_response_bytes=MAX_ANSWER_BYTES, exact_integers=True
        )
        self.stats = RelayStats()
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Release the session."""
        await self.transport.close()

    def signed_request(
        self,
        builder: BuilderSpec,
        method: str,
        params: list[Any],
        block_number: int | None = None,
        uuid: str | None = None,
    ) -> SignedRequest:
        """Build and sign one request now, to post later (``post_signed``)."""
        request_id = next(self._ids)
        body = request_body(request_id, method, params)
        headers = {FLASHBOTS_HEADER: self._sign(body)}
        return SignedRequest(builder, method, request_id, body, headers, block_number, uuid)

    async def request(self, builder: BuilderSpec, method: str, params: list[Any]) -> Any:
        """The result of one signed request; TransportError, or RpcError for an error object."""
        return await self.post_signed(self.signed_request(builder, method, params))

    async def post_signed(self, request: SignedRequest) -> Any:
        """Post a signed request; its result, TransportError, or RpcError for an error object."""
        doc = await self.transport.post(
            request.builder.url, request.body, self.timeout, request.headers
        )
        result = parse_reply(doc, request.request_id)
        if isinstance(result, RpcError):
            raise result
        return result

    async def _submit(
        self,
        builder: BuilderSpec,
        method: str,
        params: list[Any],
        block_number: int | None,
        uuid: str | None = None,
    ) -> Submission:
        """Send one request and classify its outcome; never raises for the builder's failure."""
        return await self._submit_signed(
            self.signed_request(builder, method, params, block_number, uuid)
        )

    async def _submit_signed(self, request: SignedRequest) -> Submission:
        """Post a signed request and classify its outcome; never raises for the builder's."""
        builder, method = request.builder, request.method
        block_number, uuid = request.block_number, request.uuid
        started = time.perf_counter()
        found: bytes | None = None
        error = ""
        try:
            result = await self.post_signed(request)
            found = parse_bundle_ack(result) if method == "eth_sendBundle" else None
            status = SubmitStatus.ACK
        except TransportError as failure:
            status, error = SubmitStatus(str(failure.kind)), failure.detail
        except TransientError as exc:  # another transport's way of failing
            status, error = SubmitStatus.CONNECTION, str(exc)
        except RpcError as rpc_error:
            status, error = SubmitStatus.RPC_ERROR, str(rpc_error)
        except (ValueError, TypeError, KeyError) as exc:
            status, error = SubmitStatus.MALFORMED, f"answer refused: {exc}"
        self.stats.count(builder.name, status)
        return Submission(
            builder.name,
            method,
            block_number,
            status,
            found,
            uuid,
            error[:300],
            time.perf_counter() - started,
        )

    async def send_bundle(
        self,
        builder: BuilderSpec,
        raw_txs: Sequence[bytes | str],
        block_number: int,
        replacement_uuid: str | None = None,
        min_timestamp: int | None = None,
        max_timestamp: int | None = None,
        reverting_hashes: Sequence[bytes] = (),
    ) -> Submission:
        """``eth_sendBundle`` for one target block; the uuid goes under the builder's field."""
        params = send_bundle_params(
            builder,
            raw_txs,
            block_number,
            replacement_uuid=replacement_uuid,
            min_timestamp=min_timestamp,
            max_timestamp=max_timestamp,
            reverting_hashes=reverting_hashes,
        )
        uuid = replacement_uuid if builder.uuid_field is not None else None
        return await self._submit(builder, "eth_sendBundle", [params], block_number, uuid)

    async def call_bundle(
        self,
        builder: BuilderSpec,
        raw_txs: Sequence[bytes | str],
        block_number: int,
        state_block: int | str = "latest",
        timestamp: int | None = None,
    ) -> BundleSimulation:
        """``eth_callBundle``: the checked simulation; raises if the builder cannot give one."""
        if not builder.supports_call_bundle:
            raise ConfigError(f"builder {builder.name} does not offer eth_callBundle")
        params = call_bundle_params(raw_txs, block_number, state_block, timestamp)
        try:
            result = await self.request(builder, "eth_callBundle", [params])
            simulation = parse_call_bundle(result, [tx_hash(raw) for raw in raw_txs])
        except TransportError as failure:
            self.stats.count(builder.name, SubmitStatus(str(failure.kind)))
            raise
        except RpcError:
            self.stats.count(builder.name, SubmitStatus.RPC_ERROR)
            raise
        except (ValueError, TypeError, KeyError) as exc:
            self.stats.count(builder.name, SubmitStatus.MALFORMED)
            raise TransportError(FailureKind.MALFORMED, f"callBundle answer: {exc}") from exc
        self.stats.count(builder.name, SubmitStatus.ACK)
        return simulation

    async def cancel_bundle(
        self, builder: BuilderSpec, uuid: str, block_number: int | None = None
    ) -> Submission:
        """Cancel the bundle named ``uuid`` as ``builder`` can (an empty bundle needs its block)."""
        try:
            method, params = cancel_request(builder, uuid, block_number)
        except ValueError as exc:
            self.stats.count(builder.name, SubmitStatus.UNSUPPORTED)
            return Submission(
                builder.name, "cancel", block_number, SubmitStatus.UNSUPPORTED, None, uuid, str(exc)
            )
        return await self._submit(builder, method, params, block_number, uuid)

    async def fan_out(
        self,
        builders: Sequence[BuilderSpec],
        raw_txs: Sequence[bytes | str],
        block_number: int,
        *,
        blocks_ahead: int = DEFAULT_BLOCKS_AHEAD,
        replacement_uuid: str | None = None,
        min_timestamp: int | None = None,
        max_timestamp: int | None = None,
        reverting_hashes: Sequence[bytes] = (),
    ) -> FanOut:
        """Send the bundle to every builder for blocks N..N+k at once; every outcome, no raise."""
        prepared = self.prepare_fan_out(
            builders,
            raw_txs,
            block_number,
            blocks_ahead=blocks_ahead,
            replacement_uuid=replacement_uuid,
            min_timestamp=min_timestamp,
            max_timestamp=max_timestamp,
            reverting_hashes=reverting_hashes,
        )
        return await self.send_prepared(prepared)

    def prepare_fan_out(
        self,
        builders: Sequence[BuilderSpec],
        raw_txs: Sequence[bytes | str],
        block_number: int,
        *,
        blocks_ahead: int = DEFAULT_BLOCKS_AHEAD,
        replacement_uuid: str | None = None,
        min_timestamp: int | None = None,
        max_timestamp: int | None = None,
        reverting_hashes: Sequence[bytes] = (),
    ) -> PreparedFanOut:
        """Every request of ``fan_out``, built and signed, nothing sent (ValueError if bad)."""
        if blocks_ahead < 0:
            raise ValueError(f"blocks_ahead {blocks_ahead}")
        blocks = tuple(range(block_number, block_number + blocks_ahead + 1))
        requests = []
        for block in blocks:
            uuid = None if replacement_uuid is None else block_uuid(replacement_uuid, block)
            for builder in builders:
                params = send_bundle_params(
                    builder,
                    raw_txs,
                    block,
                    replacement_uuid=uuid,
                    min_timestamp=min_timestamp,
                    max_timestamp=max_timestamp,
                    reverting_hashes=reverting_hashes,
                )
                sent_uuid = uuid if builder.uuid_field is not None else None
                requests.append(
                    self.signed_request(builder, "eth_sendBundle", [params], block, sent_uuid)
                )
        return PreparedFanOut(
            bundle_hash(raw_txs), tuple(tx_hash(raw) for raw in raw_txs), blocks, tuple(requests)
        )

    async def send_prepared(self, prepared: PreparedFanOut) -> FanOut:
        """Post every request of a prepared fan-out at once; every outcome, no raise."""
        submissions = await asyncio.gather(*map(self._submit_signed, prepared.requests))
        return FanOut(prepared.bundle_hash, prepared.tx_hashes, prepared.blocks, tuple(submissions))

    async def cancel_fan_out(
        self, builders: Sequence[BuilderSpec], replacement_uuid: str, blocks: Sequence[int]
    ) -> list[Submission]:
        """Cancel every per-block copy of a fanned-out bundle at every builder that can."""
        jobs = [
            self.cancel_bundle(builder, block_uuid(replacement_uuid, block), block)
            for block in blocks
            for builder in builders
        ]
        return list(await asyncio.gather(*jobs))


# -- the submitter ------------------------------------------------------------------------------


class BundleSubmitter:
    """Bundles to every builder, privately; never to the public mempool (see ADR 0011)."""

    def __init__(
        self,
        relay: RelayClient,
        builders: Sequence[BuilderSpec],
        *,
        blocks_ahead: int = DEFAULT_BLOCKS_AHEAD,
    ) -> None:
        if not builders:
            raise ConfigError("no builder to send bundles to")
        self.relay = relay
        self.builders = tuple(builders)
        self.blocks_ahead = blocks_ahead

    async def submit(
        self,
        raw_txs: Sequence[bytes | str],
        block_number: int,
        *,
        replacement_uuid: str | None = None,
        reverting_hashes: Sequence[bytes] = (),
    ) -> FanOut:
        """Fan the bundle out to the builders for its target blocks."""
        prepared = self.prepare(
            raw_txs,
            block_number,
            replacement_uuid=replacement_uuid,
            reverting_hashes=reverting_hashes,
        )
        return await self.relay.send_prepared(prepared)

    def prepare(
        self,
        raw_txs: Sequence[bytes | str],
        block_number: int,
        *,
        replacement_uuid: str | None = None,
        reverting_hashes: Sequence[bytes] = (),
    ) -> PreparedFanOut:
        """The bundle's requests for its target blocks, signed now and sent by ``send``."""
        return self.relay.prepare_fan_out(
            self.builders,
            raw_txs,
            block_number,
            blocks_ahead=self.blocks_ahead,
            replacement_uuid=replacement_uuid,
            reverting_hashes=reverting_hashes,
        )

    async def send(self, prepared: PreparedFanOut) -> FanOut:
        """Send a prepared fan-out."""
        return await self.relay.send_prepared(prepared)
