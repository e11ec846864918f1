"""Errors raised by pure domain code; ``arbx.errors`` draws the whole tree."""

from collections.abc import Iterable


class ArbxError(Exception):
    """Root of every error the project raises on purpose."""


class ConfigError(ArbxError):
    """Settings or user input that cannot work: stop with one clear line."""


class InputError(ConfigError):
    """A user-supplied value (file, address, amount) is invalid."""


class MathError(ArbxError):
    """An operation the mirrored Solidity code would revert on (overflow, bad price)."""


class StaleStateError(ArbxError):
    """Local state no longer matches the chain (a reorg deeper than we can undo): resync.

    ``pools`` names the pools in doubt when only those are; empty, the whole book is.
    """

    def __init__(self, message: str = "", pools: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.pools = frozenset(pools)
