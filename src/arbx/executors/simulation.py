"""Shadow mode's simulation: the trade a live engine would send, called at the node, unsigned.

For each block with opportunities, the trade the live executor would send for it
(``executors.trade``: the same routes, builder shares, calldata and gas limit) is run with
``eth_call`` on the head's state, from the executor contract's owner, with no fee fields (what
is judged is the route, not our balance). Nothing is signed and the signing key is never read:

- with ``execution.executor`` configured, that contract is called from the owner its public
  ``owner()`` names (the contract must have code at the head);
- with none, the shipped executor is placed at a fixed address by an ``eth_call`` state
  override: its creation code run by ``eth_call`` from a fixed owner address returns the runtime
  code with its immutables (owner, WETH) set, and ``owner()`` through the override must answer
  that owner, or the node does not apply overrides and simulation is skipped for the run (the
  reason logged once and given in the closing line).

The contract holds no storage (its route state is transient), so the overridden copy runs a
route exactly as a deployed one would.

Off the detection path: ``on_block`` only hands the block over. One simulation runs at a time;
a block still waiting when a newer one arrives is dropped (``stale``): shadow mode has no
sending deadline, but the next block's detection never waits behind the node.

The result is recorded as the status of each route of the trade (``on_simulated``, after the
block's own record): ``simulated_ok``; ``simulated_revert`` (the call itself failed on the
head's state: self-scoring judges the route never real); or ``unsimulated`` (the node could not
run it, the trade could not be encoded, or simulation is skipped for the run), which
self-scoring judges by the chain alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy.exc import SQLAlchemyError

from arbx.chain.rpc import RpcClient, RpcError, block_tag, hex_bytes
from arbx.chain.sync import hex_hash
from arbx.domain.bidding import Competition
from arbx.domain.errors import ArbxError, InputError
from arbx.domain.pools import Pool
from arbx.domain.profit import Opportunity
from arbx.engine.pipeline import BlockResult
from arbx.errors import TransientError
from arbx.execution.contract import locked_build, runtime_matches
from arbx.execution.presim import Presimulation, missing_state, simulate_call_at
from arbx.executors.shadow import ShadowExecutor
from arbx.executors.trade import LiveSettings, Trade, build_trade, choose_routes
from arbx.store.repo import route_key

log = logging.getLogger(__name__)

PASSED, FAILED, UNSIMULATED = "simulated_ok", "simulated_revert", "unsimulated"
# Where the shipped executor is placed by a state override, and who owns it there: fixed
# addresses nobody holds a key for (the last 20 bytes of a keccak256 of their names).
SHADOW_EXECUTOR = to_checksum_address(keccak(text="arbx.shadow.executor")[12:])
SHADOW_OWNER = to_checksum_address(keccak(text="arbx.shadow.owner")[12:])
OWNER_SELECTOR = keccak(text="owner()")[:4]


@dataclass(slots=True)
class SimulationStats:
    """What shadow simulation did in a run."""

    passed: int = 0  # routes whose call passed on their head's state
    failed: int = 0  # routes whose call itself failed: never real
    unsimulated: int = 0  # routes not simulated (the node, the encoding, or skipped below)
    stale: int = 0  # blocks dropped: a newer block came before their simulation started
    skipped: int = 0  # routes of those: simulation cannot run on this chain (why below)
    skipped_reason: str = ""

    def line(self) -> str:
        """The closing line of the run."""
        text = (
            f"shadow simulation: {self.passed + self.failed} routes simulated on their head's "
            f"state, {self.passed} passed, {self.failed} failed (never real), "
            f"{self.unsimulated - self.skipped} not simulated (the node could not run them), "
            f"{self.stale} blocks dropped as stale"
        )
        if self.skipped_reason:
            text += f"; {self.skipped} routes skipped: {self.skipped_reason}"
        return text


@dataclass(frozen=True, slots=True)
class Caller:
    """How the trade is called: the contract, its owner, and the node's state overrides."""

    executor: str
    owner: str
    overrides: dict[str, dict[str, str]] | None = None


