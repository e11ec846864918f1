"""``python -m rehearsal``: the staging rehearsal, and the commands that operate its stack.

    python -m rehearsal [--short] [--scale F] [--keep]   the whole rehearsal, then its report
    python -m rehearsal up | down | status                a stack to operate by hand
    python -m rehearsal rollback COMPONENT --to VERSION   back (or forward) to a version the
                                                          registry keeps, at once
    python -m rehearsal abort|promote|undo COMPONENT      as kubectl argo rollouts does
    python -m rehearsal live --executor ADDR              the engine trades on the devnet: the
                                                          settings in limited mode with ADDR,
                                                          the devnet's key given to its pods

COMPONENT is api, web or engine. Exit 0 done, 1 failed, 2 a wrong request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import signal
import sys
import threading
from pathlib import Path

from rehearsal.cluster import (
    DEVNET_KEYS,
    KEYS_IN_POD,
    Overdue,
    Stack,
    StackError,
    log_command,
    read_state,
    registry_tags,
    run_dir,
)
from rehearsal.controller import ROLLED_BACK, Controller
from rehearsal.manifests import ManifestError, Manifests
from rehearsal.scenario import COMPONENTS, Options, Rehearsal, status_lines, table


class UserError(Exception):
    """A request that cannot be right (exit 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rehearsal", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="the run directory (build/rehearsal)"
    )
    sub = parser.add_subparsers(dest="command")
    full = sub.add_parser("run", help="the whole rehearsal (the default)")
    for p in (parser, full):
        p.add_argument("--short", action="store_true", help="the short form (make test)")
        p.add_argument("--scale", type=float, default=0.1, help="durations x this (default 0.1)")
        p.add_argument("--keep", action="store_true", help="leave the stack running")
    sub.add_parser("up", help="start the staging stack with v1 and serve it until Ctrl-C")
    sub.add_parser("down", help="remove the staging stack")
    sub.add_parser("status", help="the Rollouts, their versions and pods")
    arbx = sub.add_parser("arbx", help="an arbx command on the stack (settings, database, keys)")
    arbx.add_argument("args", nargs=argparse.REMAINDER, help="arbx's arguments")
    db = sub.add_parser("db", help="back the database up or restore it")
    db.add_argument("action", choices=["backup", "restore"])
    db.add_argument("file", type=Path, help="the backup file (pg_dump's custom format)")
    live = sub.add_parser("live", help="the engine trades on the devnet (limited mode)")
    live.add_argument("--executor", required=True, help="the address `arbx executor deploy` gave")
    back = sub.add_parser("rollback", help="one component to a version the registry keeps")
    back.add_argument("component", choices=sorted(COMPONENTS))
    back.add_argument("--to", required=True, help="the version (a tag in the registry)")
    for verb, text in (
        ("abort", "abort the release in progress"),
        ("promote", "promote the paused release"),
        ("undo", "back to the previous version, by the Rollout's strategy"),
    ):
        one = sub.add_parser(verb, help=text)
        one.add_argument("component", choices=sorted(COMPONENTS))
        if verb == "promote":
            one.add_argument("--full", action="store_true", help="skip the remaining steps")
    return parser


# what a stack needs on this machine, and the target that installs each
TOOLS = {"podman": "make container-tools", "prometheus": "make prometheus",
         "kubectl": "make setup (its .venv/bin on PATH)"}  # fmt: skip


