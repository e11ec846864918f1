"""Secrets out of what leaves a process: URLs, stored settings, child environments and logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from arbx.config import Settings
from arbx.domain.errors import ConfigError
from arbx.obs.logging import LogSettings, configure_logging, log_settings
from arbx.redaction import REDACTED, remove_redaction
from arbx.scrub import (
    MASK,
    child_environ,
    public_settings,
    scrub_text,
    scrub_url,
    secret_values,
    url_secrets,
)

KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
TX_HASH = "0x" + "ab" * 32


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://arbx:hunter22@db.internal:5432/arbx",
            "postgresql+psycopg://arbx:***@db.internal:5432/arbx",
        ),
        ("https://relay.example/?apikey=abc123&x=1", "https://relay.example/?apikey=***&x=***"),
        (
            "https://mainnet.infura.io/v3/9aa3d95b3bc440fa88ea12eaa4456161",
            "https://mainnet.infura.io/v3/***",
        ),
        (
            "https://user:pw@builder.example:8443/rpc#frag",
            "https://user:***@builder.example:8443/rpc#***",
        ),
        ("sqlite:///./data/arbx.db", "sqlite:///./data/arbx.db"),
        (  # a file's path is no token, however long its directory names
            "sqlite:////tmp/pytest-1/test_deploy_against_a_dead_rp0/arbx.db",
            "sqlite:////tmp/pytest-1/test_deploy_against_a_dead_rp0/arbx.db",
        ),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
    ],
)
def test_urls_lose_passwords_query_values_and_token_paths(url: str, shown: str) -> None:
    assert scrub_url(url) == shown


def test_text_keeps_its_words_and_loses_url_secrets() -> None:
    text = "cannot reach postgresql://bob:s3cretpw@10.1.2.3/x (timeout)"
    assert scrub_text(text) == "cannot reach postgresql://bob:***@10.1.2.3/x (timeout)"


def test_public_settings_carry_no_secret() -> None:
    settings = Settings(
        database_url="postgresql://arbx:hunter22@db/arbx",
        execution={"builders": [{"name": "b", "url": "https://b.example/?auth=tok3n-value"}]},
    )
    data = public_settings(settings.model_dump(mode="json"))
    data["chain"] |= public_settings({"rpc": ["https://eth.example/v2/AbCdEf0123456789xyzAbCd"]})
    text = json.dumps(data)
    for secret in ("hunter22", "tok3n-value", "AbCdEf0123456789xyzAbCd"):
        assert secret not in text
    assert data["database_url"] == "postgresql://arbx:***@db/arbx"
    assert data["chain"]["id"] == 31337  # the rest stays as it was
    assert public_settings({"relay": {"api_key": "k", "keystore_password": "p", "n": 3}}) == {
        "relay": {"api_key": MASK, "keystore_password": MASK, "n": 3}
    }


def test_children_inherit_no_key_or_password_variable() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "ARBX_SIGNING_KEY": KEY,
        "ARBX_SIGNING_KEY_FILE": "/run/secrets/key",
        "ARBX_KEYSTORE_PASSWORD": "correct horse",
        "ARBX_RELAY_KEYSTORE_PASSWORD_FILE": "/run/secrets/pw",
        "ARBX_RELAY_KEY": KEY,
        "ARBX_DATABASE_URL": "postgresql://arbx:hunter22@db/arbx",
        "ARBX_NODE_MODULES": "/app/node_modules",
    }
    child = child_environ(environ)
    assert child == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "ARBX_DATABASE_URL": "postgresql://arbx:***@db/arbx",
        "ARBX_NODE_MODULES": "/app/node_modules",
    }
    assert set(secret_values(environ)) == {KEY, "correct horse", "hunter22"}


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    yield out
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_logs_are_readable_lines_or_json_and_never_carry_a_secret(logged: io.StringIO) -> None:
    environ = {"ARBX_SIGNING_KEY": "0x" + KEY, "ARBX_KEYSTORE_PASSWORD": "pa55-word!"}
    redaction = configure_logging(LogSettings(), stream=logged, environ=environ)
    try:
        log = logging.getLogger("arbx.test.secrets")
        log.info("key %s password %s tx %s", KEY.upper(), "pa55-word!", TX_HASH)
        line = logged.getvalue().strip()
        assert " INFO arbx.test.secrets: key " in line
        assert KEY.lower() not in line.lower()
        assert "pa55-word!" not in line
        assert line.count(REDACTED) == 2
        assert TX_HASH in line  # hashes stay readable
        logged.truncate(0)
        logged.seek(0)
        configure_logging(LogSettings(format="json"), stream=logged, environ=environ)
        log.warning("with extra", extra={"secret_field": f"0x{KEY}", "block": 12})
        record = json.loads(logged.getvalue().strip())
        assert record["level"] == "WARNING"
        assert record["logger"] == "arbx.test.secrets"
        assert record["message"] == "with extra"
        assert record["block"] == 12
        assert record["secret_field"] == f"0x{REDACTED}"
        assert len(logging.getLogger().handlers) == len(
            {id(h) for h in logging.getLogger().handlers}
        )
    finally:
        remove_redaction(redaction)


def test_the_log_format_setting() -> None:
    assert log_settings({"ARBX_LOG__FORMAT": "json", "ARBX_LOG__LEVEL": "debug"}) == LogSettings(
        format="json", level="DEBUG"
    )
    assert log_settings({}) == LogSettings()
    with pytest.raises(ConfigError, match="ARBX_LOG__FORMAT"):
        log_settings({"ARBX_LOG__FORMAT": "xml"})
    assert Settings(log={"format": "json"}).log.format == "json"


def test_url_secrets_take_path_tokens_of_network_urls_only() -> None:
    assert list(url_secrets("https://eth.example/v2/AbCdEf0123456789xyzAbCd")) == [
        "AbCdEf0123456789xyzAbCd"
    ]
    # a database file's folder is no secret (the redaction must not eat log paths)
    assert list(url_secrets("sqlite:////tmp/test_deploy_against_a_dead_rpc0/arbx.db")) == []
    assert list(url_secrets("postgresql://arbx:hunter22@db/arbx_2026_12_03_sessiondb")) == [
        "hunter22"
    ]
