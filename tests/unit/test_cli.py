"""The offline command line: output shape, and one clear line with exit 2 for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from arbx.chain.transport import describe
from arbx.cli import _log_settings, main

MAINNET = Path(__file__).parents[1] / "fixtures" / "mainnet"
V3 = MAINNET / "v3_wbtc_weth_24407242.json"
FOUR_HOP = MAINNET / "v2_triangular_arb_11117996.json"
WBTC_V2_V3 = MAINNET / "v2_v3_wbtc_weth_17600000.json"
WBTC = "0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_quote_prints_one_line_per_amount(capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(V3.read_text())
    wanted = [q for q in doc["quotes"] if q["token_in"] == WBTC][:4]
    args = ["quote", "--pool", str(V3), "--token-in", WBTC.lower()]
    for q in wanted:
        args += ["--amount-in" if q["kind"] == "exact_in" else "--amount-out", q["amount"]]
    code, out, _ = run(capsys, *args)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == len(wanted)
    exact_in = [q for q in wanted if q["kind"] == "exact_in"]
    exact_out = [q for q in wanted if q["kind"] == "exact_out"]
    for line, q in zip(lines, exact_in + exact_out, strict=True):
        key = "amount_out" if q["kind"] == "exact_in" else "amount_in"
        assert line[key] == q["quoter_result"]
        assert line["partial"] is q["hits_price_limit"]


def test_quote_partial_fill(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "quote", "--pool", str(V3), "--token-in", WBTC, "--amount-in", str(2**255 - 1)
    )
    assert code == 0
    line = json.loads(out)
    assert line["partial"] is True
    assert int(line["amount_in"]) < 2**255 - 1
    assert line["amount_out"] == "19248224039924241030561"


def test_quote_v2_pool_by_address(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "quote",
        "--pool",
        str(FOUR_HOP),
        "--address",
        "0x9c5999653F44672336C2ef0A0008587fA8b9957E",
        "--token-in",
        WETH,
        "--amount-in",
        "1208215735907924548",
    )
    assert code == 0
    assert json.loads(out) == {
        "amount_in": "1208215735907924548",
        "amount_out": "19481473723990379437343",
        "partial": False,
    }


def test_arb_four_hop(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "arb", "--pools", str(FOUR_HOP), "--max-hops", "4", "--gas-price", "0"
    )
    assert code == 0
    found = json.loads(out)
    assert len(found) == 1
    best = found[0]
    assert int(best["profit"]) >= 10151440486718436
    assert best["net_profit"] == best["profit"]
    assert int(best["amount_out"]) - int(best["amount_in"]) == int(best["profit"])
    assert len(best["pools"]) == 4
    assert best["tokens"][0] == best["tokens"][-1] == WETH


def test_arb_gas_and_builder_reduce_net(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "arb",
        "--pools",
        str(FOUR_HOP),
        "--gas-price",
        "1000000000",
        "--builder-share-bps",
        "5000",
    )
    assert code == 0
    best = json.loads(out)[0]
    gross, gas, builder = int(best["profit"]), int(best["gas_cost"]), int(best["builder_payment"])
    assert gas == best["gas_units"] * 10**9
    assert builder == gross // 2  # a share of the gross profit, as the executor pays it
    assert int(best["net_profit"]) == gross - gas - builder


def test_arb_finds_nothing_between_v2_and_v3(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "arb", "--pools", str(WBTC_V2_V3), "--gas-price", "0")
    assert code == 0
    assert json.loads(out) == []


def test_arb_max_input_caps(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "arb", "--pools", str(FOUR_HOP), "--gas-price", "0", "--max-input", str(10**17)
    )
    assert code == 0
    best = json.loads(out)[0]
    assert int(best["amount_in"]) <= 10**17


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pools.json"
    path.write_text(text)
    return path


def _v2(**override: object) -> dict[str, object]:
    pool: dict[str, object] = {
        "family": "uniswap_v2",
        "address": "0x9c5999653F44672336C2ef0A0008587fA8b9957E",
        "token0": {"address": "0x0E29e5AbbB5FD88e28b2d355774e73BD47dE3bcd"},
        "token1": {"address": WETH},
        "reserve0": "1000",
        "reserve1": "1000",
    }
    pool.update(override)
    return pool


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "no pools"),
        (json.dumps(_v2(reserve0="0")), "zero reserve"),
        (json.dumps(_v2(family="curve")), "unknown pool family"),
        (json.dumps(_v2(address="0x1234")), "not a 20-byte hex address"),
        (json.dumps(_v2(reserve1="12abc")), "not a whole number"),
        (json.dumps(_v2(reserve1=str(2**112))), "out of range"),
        (json.dumps(_v2(token0={"address": WETH}, token1={"address": WETH})), "sort below"),
        (json.dumps([_v2(), _v2()]), "appears twice"),
        (json.dumps({"pool": {"family": "uniswap_v3"}}), "missing 'address'"),
    ],
)
def test_bad_pool_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = _write(tmp_path, content)
    code, out, err = run(capsys, "arb", "--pools", str(path))
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["quote", "--pool", str(V3), "--token-in", WBTC, "--amount-in", str(2**256)], "2^256-1"),
        (["quote", "--pool", str(V3), "--token-in", WBTC, "--amount-in", "-5"], "whole number"),
        (["quote", "--pool", str(V3), "--token-in", WBTC, "--amount-in", "1.5"], "whole number"),
        (
            ["quote", "--pool", str(V3), "--token-in", "0x" + "12" * 20, "--amount-in", "1"],
            "is not in pool",
        ),
        (["quote", "--pool", str(V3), "--token-in", "WETH", "--amount-in", "1"], "hex address"),
        (["quote", "--pool", str(V3), "--token-in", WBTC], "at least one"),
        (
            ["quote", "--pool", "/nonexistent/pools.json", "--token-in", WBTC, "--amount-in", "1"],
            "cannot read",
        ),
        (["quote", "--pool", str(FOUR_HOP), "--token-in", WETH, "--amount-in", "1"], "--address"),
        (
            [
                "quote",
                "--pool",
                str(FOUR_HOP),
                "--address",
                "0x9c5999653F44672336C2ef0A0008587fA8b9957E",
                "--token-in",
                WETH,
                "--amount-out",
                str(10**30),
            ],
            "cannot",
        ),
        (["arb", "--pools", str(FOUR_HOP), "--base", "0x" + "12" * 20], "in no pool"),
        (["arb", "--pools", str(FOUR_HOP), "--max-hops", "1"], "at least 2"),
        (["arb", "--pools", str(FOUR_HOP), "--gas-price", "lots"], "non-negative integer"),
        (["frobnicate"], "invalid choice"),
        (["devnet", "serve", "--competitors", "9"], "not a number of competitors (0..8)"),
        (["devnet", "up", "--competitors", "two"], "not a number of competitors"),
        (["run", "--competitors", "9"], "--competitors 9: at most 8"),
    ],
)
def test_bad_arguments(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code: int | str | None
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own errors leave through SystemExit
        code = exc.code
    assert code == 2
    _, err = capsys.readouterr()
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_console_script_exit_code_and_no_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, "{broken")
    proc = subprocess.run(
        [sys.executable, "-m", "arbx.cli", "arb", "--pools", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("arbx: error:")


@pytest.mark.parametrize(
    ("command", "environ", "level"),
    [
        ("executor", {}, "WARNING"),  # one-shot commands print their answer, log only warnings
        ("report", {}, "WARNING"),
        ("executor", {"ARBX_LOG__LEVEL": "info"}, "INFO"),  # unless a level is set
        ("run", {}, "INFO"),  # services log what they do
        ("api", {}, "INFO"),
    ],
)
def test_log_level_by_command(
    monkeypatch: pytest.MonkeyPatch, command: str, environ: dict[str, str], level: str
) -> None:
    monkeypatch.delenv("ARBX_LOG__LEVEL", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert _log_settings(None, command).level == level


def test_connection_failures_read_as_one_short_line() -> None:
    error = OSError(111, "Connect call failed ('127.0.0.1', 47361)\n  more")
    text = describe(error)
    assert text.startswith("ConnectionRefusedError: [Errno 111] Connect call failed")
    assert "\n" not in text
    assert len(describe(OSError("x" * 1000))) <= 220
