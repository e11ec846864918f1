"""``arbx record`` and ``arbx replay``: a window of blocks written by a shadow run, and the
engine's decisions on it offline (``arbx.chain.window``, ``arbx.engine.replay``, ADR 0030).

``record`` is ``arbx run`` in shadow mode for ``--blocks`` heads (the embedded devnet without
settings) that also writes the window it followed. ``replay`` runs the pipeline on a window and
prints each block's decisions and their digest; ``--compare`` sets them against another
decisions document (``arbx replay --json``), ``--against-release`` against the decisions of
another checkout (its ``.venv/bin/arbx replay --json``), and exit 1 where they differ.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arbx.cli.args import count
from arbx.domain.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

MAX_DECISIONS_BYTES = 64 * 1024 * 1024
RELEASE_TIMEOUT_S = 600


def register(sub: Any) -> None:
    """Add ``record`` and ``replay``."""
    record = sub.add_parser("record", help="follow the chain in shadow and write the window")
    record.add_argument("--config", type=Path, help="settings file (TOML)")
    record.add_argument("--blocks", type=count, required=True, help="heads to record")
    record.add_argument("--out", type=Path, required=True, help="the window file (.jsonl.gz)")
    record.add_argument("--seed", type=count, default=1, help="embedded devnet: market seed")
    record.add_argument(
        "--pace", type=float, default=0.25, help="embedded devnet: seconds between market blocks"
    )
    record.set_defaults(handler=_record)

    replay = sub.add_parser("replay", help="the engine's decisions on a recorded window")
    replay.add_argument("window", type=Path, help="a window written by arbx record")
    replay.add_argument("--json", action="store_true", help="the decisions document as JSON")
    replay.add_argument("--compare", type=Path, metavar="DECISIONS", help="a decisions document")
    replay.add_argument(
        "--against-release", type=Path, metavar="CHECKOUT", help="another checkout's decisions"
    )
    replay.set_defaults(handler=_replay)


def _record(args: argparse.Namespace) -> int:
    from arbx.cli.run import chain_for, engine_run
    from arbx.config import load_settings

    if args.blocks < 1:
        raise InputError("--blocks must be at least 1")
    settings = load_settings(args.config).model_copy(update={"mode": "shadow", "standby": False})
    args.max_blocks, args.plain, args.block_time, args.pools = args.blocks, True, None, None
    with chain_for(settings, args) as spec:
        return asyncio.run(engine_run(settings, spec, args, record_to=args.out))


def replay_window(window_path: Path) -> dict[str, Any]:
    """The decisions document of a replay of ``window_path`` with this code."""
    from arbx.chain.window import read_window
    from arbx.engine.replay import replay
    from arbx.strategies.cyclic import CyclicArbitrage, limits_from_record

    window = read_window(window_path)
    try:
        limits = limits_from_record(window.settings)
    except InputError as exc:
        raise InputError(f"{window_path}: {exc}") from None
    return asyncio.run(replay(window, lambda book: CyclicArbitrage(book, limits)))


def shipped_window() -> Path:
    """The window the package (and so the image) ships: 40 blocks of the embedded devnet."""
    return Path(str(resources.files("arbx.engine") / "shipped_window.jsonl.gz"))


def window_digest(window_path: Path) -> str:
    """The SHA-256 of a window file's bytes (a window writes to the same bytes every time)."""
    try:
        data = window_path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {window_path}: {exc.strerror or exc}") from None
    return "sha256:" + hashlib.sha256(data).hexdigest()


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def decisions_digest(text: str) -> str | None:
    """A decisions digest as ``arbx replay`` prints it; the empty text is none."""
    if text == "":
        return None
    if _DIGEST.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"{text[:90]!r} is not a digest (sha256: and 64 hex)")
    return text


def record_release_replay(sessions: sessionmaker[Session], release: str) -> str:
    """Replay the shipped window with this code and record the decisions under ``release``
    (once: a release decides the same every time); the line saying what was done."""
    from datetime import UTC, datetime

    from sqlalchemy.exc import IntegrityError

    from arbx.engine.replay import pack_decisions
    from arbx.store import release_repo

    window = shipped_window()
    window_sha = window_digest(window)
    with sessions() as session:
        known = release_repo.release_replay(session, release, window_sha)
    if known is not None:
        return f"replay: release {release} recorded its decisions on the shipped window before"
    doc = replay_window(window)
    found = sum(len(b["opportunities"]) for b in doc["blocks"])
    try:
        with sessions.begin() as session:
            release_repo.add_release_replay(
                session,
                release=release,
                window_digest=window_sha,
                digest=doc["digest"],
                blocks=len(doc["blocks"]),
                opportunities=found,
                decisions_gz=pack_decisions(doc["blocks"]),
                at=datetime.now(UTC),
            )
    except IntegrityError:  # another engine of the release recorded them meanwhile
        return f"replay: release {release} recorded its decisions on the shipped window before"
    return (
        f"replay: release {release} decided {found} opportunities on the shipped window's "
        f"{len(doc['blocks'])} blocks ({doc['digest']})"
    )


