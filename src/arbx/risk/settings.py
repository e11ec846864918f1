"""The ``risk`` section of the settings (``[risk]`` in TOML, ``ARBX_RISK__...`` variables).

``arbx.config.Settings`` includes it as ``risk: RiskSettings``; ``limits()`` and ``schedule()``
turn it into the pure objects of ``arbx.domain.limits`` and ``arbx.domain.stages``. Input caps are
keyed by base token address, or ``"*"`` for every base token without its own cap.

Gates: the ``promote_*`` fields are the gate of every stage transition (defaults below, for a
mainnet-like chain of 12-second blocks: a day of blocks, 100 parity checks, p99 under 500 ms, 20
included bundles at 80 %, 24 quiet hours); ``[[risk.gates]]`` entries override them per
transition, the first one leaving shadow, each field optional. Small values let a rehearsal pass
a gate in minutes. ``prometheus_url`` names the Prometheus whose firing ``Arbx*`` alerts keep a
gate shut; without it the alerts are "not checked" and pass unless ``promote_alerts_required``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from eth_utils.address import is_hex_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from arbx.domain.limits import ANY_TOKEN, Limits
from arbx.domain.modes import Mode
from arbx.domain.stages import DemotionRule, PromotionRule, Schedule, Stage, default_schedule


def _caps(value: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for token, cap in value.items():
        if cap < 0:
            raise ValueError(f"the input cap for {token} must be >= 0")
        if token == ANY_TOKEN:
            out[token] = cap
        elif is_hex_address(token):
            out[str(to_checksum_address(token))] = cap
        else:
            raise ValueError(f"{token!r} is neither a 20-byte hex address nor '*'")
    return out


class StageSettings(BaseModel):
    """One capital stage: its mode and input caps per base token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode
    max_input: dict[str, int] = Field(default_factory=dict)
    name: str = ""

    @field_validator("max_input")
    @classmethod
    def _max_input(cls, value: dict[str, int]) -> dict[str, int]:
        return _caps(value)


def _default_stages() -> list[StageSettings]:
    return [
        StageSettings(mode=s.mode, max_input=dict(s.max_input), name=s.name)
        for s in default_schedule().stages
    ]


class GateSettings(BaseModel):
    """The gate of one stage transition: each field left out takes the ``promote_*`` value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_blocks: int | None = Field(None, ge=0)
    min_parity_checks: int | None = Field(None, ge=0)
    max_latency_p99_ms: float | None = Field(None, ge=0)  # 0: no bound
    alerts_required: bool | None = None
    min_included: int | None = Field(None, ge=0)
    min_ratio_bps: int | None = Field(None, ge=0)
    quiet_hours: float | None = Field(None, ge=0)


class RiskSettings(BaseModel):
    """Limits, the stage schedule and its rules, and the signer lease."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_input: dict[str, int] = Field(default_factory=dict)
    daily_gas_cap_wei: int = Field(5 * 10**16, ge=0)
    daily_loss_cap_wei: int = Field(10**17, ge=0)
    max_consecutive_failures: int = Field(5, ge=1)
    stages: list[StageSettings] = Field(default_factory=_default_stages)
    promote_min_included: int = Field(20, ge=0)
    promote_min_ratio_bps: int = Field(8_000, ge=0)
    promote_quiet_hours: float = Field(24.0, ge=0)
    promote_min_blocks: int = Field(7_200, ge=0)
    promote_min_parity_checks: int = Field(100, ge=0)
    promote_max_latency_p99_ms: float | None = Field(500.0, ge=0)  # 0 or None: no bound
    promote_alerts_required: bool = False
    gates: list[GateSettings] = Field(default_factory=list)
    prometheus_url: str | None = Field(None, max_length=2048)
    prometheus_timeout_s: float = Field(2.0, gt=0, le=30)
    gate_interval_s: float = Field(30.0, gt=0)  # seconds between gate evaluations
    demote_window: int = Field(20, ge=0)
    demote_floor_ratio_bps: int = Field(5_000, ge=0)
    demote_on_breach: Literal["one", "shadow"] = "one"
    signer_lease_seconds: float = Field(30.0, gt=0)

    @field_validator("max_input")
    @classmethod
    def _max_input(cls, value: dict[str, int]) -> dict[str, int]:
        return _caps(value)

    @field_validator("prometheus_url")
    @classmethod
    def _prometheus_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")) or any(c.isspace() for c in value):
            raise ValueError(f"prometheus_url must be a plain http(s) URL, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _valid_schedule(self) -> RiskSettings:
        self.schedule()
        return self

    def limits(self) -> Limits:
        """The per-trade, per-day and per-run limits."""
        return Limits(
            max_input=dict(self.max_input),
            daily_gas_cap_wei=self.daily_gas_cap_wei,
            daily_loss_cap_wei=self.daily_loss_cap_wei,
            max_consecutive_failures=self.max_consecutive_failures,
        )

    def schedule(self) -> Schedule:
        """The capital stages, their gates and the demotion rule."""
        promotion = PromotionRule(
            min_included=self.promote_min_included,
            min_ratio_bps=self.promote_min_ratio_bps,
            quiet_hours=self.promote_quiet_hours,
            min_blocks=self.promote_min_blocks,
            min_parity_checks=self.promote_min_parity_checks,
            max_latency_p99_ms=self.promote_max_latency_p99_ms or None,
            alerts_required=self.promote_alerts_required,
        )
        gates = []
        for gate in self.gates:
            given: dict[str, Any] = gate.model_dump(exclude_none=True)
            if given.get("max_latency_p99_ms") == 0:
                given["max_latency_p99_ms"] = None
            gates.append(replace(promotion, **given))
        return Schedule(
            stages=tuple(Stage(s.mode, dict(s.max_input), s.name) for s in self.stages),
            promotion=promotion,
            gates=tuple(gates),
            demotion=DemotionRule(
                window=self.demote_window,
                floor_ratio_bps=self.demote_floor_ratio_bps,
                on_breach=self.demote_on_breach,
            ),
        )
