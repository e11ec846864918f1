"""The executor's build is reproducible and equals its checked-in lock file.

Any change to the source, the compiler, the settings, or an output that differs between two
compiles fails here until ``make contracts`` rewrites ``contracts/ArbExecutor.lock.json`` on
purpose. Needs node and the npm solc package, not anvil.
"""

import re
from pathlib import Path

import pytest

from arbx.devnet.solc import SOLC_VERSION, installed_solc_version
from arbx.domain.errors import ConfigError
from arbx.execution.contract import (
    SETTINGS,
    compile_executor,
    lock_drift,
    lock_of,
    read_lock,
    source_path,
    write_lock,
)

pytestmark = pytest.mark.integration


def test_a_fresh_compile_equals_the_lock_file() -> None:
    build = compile_executor(fresh=True)
    assert lock_drift(build, read_lock()) == []
    again = compile_executor(fresh=True)
    assert (again.bytecode, again.runtime) == (build.bytecode, build.runtime)


def test_the_lock_pins_compiler_settings_and_code() -> None:
    lock = read_lock()
    assert lock["compiler"]["version"] == SOLC_VERSION == installed_solc_version()
    assert lock["settings"] == SETTINGS
    assert lock["settings"]["optimizer"] == {"enabled": True, "runs": 10_000}
    assert lock["settings"]["evmVersion"] == "cancun"  # transient storage (EIP-1153)
    pragma = re.search(r"pragma solidity ([^;]+);", source_path().read_text(encoding="utf-8"))
    assert pragma is not None
    assert pragma.group(1) == SOLC_VERSION  # exact, not a range


def test_drift_names_every_field_that_changed(tmp_path: Path) -> None:
    build = compile_executor()
    lock = lock_of(build)
    lock["runtime_keccak256"] = "0x" + "00" * 32
    lock["settings"] = {**SETTINGS, "optimizer": {"enabled": True, "runs": 200}}
    drift = lock_drift(build, lock)
    assert [line.split(":")[0] for line in drift] == ["runtime_keccak256", "settings"]
    written = write_lock(build, tmp_path / "lock.json")
    assert lock_drift(build, read_lock(written)) == []
    with pytest.raises(ConfigError, match="make contracts"):
        read_lock(tmp_path / "missing.json")
