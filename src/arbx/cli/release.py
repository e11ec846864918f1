"""Release commands: ``arbx release compare|promote|status|audit``.

``compare`` is the pre-promotion analysis of a preview (standby) engine against the active one on
the blocks both processed (rules: ``[releases]`` settings, see ``arbx.domain.releases``); exit 0
when it passes, 1 when it fails (each condition with its numbers). ``promote`` asks for the
signer lock to move to a release and waits until that release holds it (exit 0) or the timeout
passes (exit 1); the handover itself is the engines' (``arbx.engine.handover``). ``status``
shows the releases seen, the lock's epochs and the latest requests; ``audit`` proves from the
records that no two epochs overlapped and nothing was signed outside its epoch (exit 1
otherwise). Bad input exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arbx.cli.args import count
from arbx.cli.replay import decisions_digest
from arbx.cli.store import operator_actor, sessions_of
from arbx.domain.errors import InputError

if TYPE_CHECKING:
    from arbx.domain.releases import Comparison, Epoch
    from arbx.store.models import ReleaseHandoverRow

_RELEASE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def release_name(text: str) -> str:
    """A release: 1-64 characters of [A-Za-z0-9._-]."""
    if _RELEASE.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"{text[:90]!r} is not a release (1-64 of A-Za-z0-9._-)")
    return text


def seconds(text: str) -> float:
    """A positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"{text[:90]!r} is not a number of seconds (0..86400]")
    return value


def register(sub: Any) -> None:
    """Add ``release`` and its actions."""
    release = sub.add_parser("release", help="the engine's releases: compare, promote, audit")
    actions = release.add_subparsers(dest="action", required=True, parser_class=type(release))

    compare = actions.add_parser("compare", help="a preview engine against the active one")
    _config(compare)
    compare.add_argument("--active", type=release_name, required=True, help="the active release")
    compare.add_argument("--preview", type=release_name, required=True, help="the preview")
    compare.add_argument("--min-blocks", type=count, help="common blocks needed (settings)")
    compare.add_argument("--json", action="store_true", help="JSON output")
    compare.add_argument(
        "--replay", type=Path, metavar="WINDOW", help="also replay this window (arbx record)"
    )
    compare.add_argument(
        "--replay-decisions",
        type=Path,
        metavar="FILE",
        help="the active release's decisions on the window (its arbx replay --json)",
    )
    compare.add_argument(
        "--replay-shipped",
        action="store_true",
        help="also replay the window this release ships, against the decisions the active "
        "release recorded on it at its start",
    )
    compare.add_argument(
        "--replay-accept",
        type=decisions_digest,
        metavar="DIGEST",
        help="decisions that differ from the active release's pass when this release's digest "
        "is this one (an operator's acknowledgement of a change on purpose; empty: none)",
    )
    compare.set_defaults(handler=_compare)

    promote = actions.add_parser("promote", help="hand the signer lock to a release")
    _config(promote)
    promote.add_argument("--to", type=release_name, required=True, help="the release to promote")
    promote.add_argument("--timeout", type=seconds, help="seconds to wait (settings)")
    promote.add_argument("--chain", type=count, help="chain id (default: the configured one)")
    promote.set_defaults(handler=_promote)

    status = actions.add_parser("status", help="releases, the signer lock's epochs, handovers")
    _config(status)
    status.add_argument("--json", action="store_true", help="JSON output")
    status.set_defaults(handler=_status)

    audit = actions.add_parser("audit", help="prove one signer at a time from the records")
    _config(audit)
    audit.add_argument("--json", action="store_true", help="JSON output")
    audit.set_defaults(handler=_audit)


def _config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="settings file (TOML)")


# --- compare ------------------------------------------------------------------------------


def _compare(args: argparse.Namespace) -> int:
    from arbx.config import load_settings
    from arbx.domain.releases import CompareRules, compare
    from arbx.store import release_repo

    if (args.replay is None) != (args.replay_decisions is None):
        raise InputError("--replay and --replay-decisions go together")
    if args.replay is not None and args.replay_shipped:
        raise InputError("--replay or --replay-shipped: one or the other")
    settings = load_settings(args.config)
    r = settings.releases
    rules = CompareRules(
        min_blocks=r.min_blocks if args.min_blocks is None else max(1, args.min_blocks),
        tolerance_bps=r.tolerance_bps,
        max_differing_ratio_bps=r.max_differing_ratio_bps,
        latency_ratio_bps=r.latency_ratio_bps,
        latency_slack_ms=r.latency_slack_ms,
        warmup_blocks=r.warmup_blocks,
    )
    with sessions_of(settings.database_url) as sessions:
        with sessions() as session:
            active = release_repo.block_records(session, args.active)
            preview = release_repo.block_records(session, args.preview)
        replayed = _replay_check(args, sessions)
    result = compare(active, preview, rules)
    passed = result.passed and (replayed is None or bool(replayed["passed"]))
    if args.json:
        out = _comparison_json(args.active, args.preview, result)
        if replayed is not None:
            out |= {"passed": passed, "replay": replayed}
            out["failed"] += [] if replayed["passed"] else ["replay"]
        print(json.dumps(out, indent=2))
    else:
        _print_comparison(args.active, args.preview, result)
        if replayed is not None:
            _print_replay(replayed)
    return 0 if passed else 1


