"""A standby sizes with the caps the active engine trades under (the key's stored stage and the
operators' limits), so that ``arbx release compare`` is like for like while the caps bind; on
SQLite files (the store's functions are the same on PostgreSQL, test_risk_store.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.parity import ParityResult
from arbx.domain.limits import Limits
from arbx.domain.stages import default_schedule
from arbx.engine.handover import ReleaseExecution, Taken
from arbx.engine.pipeline import BlockResult
from arbx.risk.mirror import key_caps
from arbx.risk.signer_lock import SignerLock
from arbx.store import api_repo, db, migrate, repo
from arbx.store import risk_repo as rrepo

pytestmark = pytest.mark.integration

CHAIN = 31337
KEY = "0x00000000000000000000000000000000000000Aa"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SCHEDULE = default_schedule()  # stage 1 caps any token at 0.1 ETH, stage 2 at 1 ETH
LIMITS = Limits(max_input={WETH: 5 * 10**18})


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'arbx.db'}"
    migrate.upgrade(url)
    eng = db.make_engine(url)
    with db.make_session_factory(eng).begin() as s:
        repo.upsert_chain(s, CHAIN, "devnet")
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return db.make_session_factory(engine)


def _stored(factory: sessionmaker[Session], mode: str, stage: int) -> None:
    with factory.begin() as s:
        rrepo.set_risk_state(s, CHAIN, KEY, mode=mode, stage=stage, stage_entered_at=T0,
                             reason=None, at=T0)  # fmt: skip


def _caps(factory: sessionmaker[Session]) -> Mapping[str, int] | None:
    with factory() as s:
        return key_caps(s, KEY.lower(), chain_id=CHAIN, limits=LIMITS, schedule=SCHEDULE,
                        bases=(WETH,))  # fmt: skip


def test_the_caps_follow_the_keys_stored_mode_stage_and_the_operators_limits(
    factory: sessionmaker[Session],
) -> None:
    assert _caps(factory) is None  # nothing stored yet: the strategy's own
    _stored(factory, "shadow", 0)
    assert _caps(factory) is None  # a shadow engine sizes with the strategy's own caps too
    _stored(factory, "limited", 1)
    assert _caps(factory) == {WETH: 10**17}
    _stored(factory, "limited", 2)
    assert _caps(factory) == {WETH: 10**18}
    with factory.begin() as s:  # an operator lowers the limit below the stage's cap
        api_repo.set_controls(s, CHAIN, actor="test", limits=Limits(max_input={WETH: 3 * 10**17}))
    assert _caps(factory) == {WETH: 3 * 10**17}
    _stored(factory, "shadow", 2)  # the active engine was put back in shadow (killed, ceiling)
    assert _caps(factory) is None


class Standby:
    """A standby's shadow executor as far as the release sees it: no lock, its own caps none."""

    status = "mode shadow"
    closing: tuple[str, ...] = ()

    async def on_block(self, block: BlockResult) -> None:
        del block

    async def on_parity(self, result: ParityResult) -> None:
        del result

    def caps(self) -> Mapping[str, int] | None:
        return None

    async def close(self) -> dict[str, object] | None:
        return None

    def holding(self) -> tuple[str, int, str] | None:
        return None

    def cancel_in_flight(self) -> None:
        pass

    def set_role(self, role: str) -> None:
        del role


def test_a_standby_sizes_with_the_active_engines_caps(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    active = SignerLock(engine, KEY, release="v1", chain_id=CHAIN)
    assert active.acquire() is None  # the active engine (v1) holds the key: epoch 1
    _stored(factory, "limited", 1)

    async def never(key: str | None) -> Taken | str:
        del key
        return "not promoted"

    async def standby() -> Standby:
        return Standby()

    def release(mirror: bool) -> ReleaseExecution:
        return ReleaseExecution(
            Standby(), sessions=factory, chain_id=CHAIN, release="v2", standby=True,
            go_live=never, go_standby=standby, poll=0.05,
            mirror=partial(key_caps, chain_id=CHAIN, limits=LIMITS, schedule=SCHEDULE,
                           bases=(WETH,)) if mirror else None,
        )  # fmt: skip

    async def watched(execution: ReleaseExecution) -> list[Mapping[str, int] | None]:
        seen = [execution.caps()]  # nothing read yet
        execution._watcher = asyncio.ensure_future(execution._watch())
        await asyncio.sleep(0.3)
        seen.append(execution.caps())
        _stored(factory, "limited", 2)  # the active engine scaled one stage
        await asyncio.sleep(0.3)
        seen.append(execution.caps())
        await execution.close()
        return seen

    assert asyncio.run(watched(release(mirror=True))) == [None, {WETH: 10**17}, {WETH: 10**18}]
    _stored(factory, "limited", 1)
    # without the mirror (a shadow run, or before): the strategy's own caps, whatever binds
    assert asyncio.run(watched(release(mirror=False))) == [None, None, None]
    active.release()
