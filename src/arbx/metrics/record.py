"""The typed helpers the engine, the RPC client, the executors and the API call to measure.

Each helper keeps its labels bounded: names that do not look like a short identifier become
``other``, reorg depths past four fold into ``5+``, and amounts arrive in wei and are exposed in
ETH. Helpers never raise on odd input: measuring must not stop the work it measures.
"""

from __future__ import annotations

import re
import time

from arbx.metrics import registry as m

WEI_PER_ETH = 10**18
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# block numbers behind the gauges, kept here so the helpers never read a metric back
_blocks = {"head": 0, "processed": 0, "included": 0}
_beat: list[float] = []  # the last heartbeat's time, once there was one


def _label(value: str) -> str:
    return value if _NAME.match(value) else "other"


def eth(wei: int) -> float:
    """An amount in wei as ETH (for exposition only; never for money arithmetic)."""
    return wei / WEI_PER_ETH


def endpoint_label(index: int, name: str | None = None) -> str:
    """The label of an RPC endpoint: its settings name when short and plain, else its index."""
    if name and _NAME.match(name):
        return name
    return str(index)


# --- the engine -----------------------------------------------------------------------------
def engine_started(version: str, chain: str) -> None:
    """Record which engine runs, and beat once."""
    m.ENGINE_INFO.labels(version=_label(version), chain=_label(chain)).set(1)
    mode("shadow", 0)  # until the risk controller says otherwise
    kill_switch(False)
    heartbeat()


def heartbeat(now: float | None = None) -> None:
    """The engine is alive (once per block and per idle poll)."""
    now = time.time() if now is None else now
    _beat[:] = [now]
    m.HEARTBEAT.set(now)


def last_heartbeat() -> float | None:
    """Unix time of the last heartbeat, or None before the first one."""
    return _beat[0] if _beat else None


def head_seen(number: int) -> None:
    """The node reported ``number`` as its newest block."""
    _blocks["head"] = max(number, _blocks["head"])
    _sync_lag_blocks()


def observe_block(
    number: int,
    seconds: float,
    *,
    block_timestamp: int | None = None,
    now: float | None = None,
) -> None:
    """One block processed in ``seconds`` (head to opportunities); updates lag and heartbeat."""
    now = time.time() if now is None else now
    m.BLOCKS.inc()
    m.BLOCK_TO_OPPORTUNITIES.observe(max(seconds, 0.0))
    _blocks["processed"] = number
    _blocks["head"] = max(number, _blocks["head"])
    _sync_lag_blocks()
    if block_timestamp is not None:
        m.SYNC_LAG_SECONDS.set(max(now - block_timestamp, 0.0))
    if _blocks["included"] == 0:
        _blocks["included"] = number
        m.LAST_INCLUSION_BLOCK.set(number)
    heartbeat(now)


def _sync_lag_blocks() -> None:
    head, done = _blocks["head"], _blocks["processed"]
    m.HEAD_BLOCK.set(head)
    m.PROCESSED_BLOCK.set(done)
    m.SYNC_LAG_BLOCKS.set(max(head - done, 0) if done else 0)


def pools_tracked(count: int) -> None:
    """How many pools the engine keeps."""
    m.POOLS_TRACKED.set(count)


def parity_checked(pools: int, failures: int) -> None:
    """``pools`` compared with the chain, ``failures`` of them different."""
    m.PARITY_CHECKS.inc(max(pools, 0))
    m.PARITY_FAILURES.inc(max(failures, 0))


def reorg(depth: int) -> None:
    """A reorganisation ``depth`` blocks deep."""
    m.REORGS.labels(depth=str(depth) if 1 <= depth <= 4 else "5+").inc()


def discovery_refused(reason: str) -> None:
    """Discovery refused one pool creation log (a reason of ``DISCOVERY_REFUSALS``)."""
    m.DISCOVERY_REFUSED.labels(reason=reason if reason in m.DISCOVERY_REFUSALS else "other").inc()


# --- RPC ------------------------------------------------------------------------------------
def rpc_request(endpoint: str, method: str, ok: bool, seconds: float) -> None:
    """One JSON-RPC request to ``endpoint`` (a label from ``endpoint_label``), and its outcome."""
    endpoint, method = _label(endpoint), _label(method)
    m.RPC_REQUESTS.labels(endpoint=endpoint, method=method).inc()
    m.RPC_LATENCY.labels(endpoint=endpoint, method=method).observe(max(seconds, 0.0))
    if not ok:
        m.RPC_ERRORS.labels(endpoint=endpoint, method=method).inc()
    m.RPC_ENDPOINT_UP.labels(endpoint=endpoint).set(1 if ok else 0)


def rpc_failover() -> None:
    """A request moved on to the next endpoint."""
    m.RPC_FAILOVERS.inc()