def preflight() -> None:
    """UserError naming every tool a stack needs that is missing from PATH, and how to get it."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        how = sorted({TOOLS[tool] for tool in missing})
        raise UserError(f"{', '.join(missing)} not found: run {' and '.join(how)} first")


def _controller(directory: Path) -> Controller:
    scale = float(read_state(directory).get("scale", 1.0))
    return Controller(Stack(directory), Manifests.staging(), scale)


def _rollback(directory: Path, component: str, version: str) -> int:
    state = read_state(directory)
    name = COMPONENTS[component]
    if name not in state["rollouts"]:
        raise UserError(f"{component}: no Rollout {name} runs on this stack")
    kind = "web" if component == "web" else "searcher"
    tags = registry_tags(state["registry"], f"arbx-{kind}")
    if version not in tags:
        raise UserError(f"{version}: not in the registry (it keeps {', '.join(tags) or 'none'})")
    controller = _controller(directory)
    result = controller.set_image(name, version, full=True)
    print(f"{name}: {result.outcome} {version} in {result.finished - result.started:.1f} s")
    controller.settle()  # the old pods drained and gone before the command ends
    return 0 if result.outcome != ROLLED_BACK else 1


def _undo(directory: Path, component: str) -> int:
    name = COMPONENTS[component]
    status = read_state(directory)["rollouts"].get(name)
    if not status or len(status.get("history", [])) < 2:
        raise UserError(f"{component}: no earlier version to go back to")
    previous = [v for v in status["history"] if v != status["stable"]][-1]
    controller = _controller(directory)
    result = controller.set_image(name, previous)
    print(f"{name}: {result.outcome} {previous}")
    controller.settle()
    return 0 if result.outcome != ROLLED_BACK else 1


def _live(directory: Path, executor: str) -> int:
    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", executor):
        raise UserError(f"--executor: {executor[:60]!r} is not a 20-byte hex address")
    stack = Stack(directory)
    missing = [n for n in DEVNET_KEYS.values() if not (stack.keys() / n).is_file()]
    if missing:
        raise UserError(f"no {', '.join(missing)} in {stack.keys()}: the rehearsal writes them")
    keys = {var: f"{KEYS_IN_POD}/{name}" for var, name in DEVNET_KEYS.items()}
    stack.go_live(executor, "limited", keys, _controller(directory).app(COMPONENTS["engine"]))
    print(f"live: limited mode, executor {executor}; the engine reads {sorted(keys.values())}")
    return 0


def _serve(directory: Path, options: Options) -> int:
    rehearsal = Rehearsal(options)
    rehearsal.up()
    assert rehearsal.controller is not None
    for name in ("arbx-api", "arbx-web"):
        rehearsal.controller.deploy(name, "v1")
    for line in status_lines(directory):
        print(line)
    print("serving; Ctrl-C stops (the stack stays until `python -m rehearsal down`)")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    directory = args.dir or run_dir()
    command = args.command or "run"
    if command not in ("run", "up"):
        log_command(["python", "-m", "rehearsal", *(argv if argv is not None else sys.argv[1:])],
                    directory)  # fmt: skip
    try:
        if command == "run":
            if not 0 < args.scale <= 1:
                raise UserError("--scale must be in (0, 1]")
            preflight()
            options = Options(directory, args.scale, args.short, args.keep)
            report = Rehearsal(options).run()
            print(table(report))
            print(f"report: {directory / 'report.json'}")
            return 0
        if command == "up":
            preflight()
            return _serve(directory, Options(directory, keep=True))
        if command == "down":
            Stack(directory).down()
            return 0
        if command == "status":
            print("\n".join(status_lines(directory)))
            return 0
        if command == "arbx":
            if not args.args:
                raise UserError("arbx: name a command, e.g. `arbx stage status`")
            code, out, err = Stack(directory).arbx(list(args.args))
            sys.stdout.write(out)
            sys.stderr.write(err)
            return code
        if command == "db":
            if args.action == "backup":
                size = Stack(directory).backup(args.file)
                print(f"backup: {args.file} ({size} bytes)")
            else:
                Stack(directory).restore(args.file)
                print(f"restored from {args.file}")
            return 0
        if command == "live":
            return _live(directory, args.executor)
        if command == "rollback":
            return _rollback(directory, args.component, args.to)
        if command == "undo":
            return _undo(directory, args.component)
        name = COMPONENTS[args.component]
        if name not in read_state(directory)["rollouts"]:
            raise UserError(f"{args.component}: no Rollout {name} runs on this stack")
        flags = {"abort": True} if command == "abort" else {"promote": True}
        _controller(directory).request(name, **flags)
        print(f"{name}: {command} requested")
        return 0
    except UserError as exc:
        print(f"rehearsal: error: {exc}", file=sys.stderr)
        return 2
    except (StackError, ManifestError, Overdue) as exc:
        print(f"rehearsal: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["json", "main"]
