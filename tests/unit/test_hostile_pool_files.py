"""Hostile pool files: ``arbx arb`` and ``arbx quote`` answer one line on stderr and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from arbx.cli import main, offline

WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
OTHER = "0x0E29e5AbbB5FD88e28b2d355774e73BD47dE3bcd"
DEEP = b'{"pools":' + b"[" * 100_000


def v2(**override: object) -> dict[str, object]:
    pool: dict[str, object] = {
        "family": "uniswap_v2",
        "address": "0x9c5999653F44672336C2ef0A0008587fA8b9957E",
        "token0": {"address": OTHER},
        "token1": {"address": WETH},
        "reserve0": "1000",
        "reserve1": "1000",
    }
    pool.update(override)
    return pool


def v3(**override: object) -> dict[str, object]:
    pool: dict[str, object] = {
        "family": "uniswap_v3",
        "address": "0xCBCdF9626bC03E24f779434178A73a0B4bad62eD",
        "token0": OTHER,
        "token1": WETH,
        "fee": 3000,
        "sqrt_price_x96": str(2**96),
        "tick": 0,
        "liquidity": "1000000",
        "ticks": {},
    }
    pool.update(override)
    return pool


def commands(path: Path) -> list[list[str]]:
    return [
        ["arb", "--pools", str(path)],
        ["quote", "--pool", str(path), "--token-in", WETH, "--amount-in", "1000"],
    ]


@pytest.mark.parametrize("content", [DEEP, b"[" * 100_000, b'{"a":' * 50_000])
def test_deeply_nested_files_end_with_one_line_not_a_crash(tmp_path: Path, content: bytes) -> None:
    # A real process: py_ecc's recursion limit is in force, and a crash would be a signal.
    path = tmp_path / "deep.json"
    path.write_bytes(content)
    for args in commands(path):
        proc = subprocess.run(
            [sys.executable, "-m", "arbx.cli", *args], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        assert proc.stderr.startswith("arbx: error:")
        assert "nested deeper than 1024" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (json.dumps(v2(reserve0="²")).encode(), "not a whole number"),
        (json.dumps(v2(reserve0="١٢")).encode(), "not a whole number"),
        (json.dumps(v2(reserve0="1_000")).encode(), "not a whole number"),
        (json.dumps(v2(reserve0="9" * 5000)).encode(), "not a whole number"),
        (json.dumps(v2(reserve0="9" * 80)).encode(), "out of range"),
        (b'{"pool":{"reserve0":' + b"9" * 5000 + b"}}", "not valid JSON"),
        (json.dumps(v2(reserve0=10**200)).encode(), "out of range"),
        (json.dumps(v2(reserve0=1.5)).encode(), "must be an integer"),
        (json.dumps(v2(reserve0=True)).encode(), "must be an integer"),
        (json.dumps(v2(reserve0=[1])).encode(), "must be an integer"),
        (json.dumps(v2(token0=7)).encode(), "missing 'token0'"),
        (json.dumps(v2(address=["0x"])).encode(), "not a 20-byte hex address"),
        (json.dumps({"pools": {"a": 1}}).encode(), "must be a list"),
        (json.dumps([1, 2]).encode(), "expected an object"),
        (json.dumps(v3(fee=2500)).encode(), "not a standard tier"),
        (json.dumps(v3(ticks={"²": {"liquidity_net": "1"}})).encode(), "not an integer"),
        (json.dumps(v3(ticks={"9" * 5000: {"liquidity_net": "1"}})).encode(), "not an integer"),
        (json.dumps(v3(ticks={"60": {"liquidity_net": "1e5"}})).encode(), "not a whole number"),
        (json.dumps(v3(ticks=[])).encode(), "'ticks' must be an object"),
        (b'{"pool": NaN}', "not valid JSON"),
        (b'{"pool": {"reserve0": Infinity}}', "not valid JSON"),
        (b'{"pool": "\xff\xfe"}', "UTF-8"),
        (b"\x00\x01\x02", "not valid JSON"),
    ],
)
def test_hostile_values_get_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "pools.json"
    path.write_bytes(content)
    for args in commands(path):
        code = main(args)
        out, err = capsys.readouterr()
        assert code == 2
        assert out == ""
        assert message in err, err
        assert len(err.strip().splitlines()) == 1


def test_an_oversize_file_is_refused_before_it_is_read_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offline, "MAX_POOL_FILE_BYTES", 1000)
    path = tmp_path / "big.json"
    path.write_text(json.dumps([v2(symbol="x" * 2000)]))
    assert main(["arb", "--pools", str(path)]) == 2
    assert "is over 1000 bytes" in capsys.readouterr().err
    assert main(["arb", "--pools", "/dev/zero"]) == 2  # endless: read only up to the cap
    assert "is over 1000 bytes" in capsys.readouterr().err
    assert main(["arb", "--pools", str(tmp_path)]) == 2  # a directory
    assert "cannot read" in capsys.readouterr().err


FOUR_HOP = Path(__file__).parents[1] / "fixtures" / "mainnet" / "v2_triangular_arb_11117996.json"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--amount-in", "²", "not a whole number"),
        ("--amount-in", "١٢", "not a whole number"),  # Arabic-Indic digits: int() reads them
        ("--amount-in", "1" * 5000, "outside 1 .. 2^256-1"),
        ("--max-hops", "١٢", "not a non-negative integer"),
        ("--gas-price", "9" * 5000, "not a non-negative integer"),
    ],
)
def test_hostile_numbers_on_the_command_line(
    capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    if option == "--amount-in":
        args = ["quote", "--pool", str(FOUR_HOP), "--token-in", WETH, option, value]
    else:
        args = ["arb", "--pools", str(FOUR_HOP), option, value]
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert len(err) < 400


@pytest.mark.parametrize("value", ["²", "١٢"])
def test_hostile_limits_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ARBX_DATABASE_URL", f"sqlite:///{tmp_path / 'arbx.db'}")
    assert main(["limits", "set", "--max-input", f"{WETH}={value}"]) == 2
    err = capsys.readouterr().err
    assert "expected TOKEN=AMOUNT (a whole number)" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exited:
        main(["api", "--port", "١٢٣٤"])
    assert exited.value.code == 2
    assert "is not a port" in capsys.readouterr().err