def rpc_hedge() -> None:
    """A read was sent to a second endpoint, the first being slow to answer."""
    m.RPC_HEDGES.inc()


# --- opportunities, bundles, money ----------------------------------------------------------
def opportunities_found(count: int, expected_profit_wei: int) -> None:
    """A block's opportunities: how many were found, and their expected net profit."""
    m.OPPORTUNITIES_FOUND.inc(max(count, 0))
    m.EXPECTED_PROFIT.inc(eth(max(expected_profit_wei, 0)))


def opportunities_capturable(count: int, net_profit_wei: int) -> None:
    """A block's best pool-disjoint set of opportunities: its size and net profit."""
    m.OPPORTUNITIES_CAPTURABLE.inc(max(count, 0))
    m.CAPTURABLE_PROFIT.inc(eth(max(net_profit_wei, 0)))


def bundle_outcome(builder: str, outcome: str) -> None:
    """A bundle sent to ``builder``, or its outcome there."""
    if outcome not in m.BUNDLE_OUTCOMES:
        outcome = "other"
    m.BUNDLES.labels(builder=_label(builder), outcome=outcome).inc()


def head_to_bundle(seconds: float) -> None:
    """From the head to the bundle handed to the builders."""
    m.HEAD_TO_BUNDLE.observe(max(seconds, 0.0))


def bundle_settled(
    *, block: int | None, expected_wei: int, realized_wei: int, gas_wei: int, included: bool
) -> None:
    """A bundle's money once settled: gas paid, and for an included one expected and realized."""
    m.GAS_SPENT.inc(eth(max(gas_wei, 0)))
    if not included:
        return
    m.INCLUDED_EXPECTED_PROFIT.inc(eth(max(expected_wei, 0)))
    if realized_wei >= 0:
        m.REALIZED_PROFIT.inc(eth(realized_wei))
    else:
        m.REALIZED_LOSS.inc(eth(-realized_wei))
    if block is not None:
        _blocks["included"] = max(block, _blocks["included"])
        m.LAST_INCLUSION_BLOCK.set(_blocks["included"])


# --- mode, stage, risk, signer --------------------------------------------------------------
def mode(current: str, stage: int) -> None:
    """The mode the engine trades in and the capital stage's index."""
    for name in m.MODES:
        m.MODE.labels(mode=name).set(1 if name == current else 0)
    m.STAGE.set(stage)


def kill_switch(engaged: bool) -> None:
    """The kill switch's state."""
    m.KILL_SWITCH.set(1 if engaged else 0)


def risk_day(*, gas_wei: int, gas_cap_wei: int, loss_wei: int, loss_cap_wei: int) -> None:
    """Today's gas and loss against their caps."""
    m.DAILY_GAS.set(eth(gas_wei))
    m.DAILY_GAS_CAP.set(eth(gas_cap_wei))
    m.DAILY_LOSS.set(eth(max(loss_wei, 0)))
    m.DAILY_LOSS_CAP.set(eth(loss_cap_wei))


def signer_lock(
    signer: str, *, epoch: int | None, holder: str | None, refused: bool = False
) -> None:
    """This process's view of the signer lock: held with ``epoch`` or not, who holds it, and
    whether this process wants it and was refused."""
    signer = signer.lower() if re.fullmatch(r"0x[0-9a-fA-F]{40}", signer) else "other"
    m.SIGNER_LOCK_HELD.labels(signer=signer).set(0 if epoch is None else 1)
    m.SIGNER_LOCK_EPOCH.labels(signer=signer).set(epoch or 0)
    m.SIGNER_LOCK_REFUSED.labels(signer=signer).set(1 if refused else 0)
    m.SIGNER_LOCK_HOLDER.clear()
    if holder:
        m.SIGNER_LOCK_HOLDER.labels(signer=signer, holder=_label(holder[:40])).set(1)


def release_role(release: str, role: str) -> None:
    """This engine's release and role ('active' or 'standby'); one release per process."""
    m.RELEASE_ROLE.clear()
    for name in ("active", "standby"):
        label = release if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", release) else "other"
        m.RELEASE_ROLE.labels(release=label, role=name).set(1 if name == role else 0)


# --- the API --------------------------------------------------------------------------------
def api_request(route: str, method: str, status: int, seconds: float | None) -> None:
    """One API request: its route template (never the raw path), method, status and latency
    (None for a stream, whose duration is the client's)."""
    method = method.upper() if method.upper() in _HTTP_METHODS else "other"
    route = route if route.startswith("/") and len(route) <= 80 else "unmatched"
    m.API_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
    if seconds is not None:
        m.API_LATENCY.labels(route=route, method=method).observe(max(seconds, 0.0))
