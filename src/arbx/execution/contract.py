"""The executor contract as shipped: ABI, creation and runtime code, loaded without a compiler.

``arb_executor.json`` in this package is the executor compiled from ``contracts/ArbExecutor.sol``
with the pinned npm ``solc`` and its own settings (optimizer at 10,000 runs, EVM ``cancun`` for
transient storage, no metadata trailer). It records the compiler, the settings, the source's
keccak256 and the keccak256 of both codes, so a run needs no Node, npm or solc. ``make contracts``
rewrites it (``arbx.devnet.build_contracts``), and a test recompiles the source and compares every
field, so a source edit that is not rebuilt fails CI. :func:`locked_build` refuses a file whose
code does not match its own recorded hashes; :func:`runtime_matches` checks code already on chain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eth_abi.abi import decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from arbx.domain.errors import ConfigError

CONTRACT_NAME = "ArbExecutor"
SOURCE_UNIT = "ArbExecutor.sol"
ARTIFACT = "arb_executor.json"
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
    compiler_version: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    runtime: bytes
    immutables: tuple[tuple[int, int], ...]  # (start, length) in the runtime code


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def record_of(build: ExecutorBuild) -> dict[str, Any]:
    """The shipped file's content for ``build`` (JSON-ready)."""
    return {
        "contract": CONTRACT_NAME,
        "source": f"contracts/{SOURCE_UNIT}",
        "source_keccak256": build.source_keccak,
        "compiler": {"npm": "solc", "version": build.compiler_version},
        "settings": SETTINGS,
        "abi": build.abi,
        "bytecode": _hex(build.bytecode),
        "runtime": _hex(build.runtime),
        "immutables": [list(pair) for pair in build.immutables],
        "creation_keccak256": _hex(keccak(build.bytecode)),
        "runtime_keccak256": _hex(keccak(build.runtime)),
        "runtime_size": len(build.runtime),
    }


def build_of(record: dict[str, Any]) -> ExecutorBuild:
    """The build a shipped record describes; ConfigError when its code fails its own hashes."""
    try:
        build = ExecutorBuild(
            source_keccak=str(record["source_keccak256"]),
            compiler_version=str(record["compiler"]["version"]),
            abi=list(record["abi"]),
            bytecode=bytes.fromhex(str(record["bytecode"]).removeprefix("0x")),
            runtime=bytes.fromhex(str(record["runtime"]).removeprefix("0x")),
            immutables=tuple((int(a), int(b)) for a, b in record["immutables"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"the shipped {ARTIFACT} is malformed: {exc!r}") from None
    drift = drift_of(build, record)
    if drift:
        raise ConfigError(f"the shipped {ARTIFACT} is inconsistent: " + "; ".join(drift))
    return build


def drift_of(build: ExecutorBuild, record: dict[str, Any]) -> list[str]:
    """Each field where ``build`` differs from a shipped ``record`` (empty when they agree)."""
    fresh = record_of(build)
    return [
        f"{key}: shipped {_short(record.get(key))}, built {_short(fresh[key])}"
        for key in sorted(fresh)
        if record.get(key) != fresh[key]
    ]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def shipped_record() -> dict[str, Any]:
    """The content of the shipped ``arb_executor.json``."""
    try:
        text = resources.files("arbx.execution").joinpath(ARTIFACT).read_text(encoding="utf-8")
        record: dict[str, Any] = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the shipped {ARTIFACT}: {exc}") from None
    return record


@cache
def locked_build() -> ExecutorBuild:
    """The shipped executor build, checked against its own recorded hashes."""
    return build_of(shipped_record())


def runtime_matches(code: bytes, build: ExecutorBuild | None = None) -> bool:
    """True if deployed ``code`` is the shipped runtime code (immutables aside)."""
    expected = build if build is not None else locked_build()
    if len(code) != len(expected.runtime):
        return False
    masked = bytearray(code)
    for start, length in expected.immutables:
        masked[start : start + length] = expected.runtime[start : start + length]
    return bytes(masked) == expected.runtime


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
