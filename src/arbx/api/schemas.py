"""Request and response bodies of the API, so that the OpenAPI schema says exactly what is sent.

Wei amounts (and any integer that may pass 2^53) travel as decimal strings (``Wei``); request
bodies also accept JSON integers for them. Times are ISO 8601 in UTC. Unknown fields in a request
body are refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from arbx.domain.modes import Mode

UINT256_MAX = 2**256 - 1
MAX_LIMIT = 500

Wei = Annotated[
    str,
    Field(pattern=r"^-?[0-9]+$", description="an exact amount in wei, as a decimal string"),
]
Role = Literal["viewer", "operator"]


def _clean_text(value: Any) -> Any:
    """Strip a text field; refuse control characters (NUL cannot be stored)."""
    if isinstance(value, str):
        if any(ord(c) < 32 and c not in "\t\n" for c in value):
            raise ValueError("must not contain control characters")
        return value.strip()
    return value


def _wei_in(value: Any) -> Any:
    """A positive amount from a JSON integer or a decimal string."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number of wei, not a boolean")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or len(value) > 78:
            raise ValueError("must be a whole number of wei (decimal digits, at most 78)")
        value = int(value)
    if not isinstance(value, int):
        raise ValueError("must be a whole number of wei")
    if not 1 <= value <= UINT256_MAX:
        raise ValueError("must be between 1 and 2^256 - 1")
    return value


Reason = Annotated[
    str,
    BeforeValidator(_clean_text),
    Field(min_length=1, max_length=1024, description="why: recorded in the audit log"),
]
WeiIn = Annotated[
    int,
    BeforeValidator(_wei_in),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": "^[0-9]{1,78}$"},
                {"type": "integer", "minimum": 1},
            ],
            "description": "a positive amount in wei: decimal string (preferred) or integer",
        }
    ),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """Every refusal: one clear line."""

    detail: str = Field(examples=["limit: must be at most 500"])


# --- health and status ------------------------------------------------------------------------


class HealthOut(BaseModel):
    """The process is alive."""

    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    """Readiness: the database answers and the engine's heartbeat is fresh."""

    ready: bool
    database: str = Field(description="'ok' or what went wrong")
    heartbeat_age_s: float | None
    heartbeat_max_age_s: float
    detail: str | None = Field(None, description="the failing check, when not ready")


class KillSwitchOut(BaseModel):
    """The kill switch of a chain (chain 0: every chain)."""

    chain_id: int
    engaged: bool
    reason: str | None
    actor: str | None = None
    updated_at: datetime | None = None


class StatusOut(BaseModel):
    """What the engine is doing: mode, stage, kill switch, chain head, sync lag, heartbeat."""

    mode: Mode = Field(description="the mode the engine trades in now (shadow without a key)")
    mode_ceiling: Mode | None = Field(description="the highest mode allowed")
    mode_ceiling_source: Literal["api", "configured"] | None
    stage: int
    stage_name: str
    risk_reason: str | None
    kill_switch: KillSwitchOut
    chain_id: int | None
    head_block: int | None
    synced_block: int | None
    sync_lag_blocks: int | None
    heartbeat_at: datetime | None
    heartbeat_age_s: float | None
    run_id: int | None
    run_status: str | None


class WhoAmIOut(BaseModel):
    """The token a request came with."""

    name: str
    role: Role


# --- opportunities, bundles, pools, audit -----------------------------------------------------


class OpportunityOut(BaseModel):
    """An opportunity found in a block, sized, with its expected profit."""

    id: int
    run_id: int
    chain_id: int
    block_number: int
    block_hash: str
    route_key: str
    pools: list[str]
    tokens: list[str]
    amount_in: Wei
    amount_out: Wei
    gross_profit: Wei
    gas_units: int
    gas_cost: Wei
    builder_payment: Wei
    net_profit: Wei
    latency_ms: float
    status: str
    detected_at: datetime


class OpportunityPage(BaseModel):
    """A page of opportunities, newest first."""

    items: list[OpportunityOut]
    next_before_id: int | None = Field(
        description="the cursor of the next (older) page: pass it as before_id; null at the end"
    )
    next_after_id: int | None = Field(description="the same cursor under its other name")


class TransactionOut(BaseModel):
    """A signed transaction of a bundle and its receipt."""

    hash: str
    nonce: int
    from_address: str
    to_address: str | None
    gas_limit: int
    max_fee: Wei
    priority_fee: Wei
    status: str
    gas_used: int | None
    effective_gas_price: Wei | None


