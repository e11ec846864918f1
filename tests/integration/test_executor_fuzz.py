"""The executor's property tests (contracts/fuzz) under Foundry's forge, offline, with the npm
solc behind contracts/fuzz/solc: random routes through real Uniswap V2 pairs, V3 pools and fake
pools must never take a token the executor holds, must keep the minimum and pay the coinbase its
exact share on success, and change nothing on failure. ``ARBX_FUZZ_RUNS`` sets the runs per
property (256).
"""

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

from arbx.devnet.artifacts import node_modules_dir, project_root

pytestmark = pytest.mark.integration

PROPERTIES = (
    "test_aProfitableRoutePaysTheOwnerAndTheBuilder",
    "testFuzz_heldTokensNeverLeave",
    "testFuzz_realRoutesKeepTheirMinimum",
    "testFuzz_batchesKeepHeldTokens",
    "testFuzz_callbacksFromOutsideRevert",
)


def find_forge() -> Path:
    """The forge binary of ``@foundry-rs/forge`` for this platform."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    path = node_modules_dir() / "@foundry-rs" / f"forge-{sys.platform}-{arch}" / "bin" / "forge"
    assert path.is_file(), f"no forge at {path}: run `make setup`"
    return path


def test_executor_properties_hold_under_fuzzing() -> None:
    runs = int(os.environ.get("ARBX_FUZZ_RUNS", "256"))
    root = project_root() / "contracts"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOUNDRY_")}
    done = subprocess.run(
        [str(find_forge()), "test", "--offline", "--fuzz-runs", str(runs)],
        cwd=root,  # foundry.toml's paths, the compiler's among them, are relative to it
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    for name in PROPERTIES:
        line = next((x for x in output.splitlines() if f"] {name}(" in x), "")
        assert line.startswith("[PASS]"), f"{name}: {line or 'not run'}\n{output[-4000:]}"
        if name.startswith("testFuzz"):
            assert re.search(rf"\(runs: {runs}\b", line), line
    assert f"{len(PROPERTIES)} passed; 0 failed" in output
