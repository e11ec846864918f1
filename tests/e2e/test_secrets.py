"""Secrets stay secret: live runs on the embedded devnet are given their keys and passwords in every
supported way between them (a key variable, key files, keystores with the password in a variable
or a file, the relay key, a PostgreSQL URL with a password), then their output (readable lines,
or JSON lines), reports, every row of their database and the API's answers are searched for each
secret, as written and as bare hex."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import MetaData, create_engine, make_url, select

from arbx.devnet.anvil import free_port
from arbx.devnet.deployment import ANVIL_MNEMONIC, SEARCHER_ACCOUNT_INDEX
from arbx.execution.keys import KeySource, import_keystore
from tests.e2e.dashboard_stack import postgres_database

pytestmark = pytest.mark.e2e

BLOCKS = "6"
SIGNING_PASSWORD = "signing-keystore-pa55"
RELAY_PASSWORD = "relay-keystore-pa55"
DB_PASSWORD = "database-pa55-Zq7"
READS = (
    "/healthz", "/readyz", "/openapi.json", "/api/v1/status", "/api/v1/whoami",
    "/api/v1/opportunities", "/api/v1/bundles", "/api/v1/bundles/1", "/api/v1/pools",
    "/api/v1/audit", "/api/v1/pnl", "/api/v1/mode", "/api/v1/limits",
)  # fmt: skip


def _searcher_key() -> str:
    """The devnet's funded searcher key (anvil account 9), hex with 0x."""
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(
        ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{SEARCHER_ACCOUNT_INDEX}"
    )
    return "0x" + bytes(account.key).hex()


@dataclass
class Scan:
    """The secrets handed to one run and everything it let out."""

    secrets: list[str]
    seen: dict[str, str] = field(default_factory=dict)  # where -> text

    def check(self) -> None:
        """No secret, as given or as bare hex, anywhere in what was seen."""
        spellings = {s.lower() for s in self.secrets} | {
            s.lower().removeprefix("0x") for s in self.secrets
        }
        for where, text in self.seen.items():
            lowered = text.lower()
            leaked = [s for s in spellings if s in lowered]
            assert not leaked, f"{where} carries a secret"


def _arbx(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arbx.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def _rows(url: str) -> str:
    """Every row of every table, as text."""
    engine = create_engine(make_url(url))
    meta = MetaData()
    meta.reflect(engine)
    lines = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            lines += [f"{table.name} {tuple(row)}" for row in conn.execute(select(table))]
    engine.dispose()
    assert any(line.startswith("runs ") for line in lines)
    return "\n".join(lines)


def _api_answers(cwd: Path, env: dict[str, str]) -> tuple[str, str]:
    """GET every read endpoint of `arbx api` on the run's database. -> (answers, its output)."""
    token = _arbx("token", "add", "--name", "scan", "--role", "viewer", cwd=cwd, env=env)
    assert token.returncode == 0, token.stderr
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "arbx.cli", "api", "--port", str(port)],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    answers = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "arbx api did not start"
                assert api.poll() is None, "arbx api exited"
                time.sleep(0.2)
        for path in READS:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                headers={"Authorization": f"Bearer {token.stdout.strip()}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    answers.append(f"{path} {response.status} {response.read().decode()}")
            except urllib.error.HTTPError as exc:
                answers.append(f"{path} {exc.code} {exc.read().decode()}")
    finally:
        api.send_signal(signal.SIGTERM)
        out, err = api.communicate(timeout=30)
    assert any(a.startswith("/api/v1/bundles ") and " 200 " in a for a in answers), answers
    return "\n".join(answers), out + err


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, reached with a password (the local server trusts any)."""
    with postgres_database() as url:
        yield make_url(url).set(password=DB_PASSWORD).render_as_string(hide_password=False)


def _keystore(path: Path, key: str, password: str) -> str:
    import_keystore(path, KeySource.variable("K"), password, scrypt_n=2, environ={"K": key})
    return str(path)


def _secret_file(path: Path, text: str) -> str:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


@pytest.mark.parametrize("way", ["keystore-and-key-file-postgres", "variables-and-files-sqlite"])
def test_a_live_run_lets_no_secret_out(
    way: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    signing, relay = _searcher_key(), "0x" + os.urandom(32).hex()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBX_")}
    if way == "keystore-and-key-file-postgres":
        url = request.getfixturevalue("pg_url")
        env |= {
            "ARBX_SIGNING_KEYSTORE": _keystore(
                tmp_path / "signing.json", signing, SIGNING_PASSWORD
            ),
            "ARBX_KEYSTORE_PASSWORD": SIGNING_PASSWORD,
            "ARBX_RELAY_KEY_FILE": _secret_file(tmp_path / "relay.key", relay),
        }
        secrets = [signing, relay, SIGNING_PASSWORD, DB_PASSWORD]
    else:
        url = f"sqlite:///{tmp_path / 'arbx.db'}"
        env |= {
            "ARBX_SIGNING_KEY": signing.removeprefix("0x"),
            "ARBX_RELAY_KEYSTORE": _keystore(tmp_path / "relay.json", relay, RELAY_PASSWORD),
            "ARBX_RELAY_KEYSTORE_PASSWORD_FILE": _secret_file(tmp_path / "pw", RELAY_PASSWORD),
            "ARBX_LOG__FORMAT": "json",
        }
        secrets = [signing, relay, RELAY_PASSWORD]
    env |= {"ARBX_DATABASE_URL": url, "ARBX_LOG__LEVEL": "DEBUG"}
    scan = Scan(secrets)

    run = _arbx(
        "run", "--mode", "limited", "--max-blocks", BLOCKS, "--plain", "--pace", "0.1",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "mode limited" in run.stdout  # it did load the keys and trade
    scan.seen |= {"run stdout": run.stdout, "run stderr": run.stderr}
    logged = [line for line in run.stderr.splitlines() if line.strip()]
    assert any("loaded the signing key" in line for line in logged), run.stderr[-2000:]
    if env.get("ARBX_LOG__FORMAT") == "json":  # every log line is one JSON object
        records = [json.loads(line) for line in logged]
        assert {"time", "level", "logger", "message"} <= set(records[0])
    report = _arbx("report", "--json", cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["run"]["settings"]["database_url"].startswith(("sqlite", "postgresql"))
    scan.seen |= {"report": report.stdout + report.stderr}
    text = _arbx("report", cwd=tmp_path, env=env)
    scan.seen |= {"text report": text.stdout + text.stderr}
    scan.seen |= {"database rows": _rows(url)}
    answers, api_output = _api_answers(tmp_path, env)
    scan.seen |= {"API answers": answers, "API output": api_output}
    scan.check()
    # The stored settings keep the rest readable: the database is named, its password is not.
    if DB_PASSWORD in secrets:
        assert "postgresql+psycopg://postgres:***@" in data["run"]["settings"]["database_url"]
