"""Risk commands: ``arbx kill``, ``arbx unkill`` and ``arbx risk`` (the state of each key).

``kill`` engages the kill switch of the configured chain (``--chain ID``, or ``--all-chains``):
every live engine on it drops to shadow within one block. ``unkill`` releases it; after a limit
breach it is also how an operator resumes trading. Both are written to the audit log.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arbx.cli.args import count
from arbx.cli.store import operator_actor, sessions_of

if TYPE_CHECKING:
    pass

_ALL = "every chain"


def register(sub: Any) -> None:
    """Add ``kill``, ``unkill`` and ``risk``."""
    kill = sub.add_parser("kill", help="stop all sending now (live engines drop to shadow)")
    _common(kill)
    kill.add_argument("--reason", default="operator kill switch", help="recorded with the switch")
    kill.set_defaults(handler=_kill)

    unkill = sub.add_parser("unkill", help="release the kill switch (resume trading)")
    _common(unkill)
    unkill.add_argument("--reason", default=None, help="recorded in the audit log")
    unkill.set_defaults(handler=_unkill)

    risk = sub.add_parser("risk", help="kill switch, mode, stage and reason of each key")
    risk.add_argument("--config", type=Path, help="settings file (TOML)")
    risk.add_argument("--chain", type=count, help="chain id (default: the configured one)")
    risk.set_defaults(handler=_status)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="settings file (TOML)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--chain", type=count, help="chain id (default: the configured one)")
    scope.add_argument("--all-chains", action="store_true", help="the switch for every chain")


def _kill(args: argparse.Namespace) -> int:
    from arbx.risk.killswitch import kill

    chain, url = _target(args)
    with sessions_of(url) as sessions:
        state = kill(sessions, chain, args.reason, operator_actor())
    print(f"kill switch engaged for {_scope(chain)}: {state.reason}")
    return 0


def _unkill(args: argparse.Namespace) -> int:
    from arbx.risk.killswitch import unkill

    chain, url = _target(args)
    with sessions_of(url) as sessions:
        state = unkill(sessions, chain, operator_actor(), args.reason)
    still = " (the all-chains switch is still engaged)" if state.engaged else ""
    print(f"kill switch released for {_scope(chain)}{still}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from arbx.store import risk_repo as rrepo

    chain, url = _target(args)
    with sessions_of(url) as sessions, sessions() as session:
        switch = rrepo.get_kill_switch(session, chain)
        states = rrepo.list_risk_states(session, chain)
    if switch.engaged:
        print(f"kill switch: ENGAGED by {switch.actor} at {switch.updated_at}: {switch.reason}")
    else:
        print("kill switch: released")
    if not states:
        print(f"no risk state recorded on chain {chain}")
    for s in states:
        print(
            f"key {s.key_address}: mode {s.mode}, stage {s.stage} since "
            f"{s.stage_entered_at.isoformat()}; {s.reason or '-'}"
        )
    return 0


def _target(args: argparse.Namespace) -> tuple[int, str]:
    from arbx.config import load_settings
    from arbx.store.risk_repo import ALL_CHAINS

    settings = load_settings(args.config)
    if getattr(args, "all_chains", False):
        return ALL_CHAINS, settings.database_url
    chain = settings.chain.id if args.chain is None else args.chain
    return chain, settings.database_url


def _scope(chain: int) -> str:
    return _ALL if chain == 0 else f"chain {chain}"