def recorded_decisions(
    sessions: sessionmaker[Session], release: str, window_path: Path
) -> tuple[str, list[dict[str, Any]]] | None:
    """The digest and blocks ``release`` recorded on ``window_path``; None if it recorded none."""
    from arbx.engine.replay import unpack_decisions
    from arbx.store import release_repo

    window_sha = window_digest(window_path)
    with sessions() as session:
        row = release_repo.release_replay(session, release, window_sha)
        if row is None:
            return None
        digest, data = row.digest, row.decisions_gz
    return digest, unpack_decisions(data, f"release {release}'s recorded decisions")


def load_decisions_file(path: Path) -> list[dict[str, Any]]:
    """The blocks of a decisions document on disk (bounded read)."""
    from arbx.engine.replay import load_decisions

    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_DECISIONS_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return load_decisions(data, str(path))


def release_decisions(checkout: Path, window: Path) -> list[dict[str, Any]]:
    """The blocks of the decisions another checkout's ``arbx replay --json`` gives on
    ``window`` (that checkout's code, in its own environment)."""
    from arbx.engine.replay import load_decisions

    arbx = checkout / ".venv" / "bin" / "arbx"
    if not arbx.is_file():
        raise InputError(f"{checkout}: no .venv/bin/arbx (run make setup in that checkout)")
    try:
        done = subprocess.run(
            [str(arbx), "replay", str(window.resolve()), "--json"],
            cwd=checkout,
            capture_output=True,
            timeout=RELEASE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"{checkout}: its arbx replay did not run: {exc}") from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines() or ["no error line"]
        raise InputError(f"{checkout}: its arbx replay failed: {said[-1][:300]}")
    return load_decisions(done.stdout, f"{checkout}'s decisions")


def compare_lines(ours: dict[str, Any], theirs: list[dict[str, Any]]) -> list[str]:
    """Where a replay's decisions differ from ``theirs``, one line per block."""
    from arbx.engine.replay import compare_decisions

    return [
        f"block {d.number} {d.hash[:12]}: {d.what}"
        for d in compare_decisions(ours["blocks"], theirs)
    ]


def _replay(args: argparse.Namespace) -> int:
    if args.compare is not None and args.against_release is not None:
        raise InputError("--compare and --against-release: one or the other")
    doc = replay_window(args.window)
    differences, other = None, ""
    if args.compare is not None:
        differences = compare_lines(doc, load_decisions_file(args.compare))
        other = str(args.compare)
    elif args.against_release is not None:
        differences = compare_lines(doc, release_decisions(args.against_release, args.window))
        other = f"the release in {args.against_release}"
    if args.json:
        out = (
            doc
            if differences is None
            else {
                "digest": doc["digest"],
                "equal": not differences,
                "differences": differences,
            }
        )
        print(json.dumps(out, indent=1, sort_keys=True))
    elif differences is None:
        _print_decisions(doc)
    else:
        for line in differences:
            print(line)
        blocks = len(doc["blocks"])
        verdict = f"{len(differences)} blocks differ" if differences else "the same decisions"
        print(f"{blocks} blocks replayed against {other}: {verdict}")
        print(f"decisions digest: {doc['digest']}")
    return 1 if differences else 0


def _print_decisions(doc: dict[str, Any]) -> None:
    repairs = doc["window"]["repairs"]
    if repairs:
        print(
            f"note: the recording run reloaded pools from the node {repairs} times; "
            "there, its decisions came from states this window does not hold"
        )
    found = 0
    for block in doc["blocks"]:
        opportunities = block["opportunities"]
        found += len(opportunities)
        print(f"block {block['number']} {block['hash'][:12]}: {len(opportunities)} opportunities")
        for o in opportunities:
            route = " > ".join(t[:8] for t in o["tokens"])
            print(
                f"  {route} via {len(o['pools'])} pools: in {o['amount_in']}, net {o['net_profit']}"
                f", builder {o['builder_payment']}"
            )
    print(f"{len(doc['blocks'])} blocks, {found} opportunities")
    print(f"decisions digest: {doc['digest']}")
