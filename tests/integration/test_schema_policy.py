"""The database compatibility policy (docs/adr/0025): migrations after the previous release only
add, and this release leaves alone a database that a newer release migrated, as long as its
schema still holds everything this release uses."""

from __future__ import annotations

import ast
import logging
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import text

from arbx.domain.errors import ConfigError
from arbx.store import db, migrate, repo

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ROOT / "src" / "arbx" / "store" / "migrations" / "versions"
RELEASES = ROOT / "deploy" / "releases.toml"
ADDING = {"create_table", "create_index", "add_column", "batch_alter_table"}


def expand_only_problems(source: str) -> list[str]:
    """What in a migration's ``upgrade()`` does more than add: every ``op``/``batch_op`` call
    other than creating tables and indexes and adding nullable or defaulted columns."""
    tree = ast.parse(source)
    upgrade = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"), None
    )
    if upgrade is None:
        return ["no upgrade()"]
    problems: list[tuple[int, str]] = []
    for node in ast.walk(upgrade):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if not (isinstance(owner, ast.Name) and owner.id in {"op", "batch_op"}):
            continue
        name = node.func.attr
        if name not in ADDING:
            problems.append((node.lineno, f"{owner.id}.{name}"))
        elif name == "add_column":
            column = next((a for a in node.args if isinstance(a, ast.Call)), None)
            words = {k.arg: k.value for k in column.keywords} if column else {}
            nullable = words.get("nullable")
            optional = not (isinstance(nullable, ast.Constant) and nullable.value is False)
            if not optional and "server_default" not in words:
                problems.append((node.lineno, "a NOT NULL column without a server default"))
    return [f"line {line}: {what}" for line, what in sorted(problems)]


def test_migrations_after_the_previous_release_only_add() -> None:
    previous = tomllib.loads(RELEASES.read_text())["previous"]["schema"]
    later = sorted(p for p in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py") if p.name[:4] > previous)
    assert later, "no migration after the previous release's schema: nothing to check"
    assert migrate.head() == max(p.name[:4] for p in later)
    for path in later:
        assert expand_only_problems(path.read_text()) == [], path.name


def test_the_check_finds_what_is_not_an_expansion() -> None:
    contract = """
def upgrade():
    op.create_table("t", sa.Column("a", sa.Integer()))
    op.add_column("runs", sa.Column("x", sa.Integer(), nullable=True))
    op.add_column("runs", sa.Column("y", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("runs", sa.Column("z", sa.Integer(), nullable=False))
    op.drop_column("runs", "mode")
    with op.batch_alter_table("runs") as batch_op:
        batch_op.alter_column("status", type_=sa.Text())
    op.rename_table("a", "b")
    op.execute("DROP TABLE x")
"""
    assert expand_only_problems(contract) == [
        "line 6: a NOT NULL column without a server default",
        "line 7: op.drop_column",
        "line 9: batch_op.alter_column",
        "line 10: op.rename_table",
        "line 11: op.execute",
    ]


def test_a_database_a_newer_release_migrated_is_left_alone_while_it_holds_our_schema(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'arbx.db'}"
    migrate.upgrade(url)
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:  # what a newer release's expand migration would leave
            conn.execute(text("CREATE TABLE later_feature (id INTEGER PRIMARY KEY)"))
            conn.execute(text("ALTER TABLE runs ADD COLUMN later_column TEXT"))
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with caplog.at_level(logging.WARNING, logger="arbx.store.migrate"):
            migrate.upgrade(url)
        assert "database at revision 9999, newer than this release's" in caplog.text
        assert migrate.current(url) == "9999"
        with db.make_session_factory(engine).begin() as s:  # and this release works on it
            repo.upsert_chain(s, 1, "mainnet")
            assert repo.start_run(s, 1) >= 1
        with pytest.raises(ConfigError, match="newer than this release's"):
            migrate.downgrade(url, "0001")
        with engine.begin() as conn:  # a contract step: this release can no longer run on it
            conn.execute(text("ALTER TABLE runs DROP COLUMN summary_json"))
        with pytest.raises(ConfigError) as refused:
            migrate.upgrade(url)
        message = str(refused.value)
        assert "\n" not in message
        assert "is at revision 9999" in message
        assert "lacks runs.summary_json" in message
    finally:
        engine.dispose()