class BundleOut(BaseModel):
    """A bundle sent to builders and how it ended."""

    id: int
    run_id: int
    opportunity_id: int | None
    signer: str | None
    builders: list[str]
    target_block: int
    replacement_uuid: str | None
    bundle_hash: str | None
    status: str
    tx_hashes: list[str]
    included_block: int | None
    included_block_hash: str | None
    gas_used: int | None
    gas_cost: Wei | None
    expected_net_profit: Wei
    realized_profit: Wei | None
    sent_at: datetime
    settled_at: datetime | None


class BundleDetail(BundleOut):
    """A bundle with its transactions."""

    transactions: list[TransactionOut]


class BundlePage(BaseModel):
    """A page of bundles, newest first."""

    items: list[BundleOut]
    next_before_id: int | None = Field(description="pass as before_id for the next page")
    next_after_id: int | None = Field(description="the same cursor under its other name")


class PoolOut(BaseModel):
    """A pool's static description."""

    chain_id: int
    address: str
    family: str
    venue: str | None
    token0: str
    token1: str
    token0_symbol: str | None
    token1_symbol: str | None
    fee: int = Field(description="basis points (V2) or millionths (V3)")
    tick_spacing: int | None
    created_block: int | None
    last_synced_block: int | None


class PoolPage(BaseModel):
    """A page of pools in address order."""

    items: list[PoolOut]
    next_after: str | None = Field(description="pass as after for the next page; null at the end")


class AuditOut(BaseModel):
    """Who changed what, when, from what to what."""

    id: int
    at: datetime
    actor: str
    action: str
    before: Any
    after: Any


class AuditPage(BaseModel):
    """A page of the audit log, newest first."""

    items: list[AuditOut]
    next_before_id: int | None
    next_after_id: int | None


# --- PnL --------------------------------------------------------------------------------------


class PnlRowOut(BaseModel):
    """Bundles of one day, route or builder."""

    key: str = Field(description="YYYY-MM-DD, a route key, or a builder; '-' when none")
    bundles: int
    included: int
    expected_net_profit_wei: Wei = Field(description="expected net profit of included bundles")
    realized_profit_wei: Wei = Field(description="realized profit of every bundle")
    gas_cost_wei: Wei


class PnlTotalsOut(BaseModel):
    """Every bundle of the period."""

    bundles: int
    included: int
    expected_net_profit_wei: Wei
    realized_profit_wei: Wei
    gas_cost_wei: Wei


CAPTURABLE = "capturable: per block, the best pool-disjoint set of opportunities (net profit)"
SUM_OF_ALL = "sum of all found: every opportunity's net profit, overlapping routes each counted"


class OpportunityDayOut(BaseModel):
    """Opportunities of one UTC day."""

    day: str
    opportunities: int
    expected_net_profit_wei: Wei = Field(description=SUM_OF_ALL)
    capturable_opportunities: int = Field(description="opportunities in their block's best set")
    capturable_net_profit_wei: Wei = Field(description=CAPTURABLE)


class OpportunityTotalsOut(BaseModel):
    """Opportunities of the period: the sum of all found, and what could have been captured."""

    opportunities: int
    expected_net_profit_wei: Wei = Field(description=SUM_OF_ALL)
    capturable_opportunities: int = Field(description="opportunities in their block's best set")
    capturable_net_profit_wei: Wei = Field(description=CAPTURABLE)
    by_day: list[OpportunityDayOut]


class PnlOut(BaseModel):
    """Expected against realized profit of bundles, grouped; opportunities' expected per day."""

    group_by: Literal["day", "route", "builder"]
    chain_id: int | None
    run_id: int | None
    since: str | None
    until: str | None
    rows: list[PnlRowOut]
    totals: PnlTotalsOut
    opportunities: OpportunityTotalsOut


# --- self-scoring -----------------------------------------------------------------------------


class TakerOut(BaseModel):
    """Someone else who took opportunities we found: how many, and their profit."""

    taker: str = Field(description="the sender of their arbitrage transactions")
    opportunities: int
    profit_wei: Wei = Field(description="their profit, each arbitrage transaction counted once")