class ShadowSimulator:
    """Simulates each block's trade in the background and records what became of its routes."""

    def __init__(
        self,
        client: RpcClient,
        pools: Mapping[str, Pool],
        settings: LiveSettings,
        recorder: ShadowExecutor,
        competition: Competition,
        *,
        executor: str | None = None,
    ) -> None:
        self.client = client
        self.pools = pools
        self.settings = settings  # its ``executor`` is replaced by the one called
        self.recorder = recorder
        self.competition = competition  # rivals seen by self-scoring (the bidding's shares)
        self.executor = executor  # the configured contract; None: the shipped one by override
        self.stats = SimulationStats()
        self._caller: Caller | None = None
        self._waiting: BlockResult | None = None
        self._task: asyncio.Future[None] | None = None

    def on_block(self, block: BlockResult) -> None:
        """Queue the block's trade for simulation (a block still waiting is dropped)."""
        if not block.opportunities:
            return
        if self._waiting is not None:
            self.stats.stale += 1
        self._waiting = block
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain())
            self._task.add_done_callback(_ended)

    async def close(self) -> None:
        """Finish the simulation in progress and the block waiting, if any."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _drain(self) -> None:
        while self._waiting is not None:
            block, self._waiting = self._waiting, None
            try:
                await self.simulate(block)
            except (ArbxError, SQLAlchemyError, OSError, ValueError) as exc:
                log.warning("shadow simulation of block %d failed: %s", block.head.number, exc)

    async def simulate(self, block: BlockResult) -> list[str]:
        """Simulate the trade of ``block`` and record it; each route's status (none: no trade)."""
        head = block.head.number
        routes = choose_routes(block.opportunities, head, self.settings, self.competition)
        if not routes:
            return []
        statuses, reason = await self._run(routes, head)
        for status in statuses:
            setattr(self.stats, _COUNTED[status], getattr(self.stats, _COUNTED[status]) + 1)
        if FAILED in statuses:
            log.info("shadow simulation of block %d: never real: %s", head, reason)
        elif UNSIMULATED in statuses and not self.stats.skipped_reason:
            log.info("shadow simulation of block %d: not simulated: %s", head, reason)
        block_hash = hex_hash(block.head.hash)
        for status in sorted(set(statuses)):
            keys = [
                route_key(o.route) for o, s in zip(routes, statuses, strict=True) if s == status
            ]
            await self.recorder.on_simulated(head, block_hash, keys, status)
        return statuses

    async def _run(self, routes: list[Opportunity], head: int) -> tuple[list[str], str]:
        """Each route's status, and why the trade failed or was not simulated."""
        caller = await self._prepare(head)
        if caller is None:
            if self.stats.skipped_reason:
                self.stats.skipped += len(routes)
                return [UNSIMULATED] * len(routes), self.stats.skipped_reason
            return [UNSIMULATED] * len(routes), "the executor could not be prepared at the node"
        settings = replace(self.settings, executor=caller.executor)
        try:
            trade = build_trade(routes, head, settings, self.pools, self.competition)
            alone = [build_trade([o], head, settings, self.pools, self.competition) for o in routes]
        except InputError as exc:
            return [UNSIMULATED] * len(routes), f"not encodable: {exc}"
        result = await simulate_call_at(self.client, _call(caller, trade), head, caller.overrides)
        if not result.ok or len(routes) == 1:
            return [_status(result)] * len(routes), result.reason
        # executeMany passes when any of its routes ran: each route's own execute says which
        results = await asyncio.gather(
            *(
                simulate_call_at(self.client, _call(caller, t), head, caller.overrides)
                for t in alone
            )
        )
        reasons = "; ".join(r.reason for r in results if not r.ok)
        return [_status(r) for r in results], reasons

    async def _prepare(self, head: int) -> Caller | None:
        """The caller, found once; None while the node cannot say (tried again at the next
        block) or for good when simulation cannot run here (``stats.skipped_reason``)."""
        if self._caller is not None or self.stats.skipped_reason:
            return self._caller
        try:
            if self.executor is not None:
                self._caller = await self._configured(self.executor, head)
            else:
                self._caller = await self._overridden(head)
        except _SkipError as why:
            self.stats.skipped_reason = str(why)
            log.warning("shadow simulation skipped for this run: %s", why)
        except (TransientError, RpcError) as exc:
            log.info("shadow simulation: the node could not prepare the executor: %s", exc)
        return self._caller

    async def _configured(self, executor: str, head: int) -> Caller:
        """The configured contract, called from its ``owner()``."""
        code = await self.client.call("eth_getCode", [executor, block_tag(head)], decode=hex_bytes)
        if not code:
            raise _SkipError(f"execution.executor {executor} has no code at block {head}")
        with _skipped_unless_missing_state(f"execution.executor {executor} answers no owner()"):
            answer = await self._owner_of(executor, head, None)
        if answer is None:
            raise _SkipError(f"execution.executor {executor} answers no owner()")
        return Caller(to_checksum_address(executor), answer)

    async def _overridden(self, head: int) -> Caller:
        """The shipped executor placed at ``SHADOW_EXECUTOR`` by a state override."""
        build = locked_build()
        creation = build.bytecode + encode(["address"], [self.settings.base_token])
        with _skipped_unless_missing_state("the node cannot run the executor's creation code"):
            runtime = await self.client.call(
                "eth_call",
                [{"from": SHADOW_OWNER, "data": "0x" + creation.hex()}, block_tag(head)],
                decode=hex_bytes,
            )
        if not runtime_matches(runtime, build):
            raise _SkipError("the node's run of the executor's creation code gave other code")
        overrides: dict[str, dict[str, str]] = {SHADOW_EXECUTOR: {"code": "0x" + runtime.hex()}}
        with _skipped_unless_missing_state("the node refuses eth_call state overrides"):
            owner = await self._owner_of(SHADOW_EXECUTOR, head, overrides)
        if owner is None or owner.lower() != SHADOW_OWNER.lower():
            raise _SkipError(
                "no executor configured and the node does not apply eth_call state overrides"
            )
        return Caller(SHADOW_EXECUTOR, SHADOW_OWNER, overrides)

    async def _owner_of(
        self, executor: str, head: int, overrides: dict[str, dict[str, str]] | None
    ) -> str | None:
        params: list[Any] = [{"to": executor, "data": "0x" + OWNER_SELECTOR.hex()}]
        params.append(block_tag(head))
        if overrides is not None:
            params.append(overrides)
        answer = await self.client.call("eth_call", params, decode=hex_bytes)
        if len(answer) != 32 or answer[:12] != bytes(12):
            return None
        return to_checksum_address(answer[12:])


_COUNTED = {PASSED: "passed", FAILED: "failed", UNSIMULATED: "unsimulated"}


def _status(result: Presimulation) -> str:
    """A route's status from its call's simulation."""
    if result.ok:
        return PASSED
    return FAILED if result.stage == "eth_call" else UNSIMULATED


def _call(caller: Caller, trade: Trade) -> dict[str, str]:
    """The unsigned call of ``trade`` from the executor's owner (no fee fields)."""
    return {
        "from": caller.owner,
        "to": caller.executor,
        "gas": hex(trade.gas_limit),
        "data": "0x" + trade.calldata.hex(),
    }


class _SkipError(Exception):
    """Simulation cannot run on this chain: why."""


@contextmanager
def _skipped_unless_missing_state(why: str) -> Iterator[None]:
    """A node's error answer inside is ``_SkipError(why: error)``, but for a block state the node
    does not have (yet, or any more), which is tried again at the next block."""
    try:
        yield
    except RpcError as exc:
        if missing_state(exc):
            raise
        raise _SkipError(f"{why}: {exc}") from None


def _ended(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("shadow simulation failed: %r", task.exception())
