"""Settings from TOML and ARBX_ variables; bad ones give one clear ConfigError."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from arbx.config import load_settings
from arbx.domain.errors import ConfigError

WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
GOOD = f"""
mode = "shadow"
database_url = "sqlite:///./data/test.db"
[chain]
id = 1
rpc = ["http://127.0.0.1:8545", "http://127.0.0.1:8546"]
multicall = "0x1f98415757620b543a52e61c46b32eb19261f984"
[[venues]]
name = "uniswap_v2"
kind = "uniswap_v2"
factory = "0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f"
init_code_hash = "0x96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"
[[venues]]
name = "uniswap_v3"
kind = "uniswap_v3"
factory = "0x1F98431c8aD98523631AE4a59f267346ea31F984"
[strategy]
base_tokens = ["{WETH.lower()}"]
max_hops = 3
max_input = {{ "{WETH}" = 100000000000000000000 }}
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ARBX_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "arbx.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_embedded_devnet() -> None:
    settings = load_settings()
    assert settings.embedded
    assert settings.mode == "shadow"
    assert settings.database_url == "sqlite:///./data/arbx.db"


def test_file_is_read_and_normalised(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))
    assert not settings.embedded
    assert settings.chain.multicall == "0x1F98415757620B543A52E61c46B32eB19261F984"
    assert settings.strategy.base_tokens == [WETH]
    assert settings.strategy.max_input == {WETH: 10**20}
    assert [v.kind for v in settings.venues] == ["uniswap_v2", "uniswap_v3"]


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBX_STRATEGY__MAX_HOPS", "4")
    monkeypatch.setenv("ARBX_CHAIN__RPC", "http://10.0.0.1:8545, http://10.0.0.2:8545")
    monkeypatch.setenv("ARBX_DATABASE_URL", "postgresql://postgres@127.0.0.1/arbx")
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.strategy.max_hops == 4
    assert settings.chain.rpc == ["http://10.0.0.1:8545", "http://10.0.0.2:8545"]
    assert settings.database_url.startswith("postgresql://")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mode = 'yolo'", "mode"),
        ("[chain]\nrpc = ['ftp://x']", "chain.rpc"),
        ("[chain]\nrpc = ['http://x:1']", "at least one venue"),
        (GOOD.replace('kind = "uniswap_v2"', 'kind = "curve"'), "venues.0.kind"),
        (GOOD.replace("0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f", "0x123"), "venues.0.factory"),
        (GOOD.replace("max_hops = 3", "max_hops = 1"), "strategy.max_hops"),
        (GOOD + "\nsurprise = 1\n", "surprise"),
        ("this is = = not toml", "not valid TOML"),
    ],
)
def test_bad_settings(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_the_connector_bound_is_read_and_checked(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, GOOD)).strategy.connector_min_pairs is None
    bounded = GOOD.replace("max_hops = 3", "max_hops = 4\nconnector_min_pairs = 4")
    assert load_settings(write(tmp_path, bounded)).strategy.connector_min_pairs == 4
    with pytest.raises(ConfigError, match=r"strategy\.connector_min_pairs"):
        load_settings(write(tmp_path, GOOD.replace("max_hops = 3", "connector_min_pairs = 0")))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.toml")


def test_bad_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBX_STRATEGY__MAX_HOPS", "many")
    with pytest.raises(ConfigError, match="max_hops"):
        load_settings()


def test_the_public_mempool_setting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "arbx.toml"
    path.write_text(GOOD + "[execution]\npublic_mempool = true\n")
    with pytest.raises(ConfigError, match=r"execution\.public_mempool") as refused:
        load_settings(path)
    assert "\n" not in str(refused.value)


def test_arbx_settings_names_the_file_when_no_path_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARBX_SETTINGS", str(write(tmp_path, GOOD)))
    settings = load_settings()
    assert not settings.embedded
    assert settings.strategy.max_hops == 3
    # --config wins over the variable
    other = tmp_path / "other.toml"
    other.write_text('mode = "shadow"\n')
    assert load_settings(other).embedded


def test_arbx_settings_naming_no_file_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARBX_SETTINGS", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"cannot read settings file .*missing\.toml"):
        load_settings()
