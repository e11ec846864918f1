"""Simulation of the exact signed transactions before a bundle is sent; a failure drops it.

``simulate_signed`` replays one signed transaction with ``eth_call`` on a given state: its own
sender, gas, fee fields, value, data and access list, so the node also checks that the sender can
pay ``gas * maxFeePerGas + value``, as inclusion would. ``presimulate`` runs that for each
transaction of a bundle, then ``eth_callBundle`` at the first builder that offers it and answers,
and says whether to send, and if not, at which stage and why (for the record of the opportunity).
Each transaction is called on its own, so the ``eth_call`` stage suits bundles whose transactions
do not depend on one another (ours: one executor call); ``eth_callBundle`` runs them in sequence.
The node's calls and the builder's simulation run at the same time; the answer waits for all of
them, and an ``eth_call`` failure is reported before a builder's. A failure at any stage, a node
that cannot be reached included, means: do not send; the stage says whose failure it was
(``node``: the node could not simulate, which says nothing of the opportunity; ``eth_call``: the
transaction itself fails there). ``presimulate_at_head`` is the live
executor's form: the calls on the head's own state and the chain's height in one batch to the
node, the builder's simulation only if builders are given.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from eth_abi.exceptions import DecodingError

from arbx.chain.rpc import (
    ExecutionRevertedError,
    RpcClient,
    RpcError,
    block_tag,
    hex_bytes,
    hex_int,
)
from arbx.errors import TransientError
from arbx.execution.contract import revert_reason
from arbx.execution.flashbots import BuilderSpec, BundleSimulation
from arbx.execution.rawtx import RawTx, call_object, decode_raw_tx
from arbx.execution.relay import RelayClient


@dataclass(frozen=True, slots=True)
class Presimulation:
    """Whether a bundle may be sent: the failing stage and why, and the builder's simulation."""

    ok: bool
    stage: Literal["decode", "node", "eth_call", "call_bundle", "passed"]
    reason: str = ""
    simulation: BundleSimulation | None = None
    call_bundle_unavailable: tuple[str, ...] = ()  # builders that gave no usable answer


async def simulate_signed(
    client: RpcClient, raw: bytes | str, block: int | str = "latest"
) -> bytes:
    """``eth_call`` of the exact signed transaction; its return data, or ExecutionRevertedError."""
    call = call_object(decode_raw_tx(raw))
    return await client.call("eth_call", [call, block_tag(block)], decode=hex_bytes)


async def presimulate(
    client: RpcClient,
    raw_txs: Sequence[bytes | str],
    block_number: int,
    *,
    relay: RelayClient | None = None,
    builders: Sequence[BuilderSpec] = (),
    state: int | str = "latest",
) -> Presimulation:
    """Whether to send a bundle: ``eth_call`` of each tx alone on ``state`` (a block number or
    tag), then callBundle at a builder."""
    try:
        decoded = [decode_raw_tx(raw) for raw in raw_txs]
    except ValueError as exc:
        return Presimulation(False, "decode", str(exc))
    calls, bundle = await asyncio.gather(
        asyncio.gather(
            *(_call_stage(client, index, tx, state) for index, tx in enumerate(decoded))
        ),
        _call_bundle_stage(relay, builders, raw_txs, block_number),
    )
    for failure in calls:
        if failure is not None:
            return Presimulation(False, _stage(failure), failure)
    return bundle


async def presimulate_at_head(
    client: RpcClient,
    raw_txs: Sequence[bytes | str],
    head: int,
    *,
    relay: RelayClient | None = None,
    builders: Sequence[BuilderSpec] = (),
) -> tuple[Presimulation, int | None]:
    """``presimulate`` for block ``head + 1`` on the state of block ``head``, and the chain's
    height: the node's calls and its block number go in one batch (one round trip). The
    height is None when the node could not be asked (the presimulation then fails)."""
    try:
        decoded = [decode_raw_tx(raw) for raw in raw_txs]
    except ValueError as exc:
        return Presimulation(False, "decode", str(exc)), None
    requests: list[tuple[str, list[Any]]] = [
        ("eth_call", [call_object(tx), block_tag(head)]) for tx in decoded
    ]
    node, bundle = await asyncio.gather(
        _node_stage(client, [*requests, ("eth_blockNumber", [])]),
        _call_bundle_stage(relay, builders, raw_txs, head + 1),
    )
    failure, height = node
    if failure is not None:
        return Presimulation(False, _stage(failure), failure), height
    return bundle, height


