"""Hostile settings files: bounded in size and nesting, refused with one line (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from arbx import config
from arbx.config import check_environment, load_settings
from arbx.domain.errors import ConfigError
from arbx.execution.keys import KeySource, read_private_key


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a = " + b"[" * 100_000, "nests deeper than 16"),
        (b"a = " + b"{b=" * 50_000, "nests deeper than 16"),
        (b"a = [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]", "nests deeper than 16"),
        (b".".join(b"k%d" % i for i in range(40)) + b" = 1", "nests deeper than 16"),
        (b"".join(b"[t%d]\n" % i for i in range(3)) + b"mode = '\xff'", "not valid TOML"),
        (b'mode = "\\ud800"', "not valid TOML"),
        (b"mode = " + b"9" * 5000, "not valid TOML"),
        (b"mode = 1e999", "mode"),
        (b"mode = nan", "mode"),
        (b"[strategy]\nmax_hops = \xc2\xb2", "not valid TOML"),
        (b"[strategy]\nmax_hops = '\xc2\xb2'", "strategy.max_hops"),
        (b"[strategy]\nmax_hops = [3]", "strategy.max_hops"),
    ],
)
def test_hostile_settings_files_get_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "arbx.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_size_is_capped_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "MAX_SETTINGS_BYTES", 100)
    path = tmp_path / "arbx.toml"
    path.write_text("# " + "x" * 200 + "\n")
    with pytest.raises(ConfigError, match="is over 100 bytes"):
        load_settings(path)
    with pytest.raises(ConfigError, match="is over 100 bytes"):
        load_settings(Path("/dev/zero"))  # endless: read only up to the cap
    path.write_text('mode = "shadow"  # [[[[ brackets in a comment are counted but shallow\n')
    assert load_settings(path).mode == "shadow"


def test_the_command_line_says_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_bytes(b"a = " + b"[" * 200_000)
    proc = subprocess.run(
        [sys.executable, "-m", "arbx.cli", "api", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"arbx: error: settings file {path} nests deeper than 16 levels"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"crypto":' + b"[" * 60_000, "nested 60001 deep"),
        (b'{"crypto": {"kdf": NaN}}', "not valid JSON"),
        (b'{"crypto": "\xff"}', "UTF-8"),
        (b" " * 70_000, "over 65536 bytes"),
    ],
)
def test_hostile_keystores_get_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "keystore.json"
    path.write_bytes(content)
    env = {"ARBX_KEYSTORE_PASSWORD": "a password"}
    with pytest.raises(ConfigError) as refused:
        read_private_key(KeySource.keystore(path), env)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_deep_structured_variables_get_one_line_not_a_crash() -> None:
    # Structured ARBX_ variables are decoded by the standard library: it would overflow C's stack.
    env = {**os.environ, "ARBX_VENUES": "[" * 100_000, "ARBX_SIGNING_KEY": "0x" + "ab" * 32}
    proc = subprocess.run(
        [sys.executable, "-m", "arbx.cli", "api", "--port", "1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "arbx: error: variable ARBX_VENUES is over 1048576 bytes or nests deeper than 16 levels"
    )
    check_environment({"ARBX_VENUES": "[[]]", "HOME": "[" * 100, "ARBX_MODE": "shadow"})
    with pytest.raises(ConfigError, match="ARBX_X"):
        check_environment({"ARBX_X": '{"a":' * 17})