def _replay_check(args: argparse.Namespace, sessions: Any) -> dict[str, Any] | None:
    """The second check: this code on a recorded window against the active release's decisions
    on it (a file, or what the active engine recorded at its start); None when not asked."""
    from arbx.cli.replay import (
        compare_lines,
        load_decisions_file,
        recorded_decisions,
        replay_window,
        shipped_window,
    )

    theirs: list[dict[str, Any]] | None
    their_digest: str | None
    if args.replay is not None:
        window, theirs = args.replay, load_decisions_file(args.replay_decisions)
        against, their_digest = str(args.replay_decisions), None
    elif args.replay_shipped:
        window = shipped_window()
        recorded = recorded_decisions(sessions, args.active, window)
        their_digest, theirs = recorded if recorded is not None else (None, None)
        against = f"release {args.active}"
    else:
        return None
    doc = replay_window(window)
    if theirs is None:
        differences = [f"release {args.active} recorded no decisions on this window"]
    else:
        differences = compare_lines(doc, theirs)
    equal = not differences
    accepted = not equal and args.replay_accept == doc["digest"]
    return {
        "window": "the shipped window" if args.replay is None else str(window),
        "against": against,
        "blocks": len(doc["blocks"]),
        "digest": doc["digest"],
        "active_digest": their_digest,
        "equal": equal,
        "accepted": accepted,
        "acknowledged_digest": args.replay_accept,
        "passed": equal or accepted,
        "differences": differences[:20],
        "differing_blocks": len(differences) if theirs is not None else None,
    }


def _print_replay(replayed: dict[str, Any]) -> None:
    n, shown, against = replayed["blocks"], replayed["differences"], replayed["against"]
    if replayed["equal"]:
        print(f"  ok   replay of {replayed['window']}: the decisions of {against} on {n} blocks")
        return
    differing = replayed["differing_blocks"]
    what = (
        shown[0]
        if differing is None
        else f"decisions differ from those of {against} on {differing} of {n} blocks"
    )
    digest, acknowledged = replayed["digest"], replayed["acknowledged_digest"]
    if replayed["accepted"]:
        print(f"  ok   replay of {replayed['window']}: {what}, acknowledged ({digest})")
    else:
        why = (
            f"the acknowledged digest is {acknowledged}, not this release's {digest}"
            if acknowledged
            else f"acknowledge a change on purpose with this release's digest {digest}"
        )
        print(f"  FAIL replay of {replayed['window']}: {what}; {why}")
    if differing is not None:
        for line in shown[:5]:
            print(f"    e.g. {line}")


def _comparison_json(active: str, preview: str, c: Comparison) -> dict[str, Any]:
    return {
        "active": active,
        "preview": preview,
        "passed": c.passed,
        "common_blocks": c.common_blocks,
        "first_block": c.first_block,
        "last_block": c.last_block,
        "conditions": [
            {"name": x.name, "measured": x.measured, "required": x.required, "ok": x.ok}
            for x in c.conditions
        ],
        "failed": [x.name for x in c.conditions if not x.ok],
        "differing_examples": list(c.differing),
    }


def _print_comparison(active: str, preview: str, c: Comparison) -> None:
    span = f"blocks {c.first_block}..{c.last_block}" if c.common_blocks else "no common block"
    verdict = "passes" if c.passed else "FAILS"
    print(f"preview {preview} against active {active} ({span}): {verdict}")
    for x in c.conditions:
        print(f"  {'ok  ' if x.ok else 'FAIL'} {x.name}: {x.measured} (needs {x.required})")
    for example in c.differing:
        print(f"    e.g. {example}")


# --- promote ------------------------------------------------------------------------------


def _promote(args: argparse.Namespace) -> int:
    from arbx.config import load_settings
    from arbx.store import release_repo

    settings = load_settings(args.config)
    chain = settings.chain.id if args.chain is None else args.chain
    timeout = settings.releases.promote_timeout_s if args.timeout is None else args.timeout
    with sessions_of(settings.database_url) as sessions:
        with sessions.begin() as session:
            handover = release_repo.request_handover(
                session, chain, args.to, by=operator_actor(), at=_now()
            )
        print(f"handover {handover}: signer lock of chain {chain} to release {args.to}", flush=True)
        deadline = time.monotonic() + timeout
        while True:
            with sessions() as session:
                row = release_repo.get_handover(session, handover)
                assert row is not None
                state = row.state
                if state in ("done", "failed", "expired"):
                    print(_handover_line(row))
                    return 0 if state == "done" else 1
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        with sessions.begin() as session:
            expired = release_repo.mark_ended(
                session, handover, "expired", f"not done in {timeout:g} s", only_requested=True
            )
        with sessions() as session:
            row = release_repo.get_handover(session, handover)
            assert row is not None
            line = _handover_line(row)
    if expired:
        print(f"not done in {timeout:g} s: no engine acted on the request (expired)")
    else:
        print(f"not done in {timeout:g} s: {line}")
    return 1


