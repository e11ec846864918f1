"""``make contracts``: rebuild the compiled contracts that ship with the package.

PoolLens (``chain/pool_lens.json``) and the executor (``execution/arb_executor.json``) are
compiled here with the pinned npm ``solc`` and written into the package, so that a run needs no
Node, npm or compiler. The tests compare each shipped file with a fresh compile, so a change to a
source that is not rebuilt here fails CI, and so does a compiler whose output drifts.
"""

import json
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

from arbx.devnet.artifacts import project_root
from arbx.devnet.solc import (
    SETTINGS,
    SOLC_VERSION,
    compile_sources,
    compile_standard_json,
    contracts_dir,
)
from arbx.domain.errors import ConfigError
from arbx.execution import contract as executor

SHIPPED = {
    # contract name: (source under contracts/, shipped file under the repository root)
    "PoolLens": ("lens/PoolLens.sol", "src/arbx/chain/pool_lens.json"),
}
EXECUTOR_TARGET = "src/arbx/execution/" + executor.ARTIFACT


def executor_source() -> Path:
    """``<repo>/contracts/ArbExecutor.sol``."""
    return contracts_dir() / executor.SOURCE_UNIT


def compile_executor(*, fresh: bool = False) -> executor.ExecutorBuild:
    """Compile the executor with its own settings (from the build cache unless ``fresh``)."""
    path = executor_source()
    if not path.is_file():
        raise ConfigError(f"executor source not found at {path}")
    source = path.read_text(encoding="utf-8")
    standard = {
        "language": "Solidity",
        "sources": {executor.SOURCE_UNIT: {"content": source}},
        "settings": executor.SETTINGS,
    }
    output = compile_standard_json(standard, fresh=fresh)
    compiled = output[executor.SOURCE_UNIT][executor.CONTRACT_NAME]
    runtime = compiled["evm"]["deployedBytecode"]
    immutables = sorted(
        (ref["start"], ref["length"])
        for refs in runtime.get("immutableReferences", {}).values()
        for ref in refs
    )
    return executor.ExecutorBuild(
        source_keccak="0x" + keccak(source.encode()).hex(),
        compiler_version=SOLC_VERSION,
        abi=compiled["abi"],
        bytecode=bytes.fromhex(compiled["evm"]["bytecode"]["object"]),
        runtime=bytes.fromhex(runtime["object"]),
        immutables=tuple(immutables),
    )


def write_json(path: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as the shipped files are written (sorted keys, one space indent)."""
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def build() -> list[Path]:
    """Compile every shipped contract and write its file; the paths written."""
    written = []
    for name, (source, target) in SHIPPED.items():
        text = (contracts_dir() / source).read_text(encoding="utf-8")
        artifact = compile_sources({source: text})[name]
        record = {
            "contract": name,
            "source": f"contracts/{source}",
            "compiler": f"solc-js {SOLC_VERSION}",
            "settings": {k: v for k, v in SETTINGS.items() if k != "outputSelection"},
            "bytecode": artifact.bytecode.hex(),
        }
        written.append(write_json(project_root() / target, record))
    record = executor.record_of(compile_executor(fresh=True))
    written.append(write_json(project_root() / EXECUTOR_TARGET, record))
    return written


if __name__ == "__main__":
    for path in build():
        print(f"wrote {path}")
