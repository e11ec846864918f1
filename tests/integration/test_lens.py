"""The PoolLens shipped with the package is exactly what its source compiles to."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from arbx.chain.lens import lens_code
from arbx.devnet.solc import SOLC_VERSION, compile_sources, contracts_dir

pytestmark = pytest.mark.integration


def test_shipped_lens_matches_a_fresh_compile() -> None:
    source = (contracts_dir() / "lens" / "PoolLens.sol").read_text(encoding="utf-8")
    fresh = compile_sources({"lens/PoolLens.sol": source})["PoolLens"]
    shipped = json.loads(
        resources.files("arbx.chain").joinpath("pool_lens.json").read_text(encoding="utf-8")
    )
    assert shipped["compiler"] == f"solc-js {SOLC_VERSION}"
    assert fresh.bytecode == lens_code(), "rebuild src/arbx/chain/pool_lens.json (make contracts)"
