"""Loading the pool book when the lens's output passes the node's code size limit: calls are
split by jobs, and a lone V3 tick job by its word range, until each answer fits. The same chain
state (dumped from one anvil, loaded into another with a tiny limit) loads to the same book."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from arbx.chain.book import load_book
from arbx.chain.rpc import RpcClient
from arbx.cli.run import devnet_spec
from arbx.devnet.anvil import AnvilOptions, start_anvil
from arbx.devnet.world import WorldOptions, build_world
from arbx.domain.pools import Pool


@pytest.mark.asyncio
async def test_a_book_too_large_for_one_lens_answer_loads_the_same_in_pieces(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.json"
    with start_anvil(AnvilOptions(extra_args=("--dump-state", str(state)))) as full:
        deployment = build_world(full.url, WorldOptions(seed=3))
        async with RpcClient([full.url], timeout=30.0) as client:
            for _ in range(3):  # the world's last block settled, as below
                await client.call("evm_mine")
            expected = (await load_book(client, devnet_spec(deployment))).book
    # 2 KB of output (64 words: a tick job of more than 21 ticks overflows) and 4 KB of creation
    # code (the lens and a few jobs): most calls, and single tick jobs, must be split
    limited = AnvilOptions(code_size_limit=4096, extra_args=("--load-state", str(state)))
    with start_anvil(limited) as small:
        async with RpcClient([small.url], timeout=30.0) as client:
            for _ in range(3):  # blocks on top of the loaded state, which keeps no history
                await client.call("evm_mine")
            loaded = (await load_book(client, devnet_spec(deployment))).book
    assert len(loaded) == len(expected) > 0
    assert _states(loaded.pools) == _states(expected.pools)
    assert any(getattr(p, "ticks", ()) for p in loaded.pools.values())


def _states(pools: Mapping[str, Pool]) -> dict[str, Pool]:
    """The pools' states, whatever block they were read at (the two chains count differently)."""
    return {a: replace(p, block=0) for a, p in pools.items()}
