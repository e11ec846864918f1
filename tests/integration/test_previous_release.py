"""The previous release (deploy/releases.toml) runs against this release's schema, on a fresh
PostgreSQL database and a SQLite file: expand-then-contract migrations (docs/adr/0025) make a
rollback need no downgrade.

The previous release's source comes from git (``git archive`` of its commit): a clone without that
commit, or a shallow one, fails with one line saying so; it is never skipped. This checkout
migrates the database to its head; then the previous release's own ``arbx run`` follows the
embedded devnet in shadow mode for a few blocks, its ``arbx report`` reads them back, and its API
serves its read endpoints, all in this checkout's virtual environment (the two releases share the
pinned dependencies of pyproject.toml). The database stays at this release's revision, and this
release reads what the previous one wrote.

Each backend costs a devnet start of the previous release (30 to 80 s): ``make test`` runs
PostgreSQL, the production database; ``make compat`` (``ARBX_COMPAT_ALL=1``) runs SQLite as well.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from arbx import __version__
from arbx.store import db, migrate, repo

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RELEASES = ROOT / "deploy" / "releases.toml"
VERSIONS = Path("src") / "arbx" / "store" / "migrations" / "versions"
BLOCKS = 3


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)


def previous_release(into: Path, releases: Path = RELEASES) -> dict[str, Any]:
    """The previous release's source (``src``, ``contracts``) under ``into``, from git."""
    previous: dict[str, Any] = tomllib.loads(releases.read_text())["previous"]
    commit, version = previous["commit"], previous["version"]
    if _git("rev-parse", "--is-shallow-repository").stdout.strip() == b"true":
        pytest.fail(
            f"this clone is shallow: release {version} ({commit[:9]}) cannot be extracted; "
            "fetch the whole history (git fetch --unshallow)",
            pytrace=False,
        )
    if _git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        pytest.fail(
            f"commit {commit[:9]} of release {version} is not in this clone: fetch it "
            "(git fetch origin main)",
            pytrace=False,
        )
    archive = _git("archive", "--format=tar", commit, "src", "contracts")
    assert archive.returncode == 0, archive.stderr.decode(errors="replace")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    if previous.get("needs_newer_revision_files"):
        ours = {p.name for p in (into / VERSIONS).glob("*.py")}
        for path in sorted((ROOT / VERSIONS).glob("[0-9][0-9][0-9][0-9]_*.py")):
            if path.name[:4] > previous["schema"] and path.name not in ours:
                shutil.copy(path, into / VERSIONS / path.name)
    return previous


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Previous:
    """Commands of the previous release, run from its source with this checkout's Python."""

    def __init__(self, source: Path, url: str, workdir: Path) -> None:
        self.workdir = workdir
        self.env = {
            **os.environ,
            "PYTHONPATH": str(source / "src"),
            "ARBX_DATABASE_URL": url,
            "ARBX_NODE_MODULES": str(ROOT / "node_modules"),
            "ARBX_LOG__LEVEL": "WARNING",
        }

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "arbx.cli", *args]

    def run(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            self.argv(*args),
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        out = done.stdout.decode(errors="replace")
        err = done.stderr.decode(errors="replace")
        assert done.returncode == 0, f"arbx {' '.join(args)} exited {done.returncode}:\n{err}"
        return out

    def python(self, code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            timeout=60,
            check=True,
        )
        return done.stdout.decode().strip()


def get(base: str, path: str, token: str) -> Any:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200, path
        return json.loads(answer.read())


def test_the_previous_release_runs_against_this_schema(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite") and os.environ.get("ARBX_COMPAT_ALL") != "1":
        pytest.skip("make compat runs the previous release on SQLite too")
    source = tmp_path / "previous"  # its checkout: it runs from there, as from its own clone
    source.mkdir()
    previous = previous_release(source)
    old = Previous(source, db_url, source)
    loaded = old.python("import arbx; print(arbx.__version__, arbx.__file__)")
    assert loaded == f"{previous['version']} {source / 'src' / 'arbx' / '__init__.py'}"

    migrate.upgrade(db_url)  # this release's schema
    head = migrate.head()
    assert head > previous["schema"]
    assert migrate.current(db_url) == head

    out = old.run("run", "--max-blocks", str(BLOCKS), "--plain", "--metrics-port", "0", timeout=240)
    assert f"stopped ({BLOCKS} blocks)" in out
    report = json.loads(old.run("report", "--json"))
    assert (report["run"]["mode"], report["blocks"]) == ("shadow", BLOCKS)
    assert report["parity"]["checks"] == BLOCKS
    assert report["parity"]["failures"] == 0
    assert int(report["opportunities"]) > 0

    token = old.run("token", "add", "--name", "compat", "--role", "viewer").split()[-1]
    port = free_port()
    api = subprocess.Popen(
        old.argv("api", "--host", "127.0.0.1", "--port", str(port)),
        env=old.env,
        cwd=source,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert api.poll() is None, api.stderr.read().decode() if api.stderr else ""
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the previous release's API never answered"
                time.sleep(0.2)
        status = get(base, "/api/v1/status", token)
        assert status["run_id"] == report["run"]["id"]
        opportunities = get(base, "/api/v1/opportunities?limit=5", token)["items"]
        assert len(opportunities) == 5
        assert get(base, "/api/v1/bundles", token)["items"] == []
        assert len(get(base, "/api/v1/pools", token)["items"]) > 0
        assert int(get(base, "/api/v1/pnl", token)["opportunities"]["opportunities"]) == int(
            report["opportunities"]
        )
        assert get(base, "/api/v1/whoami", token)["name"] == "compat"
    finally:
        api.terminate()
        api.wait(timeout=30)

    # The database is still at this release's revision, and this release reads what was written.
    assert migrate.current(db_url) == head
    migrate.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        with db.make_session_factory(engine)() as session:
            ours = repo.report(session, report["run"]["id"])
    finally:
        engine.dispose()
    assert (ours["blocks"], ours["opportunities"]) == (BLOCKS, int(report["opportunities"]))


def test_a_release_missing_from_the_clone_fails_in_one_line(tmp_path: Path) -> None:
    releases = tmp_path / "releases.toml"
    releases.write_text(
        '[previous]\nversion = "9.9.9"\ncommit = "' + "0" * 40 + '"\nschema = "0004"\n'
    )
    with pytest.raises(pytest.fail.Exception) as failed:
        previous_release(tmp_path, releases)
    assert str(failed.value) == (
        "commit 000000000 of release 9.9.9 is not in this clone: fetch it (git fetch origin main)"
    )


def test_the_releases_file_names_this_version_and_an_older_one() -> None:
    releases = tomllib.loads(RELEASES.read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert releases["current"]["version"] == project == __version__
    older = tuple(int(p) for p in releases["previous"]["version"].split("."))
    assert older < tuple(int(p) for p in project.split("."))
