"""The engine's modes, in rising order of risk: the one definition every layer imports."""

from __future__ import annotations

from typing import Literal

Mode = Literal["shadow", "limited", "scaled"]

# shadow finds and simulates and never signs; limited and scaled sign within their limits
MODES: tuple[Mode, ...] = ("shadow", "limited", "scaled")


def signs(mode: Mode) -> bool:
    """Whether a run in ``mode`` needs the signing key (every mode but shadow)."""
    return mode != "shadow"


def mode_rank(mode: Mode) -> int:
    """0 for shadow, 1 for limited, 2 for scaled: a higher rank risks more."""
    return MODES.index(mode)


def as_mode(value: object) -> Mode | None:
    """``value`` as a Mode when it names one exactly, else None."""
    return next((m for m in MODES if m == value), None)


def mode_ceiling(configured: Mode, operator: Mode | None) -> Mode:
    """The mode ceiling in force: the operators' one when it is lower, else the configured one."""
    if operator is None or mode_rank(operator) >= mode_rank(configured):
        return configured
    return operator


def mode_refusal(configured: Mode, requested: Mode) -> str | None:
    """Why an operator may not set ``requested`` as the ceiling (above ``configured``), or None."""
    if mode_rank(requested) <= mode_rank(configured):
        return None
    return (
        f"mode ceiling {requested} is above the configured mode {configured}: operators can "
        "only lower it (change the settings to raise it)"
    )