def _handover_line(row: ReleaseHandoverRow) -> str:
    if row.state == "done":
        before = f"epoch {row.from_epoch} of release {row.from_release}" if row.from_epoch else ""
        moved = f"{before} -> " if before else ""
        return (
            f"release {row.to_release} holds the signer lock of {row.key_address}: "
            f"{moved}epoch {row.to_epoch} (released {_time(row.released_at)}, "
            f"taken {_time(row.taken_at)})"
        )
    if row.state == "released":
        return (
            f"release {row.from_release} released epoch {row.from_epoch} at "
            f"{_time(row.released_at)}; release {row.to_release} has not taken the lock yet"
        )
    return f"handover to {row.to_release} {row.state}: {row.reason or '-'}"


# --- status and audit ---------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from arbx.config import load_settings
    from arbx.store import release_repo

    settings = load_settings(args.config)
    with sessions_of(settings.database_url) as sessions, sessions() as session:
        seen = release_repo.releases_seen(session)
        epochs = release_repo.epochs(session)
        requests = release_repo.handovers(session, limit=10)
        data = {
            "releases": [
                {
                    "release": s.release,
                    "chain_id": s.chain_id,
                    "role": s.role,
                    "blocks": s.blocks,
                    "last_block": s.last_block,
                    "last_at": _time(s.last_at),
                }
                for s in seen
            ],
            "epochs": [_epoch_json(e) for e in epochs],
            "holders": [_epoch_json(e) for e in epochs if e.released_at is None],
            "handovers": [_handover_json(h) for h in requests],
        }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    if not seen:
        print("no release has recorded a block")
    for s in seen:
        print(
            f"release {s.release} on chain {s.chain_id}: {s.role}, {s.blocks} blocks, "
            f"last {s.last_block} at {_time(s.last_at)}"
        )
    holders = data["holders"]
    if not holders:
        print("signer lock: no open epoch")
    for h in holders:
        print(
            f"signer lock of {h['key']}: epoch {h['epoch']} held by release {h['release']} "
            f"({h['holder']}) since {h['acquired_at']}"
        )
    for r in data["handovers"][:3]:
        print(f"handover {r['id']} to {r['to_release']}: {r['state']} ({r['requested_at']})")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from arbx.config import load_settings
    from arbx.domain.releases import audit
    from arbx.store import release_repo

    settings = load_settings(args.config)
    with sessions_of(settings.database_url) as sessions, sessions() as session:
        epochs = release_repo.epochs(session)
        signatures = release_repo.signatures(session)
    result = audit(epochs, signatures)
    if args.json:
        print(
            json.dumps(
                {
                    "passed": result.passed,
                    "epochs": [_epoch_json(e) for e in epochs],
                    "signatures": result.signatures,
                    "problems": list(result.problems),
                },
                indent=2,
            )
        )
    else:
        for e in epochs:
            end = _time(e.released_at) if e.released_at else "open"
            print(
                f"key {e.key} epoch {e.epoch}: release {e.release or '-'} ({e.holder}) "
                f"{_time(e.acquired_at)} .. {end}"
            )
        verdict = "passes" if result.passed else "FAILS"
        print(
            f"audit {verdict}: {result.epochs} epochs, {result.signatures} signatures, "
            f"{len(result.problems)} problems"
        )
        for problem in result.problems:
            print(f"  {problem}")
    return 0 if result.passed else 1


def _epoch_json(e: Epoch) -> dict[str, Any]:
    return {
        "key": e.key,
        "epoch": e.epoch,
        "holder": e.holder,
        "release": e.release,
        "acquired_at": _time(e.acquired_at),
        "released_at": _time(e.released_at),
    }


def _handover_json(h: ReleaseHandoverRow) -> dict[str, Any]:
    return {
        "id": h.id,
        "chain_id": h.chain_id,
        "to_release": h.to_release,
        "state": h.state,
        "requested_at": _time(h.requested_at),
        "key": h.key_address,
        "from_release": h.from_release,
        "from_epoch": h.from_epoch,
        "released_at": _time(h.released_at),
        "to_epoch": h.to_epoch,
        "taken_at": _time(h.taken_at),
        "reason": h.reason,
    }


def _time(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)
