"""Every metric of the engine and the API, named by Prometheus conventions.

Names carry the ``arbx_`` prefix and their base unit (``_seconds``, ``_blocks``, ``_eth``);
counters end in ``_total``. Latency histograms share buckets that resolve 1 ms to 2 s. Labels are
bounded by construction: RPC endpoints are named by their index or settings name (never a URL,
which may carry a key), builders by their settings name, outcomes, modes and kinds by closed sets,
API routes by their template. No pool, token or route address is ever a label.

Each process has its own registry: ``ENGINE`` (the run) and ``API`` (the REST API); both also
carry the process's own metrics (CPU, memory, file descriptors, garbage collector).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# 1 ms .. 2 s, roughly 1-2-5 per decade; +Inf is added by the client.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
)
REORG_DEPTHS: tuple[str, ...] = ("1", "2", "3", "4", "5+")
BUNDLE_OUTCOMES: tuple[str, ...] = (
    "sent",
    "included",
    "not_included",
    "reverted",
    "state_moved",
    "sim_failed",
)
MODES: tuple[str, ...] = ("shadow", "limited", "scaled")
DISCOVERY_REFUSALS: tuple[str, ...] = ("emitter", "event", "malformed", "unsorted", "address")


disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twin per counter


def _with_process_metrics(registry: CollectorRegistry) -> CollectorRegistry:
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


ENGINE = _with_process_metrics(CollectorRegistry(auto_describe=True))
API = _with_process_metrics(CollectorRegistry(auto_describe=True))

# --- the engine: blocks, sync, parity -------------------------------------------------------
ENGINE_INFO = Gauge(
    "arbx_engine_info",
    "The running engine: version and chain (always 1).",
    ["version", "chain"],
    registry=ENGINE,
)
HEARTBEAT = Gauge(
    "arbx_engine_heartbeat_timestamp_seconds",
    "Unix time of the engine's last heartbeat (once per processed block and per idle poll).",
    registry=ENGINE,
)
BLOCKS = Counter("arbx_blocks_processed_total", "Blocks the pipeline processed.", registry=ENGINE)
HEAD_BLOCK = Gauge("arbx_head_block", "The newest block number the node reported.", registry=ENGINE)
PROCESSED_BLOCK = Gauge(
    "arbx_processed_block", "The newest block number the pipeline processed.", registry=ENGINE
)
BLOCK_TO_OPPORTUNITIES = Histogram(
    "arbx_block_to_opportunities_seconds",
    "From a new head to its opportunities found and sized.",
    buckets=LATENCY_BUCKETS,
    registry=ENGINE,
)
SYNC_LAG_BLOCKS = Gauge(
    "arbx_sync_lag_blocks",
    "How many blocks the processed state is behind the node's head.",
    registry=ENGINE,
)
SYNC_LAG_SECONDS = Gauge(
    "arbx_sync_lag_seconds",
    "Age of the newest processed block: now minus its timestamp.",
    registry=ENGINE,
)
POOLS_TRACKED = Gauge("arbx_pools_tracked", "Pools whose state the engine keeps.", registry=ENGINE)
PARITY_CHECKS = Counter(
    "arbx_parity_checks_total",
    "Pool states compared with the chain after a block settled.",
    registry=ENGINE,
)
PARITY_FAILURES = Counter(
    "arbx_parity_failures_total",
    "Pool states that differed from the chain.",
    registry=ENGINE,
)
REORGS = Counter(
    "arbx_reorgs_total",
    "Chain reorganisations seen, by depth in blocks.",
    ["depth"],
    registry=ENGINE,
)
DISCOVERY_REFUSED = Counter(
    "arbx_discovery_refused_total",
    "Pool creation logs discovery refused, by reason: not from the venue's factory, not a"
    " creation event, malformed, tokens out of order, or an address not proven the factory's.",
    ["reason"],
    registry=ENGINE,
)

# --- the engine: RPC ------------------------------------------------------------------------
RPC_REQUESTS = Counter(
    "arbx_rpc_requests_total",
    "JSON-RPC requests sent, by endpoint (index or name) and method.",
    ["endpoint", "method"],
    registry=ENGINE,
)
RPC_ERRORS = Counter(
    "arbx_rpc_errors_total",
    "JSON-RPC requests that failed, by endpoint and method.",
    ["endpoint", "method"],
    registry=ENGINE,
)
RPC_LATENCY = Histogram(
    "arbx_rpc_request_duration_seconds",
    "JSON-RPC request latency, by endpoint and method.",
    ["endpoint", "method"],
    buckets=LATENCY_BUCKETS,
    registry=ENGINE,
)
RPC_FAILOVERS = Counter(
    "arbx_rpc_failovers_total",
    "Times a request moved on to the next endpoint after a failure.",
    registry=ENGINE,
)
RPC_HEDGES = Counter(
    "arbx_rpc_hedges_total",
    "Reads also sent to a second endpoint because the first had not answered in time.",
    registry=ENGINE,
)
RPC_ENDPOINT_UP = Gauge(
    "arbx_rpc_endpoint_up",
    "1 when the endpoint's last request succeeded, 0 when it failed.",
    ["endpoint"],
    registry=ENGINE,
)

# --- the engine: opportunities, bundles, money ----------------------------------------------
OPPORTUNITIES_FOUND = Counter(
    "arbx_opportunities_found_total",
    "Profitable opportunities found (after gas and the builder's payment).",
    registry=ENGINE,
)
OPPORTUNITIES_CAPTURABLE = Counter(
    "arbx_opportunities_capturable_total",
    "Opportunities in their block's best pool-disjoint set (what could have been captured).",
    registry=ENGINE,
)
EXPECTED_PROFIT = Counter(
    "arbx_opportunities_expected_profit_eth_total",
    "Expected net profit of the opportunities found, in ETH.",
    registry=ENGINE,
)
CAPTURABLE_PROFIT = Counter(
    "arbx_opportunities_capturable_profit_eth_total",
    "Expected net profit of each block's best pool-disjoint set of opportunities, in ETH.",
    registry=ENGINE,
)
BUNDLES = Counter(
    "arbx_bundles_total",
    "Bundles by builder and outcome (sent, included, not_included, reverted, state_moved, "
    "sim_failed).",
    ["builder", "outcome"],
    registry=ENGINE,
)
HEAD_TO_BUNDLE = Histogram(
    "arbx_head_to_bundle_seconds",
    "From a new head to its bundle handed to the builders.",
    buckets=LATENCY_BUCKETS,
    registry=ENGINE,
)
INCLUDED_EXPECTED_PROFIT = Counter(
    "arbx_bundles_expected_profit_eth_total",
    "Expected net profit of the included bundles, in ETH.",
    registry=ENGINE,
)
REALIZED_PROFIT = Counter(
    "arbx_bundles_realized_profit_eth_total",
    "Realized gains of included bundles, in ETH (losses are counted apart).",
    registry=ENGINE,
)
REALIZED_LOSS = Counter(
    "arbx_bundles_realized_loss_eth_total",
    "Realized losses of included bundles, in ETH, as a positive amount.",
    registry=ENGINE,
)
GAS_SPENT = Counter(
    "arbx_gas_spent_eth_total",
    "Gas paid by landed bundles (gas used times effective price), in ETH.",
    registry=ENGINE,
)
LAST_INCLUSION_BLOCK = Gauge(
    "arbx_bundles_last_included_block",
    "Block of the newest included bundle (the block the engine went live, before any).",
    registry=ENGINE,
)

# --- the engine: mode, stage, risk, signer --------------------------------------------------
MODE = Gauge(
    "arbx_mode",
    "The mode the engine trades in (1 for the current one).",
    ["mode"],
    registry=ENGINE,
)
STAGE = Gauge(
    "arbx_capital_stage", "Index of the current capital stage (0 is shadow).", registry=ENGINE
)
KILL_SWITCH = Gauge(
    "arbx_kill_switch_engaged", "1 while the kill switch is engaged.", registry=ENGINE
)
DAILY_GAS = Gauge("arbx_risk_daily_gas_eth", "Gas spent today (UTC), in ETH.", registry=ENGINE)
DAILY_GAS_CAP = Gauge("arbx_risk_daily_gas_cap_eth", "The daily gas cap, in ETH.", registry=ENGINE)
DAILY_LOSS = Gauge(
    "arbx_risk_daily_loss_eth",
    "Realized loss today (UTC), in ETH (0 when in profit).",
    registry=ENGINE,
)
DAILY_LOSS_CAP = Gauge(
    "arbx_risk_daily_loss_cap_eth", "The daily loss cap, in ETH.", registry=ENGINE
)
SIGNER_LOCK_HELD = Gauge(
    "arbx_signer_lock_held",
    "1 while this process holds the signing key's lock, by signer address.",
    ["signer"],
    registry=ENGINE,
)
SIGNER_LOCK_EPOCH = Gauge(
    "arbx_signer_lock_epoch",
    "Epoch of the signer lock this process holds (0 when none).",
    ["signer"],
    registry=ENGINE,
)
SIGNER_LOCK_HOLDER = Gauge(
    "arbx_signer_lock_holder_info",
    "Who holds the signer lock, as this process last saw it (always 1).",
    ["signer", "holder"],
    registry=ENGINE,
)
SIGNER_LOCK_REFUSED = Gauge(
    "arbx_signer_lock_refused",
    "1 while this process wants the signing key and was refused: another process holds it.",
    ["signer"],
    registry=ENGINE,
)
RELEASE_ROLE = Gauge(
    "arbx_release_role",
    "1 for this engine's role ('standby': follows in shadow until promoted; 'active': holds the"
    " signer lock, or is a shadow run's only engine), by release; 0 for the other role.",
    ["release", "role"],
    registry=ENGINE,
)

# --- the API --------------------------------------------------------------------------------
API_REQUESTS = Counter(
    "arbx_api_requests_total",
    "API requests, by route template, method and status code.",
    ["route", "method", "status"],
    registry=API,
)
API_LATENCY = Histogram(
    "arbx_api_request_duration_seconds",
    "API request latency, by route template and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
    registry=API,
)
