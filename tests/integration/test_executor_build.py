"""The shipped executor (``execution/arb_executor.json``) is its Solidity source, compiled.

A fresh compile with the pinned npm solc must equal the shipped file in every field (source hash,
compiler, settings, ABI, creation and runtime code, immutables), and two compiles must agree: a
source edit, a compiler or settings change, or a non-reproducible output fails here until
``make contracts`` rewrites the file. Needs node and the npm solc package, not anvil.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from arbx.devnet.build_contracts import EXECUTOR_TARGET, compile_executor, executor_source
from arbx.devnet.solc import SOLC_VERSION, installed_solc_version
from arbx.domain.errors import ConfigError
from arbx.execution.contract import (
    SETTINGS,
    build_of,
    drift_of,
    locked_build,
    record_of,
    shipped_record,
)

pytestmark = pytest.mark.integration


def test_a_fresh_compile_equals_the_shipped_executor() -> None:
    build = compile_executor(fresh=True)
    assert drift_of(build, shipped_record()) == [], "rebuild the executor: make contracts"
    assert (build.bytecode, build.runtime) == (locked_build().bytecode, locked_build().runtime)
    again = compile_executor(fresh=True)
    assert (again.bytecode, again.runtime) == (build.bytecode, build.runtime)


def test_the_shipped_file_pins_compiler_settings_and_source() -> None:
    record = shipped_record()
    assert record["compiler"]["version"] == SOLC_VERSION == installed_solc_version()
    assert record["settings"] == SETTINGS
    assert record["settings"]["optimizer"] == {"enabled": True, "runs": 10_000}
    assert record["settings"]["evmVersion"] == "cancun"  # transient storage (EIP-1153)
    assert Path(EXECUTOR_TARGET).name == "arb_executor.json"
    pragma = re.search(r"pragma solidity ([^;]+);", executor_source().read_text(encoding="utf-8"))
    assert pragma is not None
    assert pragma.group(1) == SOLC_VERSION  # exact, not a range


def test_a_shipped_file_whose_code_fails_its_hashes_is_refused() -> None:
    record: dict[str, Any] = json.loads(json.dumps(shipped_record()))
    assert build_of(record).runtime == locked_build().runtime
    flipped = bytearray(locked_build().runtime)
    flipped[100] ^= 0xFF
    record["runtime"] = "0x" + flipped.hex()
    with pytest.raises(ConfigError, match="inconsistent: runtime"):
        build_of(record)
    del record["bytecode"]
    with pytest.raises(ConfigError, match="malformed"):
        build_of(record)


def test_drift_names_every_field_that_changed() -> None:
    build = locked_build()
    record = record_of(build)
    record["runtime_keccak256"] = "0x" + "00" * 32
    record["settings"] = {**SETTINGS, "optimizer": {"enabled": True, "runs": 200}}
    drift = drift_of(build, record)
    assert [line.split(":")[0] for line in drift] == ["runtime_keccak256", "settings"]
