"""Self-scoring runs beside the heads: a slow scoring never holds the next block back, a block
that comes meanwhile is scored by the next scoring or at the close, and a reorg seen meanwhile
drops the swaps read before."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from arbx.executors.factory import ShadowExecution

pytestmark = pytest.mark.asyncio


class _Recorder:
    def __init__(self) -> None:
        self.blocks: list[int] = []
        self.closed = False

    async def on_block(self, block: Any) -> None:
        self.blocks.append(block.number)

    def close(self) -> None:
        self.closed = True


class _SlowScorer:
    """Scores only when let go (``release``), noting each head it scored to."""

    def __init__(self) -> None:
        self.scored: list[int] = []
        self.forgotten = 0
        self.release = asyncio.Event()

    def forget_swaps(self) -> None:
        self.forgotten += 1

    async def on_block(self, block: Any) -> None:
        await self.release.wait()
        self.scored.append(block.number)


def _block(number: int, reorg_depth: int = 0) -> Any:
    return SimpleNamespace(number=number, update=SimpleNamespace(reorg_depth=reorg_depth))


async def test_a_slow_scoring_holds_no_block_back_and_the_last_is_scored_at_the_close() -> None:
    recorder, scorer = _Recorder(), _SlowScorer()
    execution = ShadowExecution(recorder)  # type: ignore[arg-type]
    execution.scorer = scorer  # type: ignore[assignment]
    for number in (1, 2, 3):  # the scoring of block 1 has not ended: 2 and 3 are not held back
        await asyncio.wait_for(execution.on_block(_block(number, reorg_depth=number == 2)), 1.0)
    assert recorder.blocks == [1, 2, 3]
    assert scorer.scored == []
    scorer.release.set()
    for _ in range(5):  # the scoring of block 1 ends
        await asyncio.sleep(0)
    await execution.on_block(_block(4))  # 1 done: a new scoring, after the reorg seen at 2
    assert scorer.forgotten == 1
    await execution.on_block(_block(5))  # while 4 is scored
    await execution.close()
    assert scorer.scored == [1, 4, 5]
    assert recorder.closed
