"""API commands: ``arbx api`` (serve it), ``arbx token add|list|revoke``, and the operator
controls from the command line, ``arbx mode show|set|clear`` and ``arbx limits show|set|clear``
(the same audited changes as ``PUT /api/v1/mode`` and ``PUT /api/v1/limits``).

``token add`` prints the new token once, alone on standard output (so that
``TOKEN=$(arbx token add --name ci --role viewer)`` works); only its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arbx.cli.args import amount, count
from arbx.cli.store import operator_actor, sessions_of
from arbx.domain.errors import ConfigError
from arbx.domain.modes import MODES

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from arbx.config import Settings


def register(sub: Any) -> None:
    """Add ``api``, ``token``, ``mode`` and ``limits``."""
    api = sub.add_parser("api", help="serve the REST API, the live stream and the dashboard")
    api.add_argument("--config", type=Path, help="settings file (TOML)")
    api.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    api.add_argument("--port", type=_port, help="port to listen on (default 8000)")
    api.add_argument("--chain", type=count, help="chain id (default: the configured one)")
    api.set_defaults(handler=_api)

    token = sub.add_parser("token", help="API bearer tokens")
    actions = token.add_subparsers(dest="token_command", required=True, parser_class=type(token))
    add = actions.add_parser("add", help="create a token (printed once)")
    add.add_argument("--name", required=True, help="who or what uses it (unique)")
    add.add_argument("--role", required=True, choices=["viewer", "operator"])
    listing = actions.add_parser("list", help="tokens, their roles and last use")
    revoke = actions.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("--name", required=True)
    for parser, handler in ((add, _token_add), (listing, _token_list), (revoke, _token_revoke)):
        parser.add_argument("--config", type=Path, help="settings file (TOML)")
        parser.set_defaults(handler=handler)

    mode = sub.add_parser("mode", help="the engine's mode ceiling (audited)")
    mode_actions = mode.add_subparsers(dest="mode_command", required=True, parser_class=type(mode))
    show = mode_actions.add_parser("show", help="the ceiling in force and where it comes from")
    put = mode_actions.add_parser("set", help="set the highest mode the engine may trade in")
    put.add_argument("mode", choices=MODES)
    clear = mode_actions.add_parser("clear", help="back to the configured mode")
    for parser in (show, put, clear):
        _controls_args(parser)
        parser.set_defaults(handler=_mode)

    limits = sub.add_parser("limits", help="the engine's limits (audited)")
    lim = limits.add_subparsers(dest="limits_command", required=True, parser_class=type(limits))
    lshow = lim.add_parser("show", help="the limits in force and where they come from")
    lset = lim.add_parser("set", help="change limits (unnamed ones keep their current value)")
    lset.add_argument(
        "--max-input",
        action="append",
        metavar="TOKEN=AMOUNT",
        help="most input per base token ('*' for any); repeat; replaces every cap",
    )
    lset.add_argument("--daily-gas-cap-wei", type=amount, metavar="WEI", help="gas per UTC day")
    lset.add_argument("--daily-loss-cap-wei", type=amount, metavar="WEI", help="loss per UTC day")
    lset.add_argument(
        "--max-consecutive-failures", type=count, metavar="N", help="failures in a row per run"
    )
    lclear = lim.add_parser("clear", help="back to the configured limits")
    for parser in (lshow, lset, lclear):
        _controls_args(parser)
        parser.set_defaults(handler=_limits)


def _controls_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="settings file (TOML)")
    parser.add_argument("--chain", type=count, help="chain id (default: the configured one)")
    parser.add_argument("--reason", help="recorded in the audit log")


# --- arbx api ---------------------------------------------------------------------------------


def _api(args: argparse.Namespace) -> int:
    from arbx.api.app import create_app
    from arbx.cli.store import database_errors
    from arbx.config import load_settings
    from arbx.risk.alerts import CachedAlerts
    from arbx.store import make_engine, make_session_factory, migrate

    settings = load_settings(args.config)
    api = api_settings(settings)
    priority = lower_priority(api.nice)  # first: the threads started later inherit it
    host = args.host or api.host
    port = args.port or api.port
    url = settings.database_url
    with database_errors(url):
        migrate.upgrade(url)
        engine = make_engine(url)
    app = create_app(
        make_session_factory(engine),
        chain_id=settings.chain.id if args.chain is None else args.chain,
        poll_interval=api.poll_interval,
        heartbeat_max_age_s=api.heartbeat_max_age_s,
        configured_mode=settings.mode,
        configured_limits=settings.risk.limits(),
        schedule=settings.risk.schedule(),
        alerts=CachedAlerts(
            settings.risk.prometheus_url, timeout=settings.risk.prometheus_timeout_s
        ),
        admission=api.admission(),
        share_s=api.share_s,
        token_cache_s=api.token_cache_s,
    )
    print(
        f"arbx API on http://{host}:{port}/ (OpenAPI at /docs, {priority}); Ctrl-C stops it",
        flush=True,
    )
    try:
        asyncio.run(_serve_until_signalled(app, host, port, api.drain_seconds))
    finally:
        engine.dispose()
    return 0


async def _serve_until_signalled(app: Any, host: str, port: int, drain_s: float) -> None:
    from arbx.api.app import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(app, host, port, stop, log_level="info", drain_s=drain_s)


def lower_priority(nice: int, autogroup: Path = Path("/proc/self/autogroup")) -> str:
    """Lower this process's CPU priority to ``nice`` (never raise it); what it runs at, in words.

    On Linux a nice value is a thread's: it is set before any thread starts, and they inherit
    it. Under the kernel's autogroups (``kernel.sched_autogroup_enabled``, on where processes run
    in the root cgroup), the scheduler first shares the CPUs between sessions, and a nice value
    weighs only against the processes of the same session: a process that leads its session
    (a service, a container's first process, ``setsid``) sets its autogroup's nice value too. A
    process in another's session leaves that session's value alone.
    """
    current = os.nice(0)
    if nice > current:
        current = os.nice(nice - current)
    said = f"nice {current}"
    if nice > 0 and os.getsid(0) == os.getpid() and autogroup.exists():
        try:
            autogroup.write_text(f"{nice}\n")
            said += ", its session's autogroup too"
        except OSError:
            pass
    return said


def api_settings(settings: Settings) -> Any:
    """The ``api`` section of the settings (defaults until ``Settings`` has one)."""
    from arbx.api.settings import ApiSettings

    section = getattr(settings, "api", None)
    return section if isinstance(section, ApiSettings) else ApiSettings()


# --- arbx token -------------------------------------------------------------------------------


def _token_add(args: argparse.Namespace) -> int:
    from arbx.store import api_repo

    with _sessions(args.config) as (sessions, _), sessions.begin() as session:
        token = api_repo.add_token(session, args.name, args.role)
    print(
        f"created {args.role} token {args.name!r}; it is shown only this once, store it now:",
        file=sys.stderr,
    )
    print(token)
    return 0


def _token_list(args: argparse.Namespace) -> int:
    from arbx.store import api_repo

    with _sessions(args.config) as (sessions, _), sessions() as session:
        tokens = api_repo.list_tokens(session)
    if not tokens:
        print("no tokens yet: arbx token add --name NAME --role viewer|operator")
    for t in tokens:
        used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
        state = "active"
        if t.revoked_at is not None:
            state = f"revoked {t.revoked_at.isoformat(timespec='seconds')}"
        print(f"{t.name:<24} {t.role:<9} {state:<32} last used {used}")
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    from arbx.store import api_repo

    with _sessions(args.config) as (sessions, _), sessions.begin() as session:
        api_repo.revoke_token(session, args.name)
    print(f"token {args.name!r} revoked")
    return 0


# --- arbx mode / arbx limits ------------------------------------------------------------------


def _mode(args: argparse.Namespace) -> int:
    from arbx.store import api_repo

    why = None
    with _sessions(args.config) as (sessions, settings), sessions.begin() as session:
        chain = settings.chain.id if args.chain is None else args.chain
        controls = api_repo.get_controls(session, chain)
        if args.mode_command != "show":
            ceiling = args.mode if args.mode_command == "set" else None
            why = api_repo.refusal(
                session,
                chain,
                actor=operator_actor(),
                mode_ceiling=ceiling,
                configured_mode=settings.mode,
                reason=args.reason,
            )
            if why is None:
                controls = api_repo.set_controls(
                    session, chain, actor=operator_actor(), mode_ceiling=ceiling, reason=args.reason
                )
    if why is not None:
        raise api_repo.ControlRefusedError(why)
    if controls is not None and controls.ceiling_or(settings.mode) == controls.mode_ceiling:
        print(
            f"chain {chain}: mode ceiling {controls.mode_ceiling} "
            f"(set by {controls.updated_by} at {controls.updated_at.isoformat(timespec='seconds')})"
        )
    else:
        print(f"chain {chain}: mode ceiling {settings.mode} (configured)")
    return 0


def _limits(args: argparse.Namespace) -> int:
    from arbx.store import api_repo

    why = None
    with _sessions(args.config) as (sessions, settings), sessions.begin() as session:
        chain = settings.chain.id if args.chain is None else args.chain
        controls = api_repo.get_controls(session, chain)
        current = controls.limits if controls and controls.limits else settings.risk.limits()
        if args.limits_command == "set":
            caps = _caps(args.max_input) if args.max_input else dict(current.max_input)
            limits = api_repo.parse_limits(
                caps,
                _given(args.daily_gas_cap_wei, current.daily_gas_cap_wei),
                _given(args.daily_loss_cap_wei, current.daily_loss_cap_wei),
                _given(args.max_consecutive_failures, current.max_consecutive_failures),
            )
            why = api_repo.refusal(
                session,
                chain,
                actor=operator_actor(),
                limits=limits,
                configured_limits=_bound(settings),
                reason=args.reason,
            )
            if why is None:
                controls = api_repo.set_controls(
                    session, chain, actor=operator_actor(), limits=limits, reason=args.reason
                )
        elif args.limits_command == "clear":
            controls = api_repo.set_controls(
                session, chain, actor=operator_actor(), limits=None, reason=args.reason
            )
    if why is not None:
        raise api_repo.ControlRefusedError(why)
    source = "set by " + controls.updated_by if controls and controls.limits else "configured"
    shown = controls.limits_or(settings.risk.limits()) if controls else settings.risk.limits()
    print(f"chain {chain}: limits ({source})")
    for token, cap in sorted(shown.max_input.items()):
        print(f"  max input {token}: {cap}")
    print(f"  daily gas cap            {shown.daily_gas_cap_wei} wei")
    print(f"  daily loss cap           {shown.daily_loss_cap_wei} wei")
    print(f"  max consecutive failures {shown.max_consecutive_failures}")
    return 0


def _given(value: int | None, current: int) -> int:
    return current if value is None else value


def _caps(items: list[str]) -> dict[str, int]:
    caps: dict[str, int] = {}
    for item in items:
        token, sep, value = item.partition("=")
        if not sep or not value.strip().isascii() or not value.strip().isdigit():
            raise ConfigError(f"--max-input {item!r}: expected TOKEN=AMOUNT (a whole number)")
        caps[token.strip()] = int(value.strip())
    return caps


# --- helpers ----------------------------------------------------------------------------------


def _bound(settings: Settings) -> Any:
    """The loosest limits the settings allow (input caps: the settings', else the stages')."""
    from arbx.domain.limits import configured_bound

    stages = settings.risk.schedule().stages
    return configured_bound(settings.risk.limits(), (s.max_input for s in stages))


@contextmanager
def _sessions(config: Path | None) -> Iterator[tuple[sessionmaker[Session], Settings]]:
    """Sessions on the migrated database of the settings; database errors as one line."""
    from arbx.config import load_settings

    settings = load_settings(config)
    with sessions_of(settings.database_url) as sessions:
        yield sessions, settings


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1..65535)")
    return int(text)
