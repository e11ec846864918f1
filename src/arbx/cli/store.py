"""Database commands: ``db upgrade``/``db current`` and the shadow ``report``."""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arbx.cli.args import count
from arbx.domain.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


def register(sub: Any) -> None:
    """Add ``db`` and ``report``."""
    db = sub.add_parser("db", help="database migrations")
    db.add_argument("--config", type=Path, help="settings file (TOML)")
    db.add_argument("action", choices=["upgrade", "current"])
    db.set_defaults(handler=_db)

    report = sub.add_parser("report", help="the shadow-mode validation report of a run")
    report.add_argument("--config", type=Path, help="settings file (TOML)")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.add_argument("--run", type=count, help="run id (default: the latest)")
    report.set_defaults(handler=_report)


def _database_url(config: Path | None) -> str:
    from arbx.config import load_settings

    return load_settings(config).database_url


def _db(args: argparse.Namespace) -> int:
    from arbx.store import migrate

    url = _database_url(args.config)
    with database_errors(url):
        if args.action == "upgrade":
            migrate.upgrade(url)
        print(f"database {redacted(url)} at revision {migrate.current(url)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from arbx.store import (
        execution_repo,
        make_engine,
        make_session_factory,
        migrate,
        repo,
        score_repo,
    )

    url = _database_url(args.config)
    with database_errors(url):
        migrate.upgrade(url)
        factory = make_session_factory(make_engine(url), readonly=True)
        with factory.begin() as session:
            data: dict[str, Any] = dict(repo.report(session, args.run))
            execution = execution_repo.report_fields(session, data["run"]["id"])
            data["scoring"] = score_repo.summary(session, data["run"]["id"])
    data.update(execution)
    if args.json:
        print(json.dumps(_jsonable(data), indent=2))
        return 0
    run = data["run"]
    latency = data["latency_ms"]
    print(f"run {run['id']} ({run['mode']}, {run['status']}), chain {run['chain_id']}")
    print(f"  started {run['started_at']}, ended {run['ended_at'] or '-'}")
    print(f"  blocks seen            {data['blocks']}")
    print(f"  opportunities          {data['opportunities']}")
    print("  expected net profit")
    print(
        f"    capturable           {data['capturable_net_profit_wei']} wei "
        f"(best pool-disjoint set per block: {data['capturable_opportunities']} opportunities)"
    )
    print(
        f"    sum of all found     {data['expected_net_profit_wei']} wei "
        "(overlapping routes: not all can be taken)"
    )
    print(
        f"  detection latency ms   p50 {_ms(latency['p50'])}  p90 {_ms(latency['p90'])}"
        f"  p99 {_ms(latency['p99'])}"
    )
    parity = data["parity"]
    print(
        f"  state parity           {parity['checks']} of {data['blocks']} blocks checked"
        f" ({_share(parity['coverage'])}), {parity['failures']} pools differed"
    )
    for line in execution_repo.report_lines(execution):
        print(line)
    for line in score_repo.report_lines(data["scoring"], shadow=run["mode"] == "shadow"):
        print(line)
    for row in data["by_route"][:10]:
        print(f"  {row['count']:>6} x {row['expected_net_profit_wei']:>24} wei  {row['route_key']}")
    return 0


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _jsonable(value: Any) -> Any:
    """Report data as JSON: wei amounts as decimal strings, times as ISO 8601."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, float | str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def redacted(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database>"


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn an unreachable or broken database into one ConfigError line."""
    from sqlalchemy.exc import ArgumentError, OperationalError

    try:
        yield
    except (OperationalError, ArgumentError) as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"database {redacted(url)}: {detail}") from None


@contextmanager
def sessions_of(url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the migrated database; database errors become one ConfigError line."""
    from arbx.store import make_engine, make_session_factory, migrate

    with database_errors(url):
        migrate.upgrade(url)
        engine = make_engine(url)
        try:
            yield make_session_factory(engine)
        finally:
            engine.dispose()


def operator_actor() -> str:
    """Who an operator command acts as, for the audit trail: ``cli:<user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
