"""A devnet that has traded with competitors: shared by the competition and scoring tests and by
the recorder of ``tests/fixtures/scoring``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from arbx.devnet.chain import DevChain
from arbx.devnet.commands import EmbeddedDevnet
from arbx.devnet.competitors import SentBundle
from arbx.devnet.market import MarketSimulator


@contextlib.contextmanager
def traded(
    seed: int, competitors: int, blocks: int
) -> Iterator[tuple[EmbeddedDevnet, MarketSimulator, DevChain]]:
    """A fresh devnet after ``blocks`` market blocks with ``competitors`` (no market thread);
    the devnet, its market and a connection to anvil."""
    with EmbeddedDevnet.start(seed=seed, market=False) as devnet:
        assert devnet.builder_url is not None
        market = MarketSimulator(
            devnet.deployment, seed=seed, url=devnet.builder_url, competitors=competitors
        )
        market.run(pace=0, max_blocks=blocks)
        yield devnet, market, DevChain(devnet.url)


def landed(chain: DevChain, sent: list[SentBundle]) -> list[tuple[SentBundle, dict[str, Any]]]:
    """The competitors' bundles whose arbitrage was mined, each with its receipt."""
    found = []
    for bundle in sent:
        receipt = chain.rpc("eth_getTransactionReceipt", bundle.arbitrage_tx)
        if receipt is not None:
            found.append((bundle, receipt))
    return found