class ScoresOut(BaseModel):
    """What became of a run's opportunities over the blocks after them."""

    run_id: int | None
    scored: int
    outcomes: dict[str, int] = Field(
        description="captured_us, captured_other, still_open, closed, never_real"
    )
    capture_rate: float | None = Field(
        description="captured by us, of all found that were real (overlapping routes included)"
    )
    capturable_outcomes: dict[str, int] = Field(
        description="the same outcomes, for the capturable opportunities only"
    )
    capturable_capture_rate: float | None = Field(
        description="captured by us, of the capturable opportunities that were real"
    )
    taken_by_others_profit_wei: Wei
    taken_by_others_expected_net_profit_wei: Wei = Field(
        description="what we expected to net from the capturable opportunities others took"
    )
    missed_capturable_net_profit_wei: Wei = Field(
        description="capturable, real and not ours, a route left open over consecutive blocks "
        "counted once, unsimulated: a loose upper bound of what going live would win"
    )
    simulations: dict[str, int] = Field(
        description="the scored opportunities by shadow simulation status: simulated_ok, "
        "simulated_revert (never real), unsimulated (the routes of the trade a live engine "
        "would have sent each block, simulated on their head's state)"
    )
    going_live_net_profit_wei: Wei = Field(
        description="in shadow, what going live would have won: the expected net profit of the "
        "routes that passed simulation and that nobody of ours took, a route sent again the "
        "next block counted once (rivals' bids not counted)"
    )
    going_live_trades: int = Field(description="the routes the going-live figure counts")
    takers: list[TakerOut]


# --- controls ---------------------------------------------------------------------------------


class ModeOut(BaseModel):
    """The mode ceiling operators set (or the configured one) and the mode in force."""

    chain_id: int
    mode: Mode | None = Field(description="the ceiling in force: set by operators, else configured")
    source: Literal["api", "configured"] | None
    configured: Mode | None
    effective_mode: Mode = Field(description="what the engine trades in now")
    updated_at: datetime | None
    updated_by: str | None


class ModeIn(_In):
    """A new mode ceiling; null gives the choice back to the settings."""

    mode: Mode | None
    reason: Reason | None = None


class LimitsOut(BaseModel):
    """The limits in force: set by operators, else configured (null fields: not known here)."""

    chain_id: int
    source: Literal["api", "configured"] | None
    max_input: dict[str, Wei] | None
    daily_gas_cap_wei: Wei | None
    daily_loss_cap_wei: Wei | None
    max_consecutive_failures: int | None
    updated_at: datetime | None
    updated_by: str | None


class LimitsIn(_In):
    """New limits, all of them: caps per base token ('*' for any), per day and per run."""

    max_input: dict[str, WeiIn] = Field(
        max_length=100, description="checksummed token address (or '*') -> most input in wei"
    )
    daily_gas_cap_wei: WeiIn
    daily_loss_cap_wei: WeiIn
    max_consecutive_failures: int = Field(ge=1, le=1_000_000, strict=True)
    reason: Reason | None = None


class KillIn(_In):
    """Engage the kill switch."""

    reason: Reason
    all_chains: bool = Field(False, description="the switch of every chain")


class UnkillIn(_In):
    """Release the kill switch."""

    reason: Reason | None = None
    all_chains: bool = False


# --- capital stages ---------------------------------------------------------------------------


class StageOut(BaseModel):
    """A capital stage of the schedule."""

    index: int
    name: str
    mode: Mode
    max_input: dict[str, Wei] = Field(description="input cap per base token ('*': any other)")


class GateConditionOut(BaseModel):
    """One condition of the gate to the next stage."""

    name: str
    measured: str
    required: str
    passed: bool


class StageDecisionOut(BaseModel):
    """What an evaluation of the stage would decide now."""

    action: Literal["stay", "promote", "demote"]
    to_stage: int
    reason: str


class StageChangeOut(BaseModel):
    """A stage change (promotion, demotion, manual) with the evidence behind it."""

    at: datetime
    kind: str
    from_stage: int
    to_stage: int
    reason: str
    evidence: Any = Field(description="the conditions measured when it happened (JSON)")


class StageStatusOut(BaseModel):
    """A key's capital stage, the next one, the gate between them and the recent changes."""

    chain_id: int
    key: str | None = Field(description="the signing key's address; None before any live start")
    stage: StageOut
    entered_at: datetime | None
    next: StageOut | None = Field(description="None at the last stage")
    ceiling: Mode = Field(description="the mode ceiling in force (configured, or lowered)")
    conditions: list[GateConditionOut]
    gate_passed: bool
    needs: list[str] = Field(description="what the next gate still needs, one line each")
    decision: StageDecisionOut
    note: str | None
    history: list[StageChangeOut] = Field(description="the newest stage changes, newest first")
