"""`arbx key new` / `arbx key import` from the command line: only the address is printed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from arbx.cli import main

KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBX_KEYSTORE_PASSWORD", "correct-horse-battery")
    monkeypatch.setattr("arbx.execution.keys.SCRYPT_N", 2**10, raising=False)


def test_import_writes_a_private_keystore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    keystore = tmp_path / "signing.json"
    assert main(["key", "import", "--keystore", str(keystore), "--key-file", str(key_file)]) == 0
    out, err = capsys.readouterr()
    assert ADDRESS in out
    assert KEY[2:] not in out + err
    assert json.loads(keystore.read_text())["address"].lower() == ADDRESS[2:].lower()
    assert os.stat(keystore).st_mode & 0o077 == 0
    assert main(["key", "import", "--keystore", str(keystore), "--key-file", str(key_file)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_readable_key_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY)
    key_file.chmod(0o644)
    code = main(
        ["key", "import", "--keystore", str(tmp_path / "k.json"), "--key-file", str(key_file)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert KEY[2:] not in err
