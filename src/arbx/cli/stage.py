"""``arbx stage status``: the capital stage of a key, the next one, and what its gate still needs.

Reads the store of the settings (``--config``), the configured mode and the operators' ceiling,
and, when ``risk.prometheus_url`` is set, the firing arbx alerts. Every condition of the gate to
the next stage is printed with its measured value, its requirement and pass or fail, followed by
the newest promotions with their evidence. ``--json`` prints the same as one JSON document.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_utils.address import is_hex_address

from arbx.cli.args import count


def _key(text: str) -> str:
    if not is_hex_address(text):
        raise argparse.ArgumentTypeError(f"{text[:90]!r} is not a 20-byte hex address")
    return text.lower()


def _history(text: str) -> int:
    value = count(text)
    if value > 1000:
        raise argparse.ArgumentTypeError(f"{value} is over 1000")
    return value


def register(sub: Any) -> None:
    """Add ``stage status``."""
    stage = sub.add_parser("stage", help="capital stages: the current one and the next gate")
    actions = stage.add_subparsers(dest="action", required=True, parser_class=type(stage))
    status = actions.add_parser("status", help="current stage, next stage, each gate condition")
    status.add_argument("--config", type=Path, help="settings file (TOML)")
    status.add_argument("--chain", type=count, help="chain id (default: the configured one)")
    status.add_argument("--key", type=_key, help="signing key address (default: the only one)")
    status.add_argument(
        "--history", type=_history, default=10, help="stage changes to show (0..1000, default 10)"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from arbx.cli.store import sessions_of
    from arbx.config import load_settings
    from arbx.risk.alerts import firing_alerts
    from arbx.store import stage_repo

    settings = load_settings(args.config)
    chain = settings.chain.id if args.chain is None else args.chain
    alerts = firing_alerts(settings.risk.prometheus_url, timeout=settings.risk.prometheus_timeout_s)
    with sessions_of(settings.database_url) as sessions, sessions() as session:
        status = stage_repo.key_stage_status(
            session,
            chain,
            args.key,
            settings.risk.schedule(),
            settings.mode,
            datetime.now(UTC),
            alerts,
            args.history,
        )
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    for line in status_lines(status):
        print(line)
    return 0


def status_lines(status: dict[str, Any]) -> list[str]:
    """The text form of a stage status."""
    stage, nxt = status["stage"], status["next"]
    since = status["entered_at"] or "its first start"
    key = status["key"] or "(no key yet)"
    lines = [
        f"chain {status['chain_id']}, key {key}",
        f"stage     {stage['index']} {stage['name']} ({stage['mode']}) since {since}",
    ]
    if status["note"]:
        lines.append(f"note      {status['note']}")
    if nxt is None:
        lines.append("next      none: the last stage")
    else:
        lines.append(f"next      {nxt['index']} {nxt['name']} ({nxt['mode']})")
        width = max(len(c["name"]) for c in status["conditions"])
        for c in status["conditions"]:
            mark = "pass" if c["passed"] else "FAIL"
            lines.append(
                f"  {mark}  {c['name']:<{width}}  {c['measured']}  (required {c['required']})"
            )
        if status["needs"]:
            lines.append("still needs:")
            lines += [f"  - {need}" for need in status["needs"]]
        else:
            lines.append("the gate is passed: the engine promotes at its next evaluation")
    decision = status["decision"]
    lines.append(f"decision  {decision['action']}: {decision['reason']}")
    for change in status.get("history", []):
        lines.append(
            f"history   {change['at']} {change['kind']} {change['from_stage']} -> "
            f"{change['to_stage']}: {change['reason']}"
        )
    return lines
