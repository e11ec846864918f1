"""The project's exceptions, one root branched by what the caller should do.

    ArbxError                      root: never raised directly
    ├── ConfigError                bad settings or user input: stop with a one-line message (exit 2)
    │   └── InputError             a malformed file, an unknown token, an out-of-range amount
    ├── MathError                  the mirrored on-chain code would revert: the trade is impossible
    ├── TransientError             a network hiccup or a busy resource: retry with backoff
    ├── StaleStateError            our copy of the chain disagrees with it: resync
    ├── SimulationRevertedError    the trade would revert in simulation: drop the opportunity
    └── SignerLockLostError        this process no longer holds the signer lock: sign nothing,
                                   stay in shadow until the lock is ours again

The first four and StaleStateError live in ``arbx.domain.errors`` so pure code can raise them.
"""

from arbx.domain.errors import ArbxError, ConfigError, InputError, MathError, StaleStateError

__all__ = [
    "ArbxError",
    "ConfigError",
    "InputError",
    "MathError",
    "SignerLockLostError",
    "SimulationRevertedError",
    "StaleStateError",
    "TransientError",
]


class TransientError(ArbxError):
    """A temporary failure (timeout, dropped connection): retry with backoff."""


class SimulationRevertedError(ArbxError):
    """A simulated transaction reverted: drop the opportunity."""


class SignerLockLostError(ArbxError):
    """This process does not hold the signer lock (lost or never taken): sign nothing."""
