"""What following one chain needs to know about it: endpoints, venues, base tokens, filters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from arbx.chain.discovery import Venue


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """Everything the run needs to know about the chain it follows."""

    name: str
    chain_id: int
    rpc: tuple[str, ...]
    ws: tuple[str, ...]
    multicall: str
    venues: tuple[Venue, ...]
    start_block: int
    base_tokens: tuple[str, ...]
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    min_reserve: int = 0
    symbols: dict[str, str] = field(default_factory=dict)
    builder_url: str | None = None  # a local builder (the embedded devnet's)
    searcher_key_file: Path | None = None  # the embedded devnet's searcher key (live modes)
