"""What the engine does when a block's work fails: the supervision policy, by error class.

    error                               class       action
    TransientError (timeouts, every     transient   back off (exponential, jitter, capped) and
      endpoint down, transport faults)                retry the same block; the run goes on
    StaleStateError naming pools        stale       reload those pools at our head, retry
    StaleStateError, RpcError,          stale       retry after a back-off (a node may lag a
      BootstrapError (our copy of the                 block behind the head it announced); after
      chain and the node's answers                    ``stale_retries`` failures, re-bootstrap the
      disagree)                                       whole book at the chain's head, and again
                                                      after each back-off while it goes on
    ConfigError, InputError, MathError, fatal       stop with one clear message, recorded in the
      an RpcError "method not found"                  run
      (the endpoint cannot serve the
      engine), anything else

A book more than ``catch_up_blocks`` behind the chain (after an outage) is re-bootstrapped at
the chain's head rather than replayed block by block: those blocks' opportunities are gone.

Pure: no IO, no clock; the caller sleeps and acts.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from arbx.chain.bootstrap import BootstrapError
from arbx.chain.rpc import RpcError
from arbx.domain.errors import ArbxError, ConfigError, MathError, StaleStateError
from arbx.errors import TransientError

METHOD_NOT_FOUND = -32601  # JSON-RPC: the endpoint does not serve a method the engine needs


class Fault(enum.Enum):
    """What kind of failure an exception is, for the engine."""

    TRANSIENT = "transient"
    STALE = "stale"
    FATAL = "fatal"


class Action(enum.Enum):
    """What the engine does next."""

    RETRY = "retry"  # the same block again, after ``delay``
    RELOAD = "reload"  # reload ``pools`` at our head, then the same block again
    REBOOTSTRAP = "rebootstrap"  # reload every pool at the chain's head; skip what it covers
    STOP = "stop"  # end the run, recording ``reason``


def classify(exc: BaseException) -> Fault:
    """The class of ``exc``: transient, stale or fatal (see the module's table)."""
    if isinstance(exc, ConfigError | MathError):
        return Fault.FATAL
    if isinstance(exc, TransientError):
        return Fault.TRANSIENT
    if isinstance(exc, RpcError) and exc.code == METHOD_NOT_FOUND:
        return Fault.FATAL
    if isinstance(exc, StaleStateError | RpcError | BootstrapError):
        return Fault.STALE
    return Fault.FATAL


def stale_pools(exc: BaseException) -> frozenset[str]:
    """The pools a StaleStateError names (empty: the whole book is in doubt)."""
    return exc.pools if isinstance(exc, StaleStateError) else frozenset()


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential back-off with jitter: ``base * 2**attempt`` capped at ``cap``, then jittered
    down by up to half, so that several engines behind one node do not retry in step."""

    base: float = 0.2
    cap: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        ceiling: float = min(self.cap, self.base * 2.0 ** min(attempt, 32))
        jitter: float = rng.uniform(0.0, ceiling / 2)
        return ceiling / 2 + jitter


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer for one failure."""

    fault: Fault
    action: Action
    delay: float = 0.0
    pools: frozenset[str] = frozenset()
    reason: str = ""


@dataclass(slots=True)
class SupervisionPolicy:
    """Decides, for each failure of a block's work, what to do (see the module's table)."""

    backoff: Backoff = Backoff()
    stale_retries: int = 3
    catch_up_blocks: int = 64  # further behind the chain than this: re-bootstrap, do not replay
    rng: random.Random = field(default_factory=random.Random)

    def decide(self, exc: BaseException, attempt: int) -> Decision:
        """What to do after ``exc``, the ``attempt``-th failure (from 0) of the same block."""
        fault = classify(exc)
        reason = describe(exc)
        if fault is Fault.FATAL:
            return Decision(fault, Action.STOP, reason=reason)
        delay = self.backoff.delay(attempt, self.rng)
        if fault is Fault.TRANSIENT:
            return Decision(fault, Action.RETRY, delay, reason=reason)
        pools = stale_pools(exc)
        if attempt < self.stale_retries:
            if pools:
                return Decision(fault, Action.RELOAD, 0.0, pools, reason)
            return Decision(fault, Action.RETRY, delay, reason=reason)
        return Decision(fault, Action.REBOOTSTRAP, delay, reason=reason)


def describe(exc: BaseException) -> str:
    """One line for an exception: its message, or its type when it has none."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, ArbxError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
