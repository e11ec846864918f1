"""The executor contract's build: compile ``contracts/ArbExecutor.sol``, check it against its lock.

The contract is compiled with the pinned npm ``solc`` and its own settings (optimizer at 10,000
runs, EVM ``cancun`` for transient storage, no metadata trailer). ``ArbExecutor.lock.json``, next
to the source, records the compiler version, the settings, the source's keccak256 and the
keccak256 of the creation and runtime bytecode. :func:`lock_drift` lists what a build changes, so
a source edit, a compiler or settings change, or a non-reproducible output fails CI until the lock
is rewritten on purpose (``make contracts``, i.e. ``python contracts/build.py --write``).
:func:`load_executor_artifact` refuses a build that does not match the lock, so only the locked
bytecode is ever deployed, and :func:`runtime_matches` checks code already on chain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi.abi import decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.contract import Contract

from arbx.devnet.artifacts import Artifact
from arbx.devnet.chain import DevChain
from arbx.devnet.solc import SOLC_VERSION, compile_standard_json, contracts_dir
from arbx.domain.errors import ConfigError

CONTRACT_NAME = "ArbExecutor"
SOURCE_UNIT = "ArbExecutor.sol"
LOCK_FILE = "ArbExecutor.lock.json"
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 10_000},
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "none", "appendCBOR": False},
    "outputSelection": {
        SOURCE_UNIT: {
            CONTRACT_NAME: [
                "abi",
                "evm.bytecode.object",
                "evm.deployedBytecode.object",
                "evm.deployedBytecode.immutableReferences",
            ]
        }
    },
}
ERROR_STRING = keccak(text="Error(string)")[:4]
PANIC_UINT = keccak(text="Panic(uint256)")[:4]


@dataclass(frozen=True)
class ExecutorBuild:
    """A compiled executor: ABI, creation and runtime code, and where immutables sit at runtime."""

    source_keccak: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    runtime: bytes
    immutables: tuple[tuple[int, int], ...]  # (start, length) in the runtime code

    @property
    def artifact(self) -> Artifact:
        """The build as a deployable :class:`Artifact`."""
        return Artifact(name=CONTRACT_NAME, abi=self.abi, bytecode=self.bytecode)


def source_path() -> Path:
    """``<repo>/contracts/ArbExecutor.sol``."""
    return contracts_dir() / SOURCE_UNIT


def lock_path() -> Path:
    """``<repo>/contracts/ArbExecutor.lock.json``."""
    return contracts_dir() / LOCK_FILE


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def compile_executor(*, fresh: bool = False) -> ExecutorBuild:
    """Compile the executor (from the build cache unless ``fresh``)."""
    path = source_path()
    if not path.is_file():
        raise ConfigError(f"executor source not found at {path}")
    source = path.read_text(encoding="utf-8")
    standard = {
        "language": "Solidity",
        "sources": {SOURCE_UNIT: {"content": source}},
        "settings": SETTINGS,
    }
    compiled = compile_standard_json(standard, fresh=fresh)[SOURCE_UNIT][CONTRACT_NAME]
    runtime = compiled["evm"]["deployedBytecode"]
    immutables = sorted(
        (ref["start"], ref["length"])
        for refs in runtime.get("immutableReferences", {}).values()
        for ref in refs
    )
    return ExecutorBuild(
        source_keccak=_hex(keccak(source.encode())),
        abi=compiled["abi"],
        bytecode=bytes.fromhex(compiled["evm"]["bytecode"]["object"]),
        runtime=bytes.fromhex(runtime["object"]),
        immutables=tuple(immutables),
    )


def lock_of(build: ExecutorBuild) -> dict[str, Any]:
    """The lock-file record of a build."""
    return {
        "contract": CONTRACT_NAME,
        "source": f"contracts/{SOURCE_UNIT}",
        "source_keccak256": build.source_keccak,
        "compiler": {"npm": "solc", "version": SOLC_VERSION},
        "settings": SETTINGS,
        "creation_keccak256": _hex(keccak(build.bytecode)),
        "runtime_keccak256": _hex(keccak(build.runtime)),
        "runtime_size": len(build.runtime),
    }


def read_lock(path: Path | None = None) -> dict[str, Any]:
    """The checked-in lock file."""
    where = path if path is not None else lock_path()
    if not where.is_file():
        raise ConfigError(f"no lock file at {where}: run `make contracts`")
    lock: dict[str, Any] = json.loads(where.read_text(encoding="utf-8"))
    return lock


def write_lock(build: ExecutorBuild, path: Path | None = None) -> Path:
    """Rewrite the lock file from ``build``; its path."""
    where = path if path is not None else lock_path()
    where.write_text(json.dumps(lock_of(build), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return where


def lock_drift(build: ExecutorBuild, lock: dict[str, Any]) -> list[str]:
    """Each field where ``build`` differs from ``lock`` (empty when they agree)."""
    fresh = lock_of(build)
    return [
        f"{key}: locked {lock.get(key)!r}, built {fresh[key]!r}"
        for key in sorted(fresh)
        if lock.get(key) != fresh[key]
    ]


@cache
def locked_build() -> ExecutorBuild:
    """The executor build, checked against the lock file; ConfigError on any drift."""
    build = compile_executor()
    drift = lock_drift(build, read_lock())
    if drift:
        raise ConfigError(
            f"{SOURCE_UNIT} does not match {LOCK_FILE} (run `make contracts` if the change is "
            "intended): " + "; ".join(drift)
        )
    return build


def load_executor_artifact() -> Artifact:
    """The executor's ABI and creation code, exactly as locked."""
    return locked_build().artifact


def runtime_matches(code: bytes, build: ExecutorBuild | None = None) -> bool:
    """True if deployed ``code`` is the locked runtime code (immutables aside)."""
    expected = build if build is not None else locked_build()
    if len(code) != len(expected.runtime):
        return False
    masked = bytearray(code)
    for start, length in expected.immutables:
        masked[start : start + length] = expected.runtime[start : start + length]
    return bytes(masked) == expected.runtime


def deploy_executor(chain: DevChain, weth: str) -> Contract:
    """Deploy the locked executor from the chain's sender (its owner) for ``weth``."""
    contract = chain.deploy(load_executor_artifact(), weth)
    code = bytes(chain.w3.eth.get_code(contract.address))
    if not runtime_matches(code):
        raise ConfigError(f"deployed executor at {contract.address} is not the locked code")
    return contract


def revert_reason(data: bytes, abi: list[dict[str, Any]] | None = None) -> str:
    """A readable revert: ``Error(string)``, ``Panic(code)`` or one of the executor's errors."""
    if data[:4] == ERROR_STRING:
        (message,) = decode(["string"], data[4:])
        return str(message)
    if data[:4] == PANIC_UINT:
        (code,) = decode(["uint256"], data[4:])
        return f"Panic({code:#x})"
    for item in abi if abi is not None else locked_build().abi:
        if item.get("type") != "error":
            continue
        types = [arg["type"] for arg in item.get("inputs", [])]
        if keccak(text=f"{item['name']}({','.join(types)})")[:4] == data[:4]:
            values = decode(types, data[4:]) if types else ()
            shown = (
                to_checksum_address(v) if t == "address" else str(v)
                for t, v in zip(types, values, strict=True)
            )
            return f"{item['name']}({', '.join(shown)})"
    return "0x" + data.hex() if data else "(no revert data)"