async def simulate_call_at(
    client: RpcClient,
    call: dict[str, str],
    block: int,
    overrides: dict[str, dict[str, str]] | None = None,
) -> Presimulation:
    """``eth_call`` of an unsigned ``call`` (from, to, gas, data) on the state of ``block``,
    with the node's state ``overrides`` if given (code placed at an address): whether it
    passed, and if not whether the call itself failed (stage ``eth_call``) or the node could
    not run it (stage ``node``: unreachable, no state for the block)."""
    params: list[Any] = [call, block_tag(block)]
    if overrides:
        params.append(overrides)
    try:
        await client.call("eth_call", params, decode=hex_bytes)
    except RpcError as error:
        failure = _call_failure(0, error)
        if isinstance(error, ExecutionRevertedError):
            failure = f"{failure} ({_revert_of(error)})"
        return Presimulation(False, _stage(failure), failure)
    except TransientError as exc:
        return Presimulation(False, "node", f"{_NODE}unavailable: {exc}")
    return Presimulation(True, "passed")


def _revert_of(error: ExecutionRevertedError) -> str:
    """The revert's reason read from its data (the executor's errors by name)."""
    raw = error.data.get("data") if isinstance(error.data, dict) else error.data
    try:
        data = hex_bytes(raw) if raw is not None else b""
        return revert_reason(data) if data else "no revert data"
    except (ValueError, TypeError, KeyError, OverflowError, DecodingError):
        return "undecoded revert data"


# What a node answers when it cannot run a call on the state asked for (it is behind, pruned, or
# serving another branch): the node's failure, not the transaction's.
_MISSING_STATE = (
    "header not found",  # geth and its forks
    "missing trie node",  # geth, pruned state
    "unknown block",
    "block not found",
    "blockoutofrange",  # anvil: "BlockOutOfRangeError: block height is N but requested was M"
    "state not available",
)
_NODE = "node: "  # the prefix of a failure that is the node's


def _stage(failure: str) -> Literal["node", "eth_call"]:
    return "node" if failure.startswith(_NODE) else "eth_call"


def missing_state(error: RpcError) -> bool:
    """Whether ``error`` says the node has no state for the block asked (it is behind, pruned,
    or on another branch): the node's failure, not the call's."""
    lowered = error.message.lower()
    return not isinstance(error, ExecutionRevertedError) and any(
        m in lowered for m in _MISSING_STATE
    )


def _call_failure(index: int, error: RpcError) -> str:
    """Why one ``eth_call`` failed, as ``_stage`` reads it."""
    if missing_state(error):
        return f"{_NODE}tx {index}: {error}"
    return f"tx {index}: {error}"


async def _node_stage(
    client: RpcClient, requests: list[tuple[str, list[Any]]]
) -> tuple[str | None, int | None]:
    """Why the batch's first failing ``eth_call`` failed (or None), and the chain's height."""
    try:
        *calls, height = await client.batch(requests, return_errors=True)
    except RpcError as error:  # the whole batch refused
        return f"{_NODE}refused the simulation: {error}", None
    except TransientError as exc:
        return f"{_NODE}unavailable: {exc}", None
    for index, result in enumerate(calls):
        if isinstance(result, RpcError):
            return _call_failure(index, result), _height(height)
        if not isinstance(result, str):
            answer = type(result).__name__
            return f"{_NODE}tx {index}: eth_call answered {answer}", _height(height)
    if _height(height) is None:
        return f"{_NODE}eth_blockNumber answered {str(height)[:80]!r}", None
    return None, _height(height)


def _height(answer: Any) -> int | None:
    if isinstance(answer, RpcError) or not isinstance(answer, str):
        return None
    try:
        return hex_int(answer)
    except (TypeError, ValueError):
        return None


async def _call_stage(client: RpcClient, index: int, tx: RawTx, state: int | str) -> str | None:
    """Why ``eth_call`` of one signed transaction (read back) failed, or None."""
    try:
        await client.call("eth_call", [call_object(tx), block_tag(state)], decode=hex_bytes)
    except RpcError as error:
        return _call_failure(index, error)
    except TransientError as exc:
        return f"{_NODE}tx {index}: unavailable: {exc}"
    return None


async def _call_bundle_stage(
    relay: RelayClient | None,
    builders: Sequence[BuilderSpec],
    raw_txs: Sequence[bytes | str],
    block_number: int,
) -> Presimulation:
    """``eth_callBundle`` at the first builder that offers it and answers."""
    unavailable: list[str] = []
    if relay is not None:
        for builder in (b for b in builders if b.supports_call_bundle):
            try:
                simulation = await relay.call_bundle(builder, raw_txs, block_number)
            except (TransientError, RpcError) as exc:
                unavailable.append(f"{builder.name}: {exc}")
                continue
            failure = simulation.first_failure()
            if failure is not None:
                return Presimulation(False, "call_bundle", failure, simulation, tuple(unavailable))
            return Presimulation(True, "passed", "", simulation, tuple(unavailable))
    return Presimulation(True, "passed", "", None, tuple(unavailable))
