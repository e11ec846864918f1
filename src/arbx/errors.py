"""The project's exceptions, one root branched by what the caller should do.

    ArbxError                      root: never raised directly
    ├── ConfigError                bad settings or user input: stop with a one-line message (exit 2)
    │   └── InputError             a malformed file, an unknown token, an out-of-range amount
    ├── MathError                  the mirrored on-chain code would revert: the trade is impossible
    ├── TransientError             a network hiccup or a busy resource: retry with backoff
    ├── StaleStateError            our copy of the chain disagrees with it: resync
    └── SimulationRevertedError    the trade would revert in simulation: drop the opportunity

The first four live in ``arbx.domain.errors`` so that pure code can raise them.
"""

from arbx.domain.errors import ArbxError, ConfigError, InputError, MathError

__all__ = [
    "ArbxError",
    "ConfigError",
    "InputError",
    "MathError",
    "SimulationRevertedError",
    "StaleStateError",
    "TransientError",
]


class TransientError(ArbxError):
    """A temporary failure (timeout, dropped connection): retry with backoff."""


class StaleStateError(ArbxError):
    """Local state no longer matches the chain: resynchronise."""


class SimulationRevertedError(ArbxError):
    """A simulated transaction reverted: drop the opportunity."""
