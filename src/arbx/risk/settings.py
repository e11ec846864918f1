"""The ``risk`` section of the settings (``[risk]`` in TOML, ``ARBX_RISK__...`` variables).

``arbx.config.Settings`` includes it as ``risk: RiskSettings``; ``limits()`` and ``schedule()``
turn it into the pure objects of ``arbx.domain.limits`` and ``arbx.domain.stages``. Input caps are
keyed by base token address, or ``"*"`` for every base token without its own cap.
"""

from __future__ import annotations

from typing import Literal

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
    demote_window: int = Field(20, ge=0)
    demote_floor_ratio_bps: int = Field(5_000, ge=0)
    demote_on_breach: Literal["one", "shadow"] = "one"
    signer_lease_seconds: float = Field(30.0, gt=0)

    @field_validator("max_input")
    @classmethod
    def _max_input(cls, value: dict[str, int]) -> dict[str, int]:
        return _caps(value)

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
        """The capital stages and the promotion and demotion rules."""
        return Schedule(
            stages=tuple(Stage(s.mode, dict(s.max_input), s.name) for s in self.stages),
            promotion=PromotionRule(
                min_included=self.promote_min_included,
                min_ratio_bps=self.promote_min_ratio_bps,
                quiet_hours=self.promote_quiet_hours,
            ),
            demotion=DemotionRule(
                window=self.demote_window,
                floor_ratio_bps=self.demote_floor_ratio_bps,
                on_breach=self.demote_on_breach,
            ),
        )
