"""Argument types and the parser class shared by the subcommands."""

from __future__ import annotations

import argparse
import re
from typing import NoReturn

from arbx.domain.pools import UINT256_MAX

EXIT_USAGE = 2
_DIGITS = re.compile(r"[0-9]+")


class Parser(argparse.ArgumentParser):
    """argparse that exits with one line and code 2 on a usage error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"arbx: error: {message} (see 'arbx {self._sub()}--help')\n")

    def _sub(self) -> str:
        parts = self.prog.split()[1:]
        return " ".join(parts) + " " if parts else ""


def amount(text: str) -> int:
    """A whole token amount from 1 to 2^256-1, in the token's smallest unit."""
    cleaned = text.replace("_", "")
    if _DIGITS.fullmatch(cleaned) is None:  # ASCII only: isdigit() also takes '²' and '١'
        raise argparse.ArgumentTypeError(f"{text[:90]!r} is not a whole number of smallest units")
    if len(cleaned.lstrip("0")) > 78:
        raise argparse.ArgumentTypeError(f"{text[:90]}... is outside 1 .. 2^256-1")
    value = int(cleaned)
    if not 0 < value <= UINT256_MAX:
        raise argparse.ArgumentTypeError(f"{text} is outside 1 .. 2^256-1")
    return value


def port(text: str) -> int:
    """A TCP port, 0 (any free port) to 65535."""
    if _DIGITS.fullmatch(text) is None or len(text) > 5 or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text[:90]!r} is not a port (0..65535)")
    return int(text)


def count(text: str) -> int:
    """A non-negative integer option."""
    if _DIGITS.fullmatch(text) is None or len(text) > 30:
        raise argparse.ArgumentTypeError(f"{text[:90]!r} is not a non-negative integer")
    return int(text)
