"""Compile our own Solidity with the npm ``solc`` package (solc-js), reproducibly, with a cache.

The compiler runs in node as ``require("solc").compile(input)`` (the CLI prints notes before its
JSON). Settings are fixed
(optimizer on, 200 runs, EVM ``cancun``, no metadata hash or CBOR trailer), so the same sources give
the same bytecode on every machine. Outputs are cached under ``build/contracts/`` by a hash of the
compiler version and the whole standard-JSON input.
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from arbx.devnet.artifacts import Artifact, node_modules_dir, project_root
from arbx.domain.errors import ConfigError
from arbx.scrub import child_environ

SOLC_VERSION = "0.8.37"
# Reads the standard-JSON input on stdin, writes the output on stdout; argv[1] is the solc package.
_NODE_SCRIPT = (
    "const solc = require(process.argv[1]); let input = '';"
    "process.stdin.on('data', (chunk) => { input += chunk; });"
    "process.stdin.on('end', () => { process.stdout.write(solc.compile(input)); });"
)
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "none", "appendCBOR": False},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
}


def build_dir() -> Path:
    """Where compiler outputs are cached: ``<repo>/build/contracts``."""
    return project_root() / "build" / "contracts"


def installed_solc_version(node_modules: Path | None = None) -> str:
    """The version of the npm ``solc`` package in ``node_modules``."""
    folder = node_modules if node_modules is not None else node_modules_dir()
    manifest = folder / "solc" / "package.json"
    if not manifest.is_file():
        raise ConfigError(f"npm package solc not found at {manifest.parent}: run `make setup`")
    version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    if not isinstance(version, str):
        raise ConfigError(f"{manifest} has no version: run `make setup`")
    return version


def standard_json_input(sources: Mapping[str, str]) -> dict[str, Any]:
    """The standard-JSON input for ``sources`` (unit name -> source text)."""
    return {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sorted(sources.items())},
        "settings": SETTINGS,
    }


def _run_solc(payload: str, node_modules: Path) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        raise ConfigError("node is not on PATH: it runs the npm solc compiler")
    completed = subprocess.run(
        [node, "-e", _NODE_SCRIPT, str(node_modules / "solc")],
        input=payload.encode(),
        capture_output=True,
        check=False,
        timeout=600,
        env=child_environ(os.environ),
    )
    if completed.returncode != 0:
        raise ConfigError(f"solc-js failed: {completed.stderr.decode(errors='replace').strip()}")
    output: dict[str, Any] = json.loads(completed.stdout)
    return output


def _raise_errors(output: dict[str, Any]) -> None:
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        text = "\n".join(str(e.get("formattedMessage", e.get("message"))) for e in errors)
        raise ConfigError(f"solidity compilation failed:\n{text}")


def _collect(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    _raise_errors(output)
    contracts: dict[str, dict[str, Any]] = {}
    for unit, by_name in output.get("contracts", {}).items():
        for name, compiled in by_name.items():
            if name in contracts:
                raise ConfigError(f"two contracts named {name!r} (second in {unit})")
            contracts[name] = {
                "abi": compiled["abi"],
                "bytecode": compiled["evm"]["bytecode"]["object"],
            }
    return contracts


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    Path(temporary).replace(path)


def compile_sources(
    sources: Mapping[str, str], *, cache_dir: Path | None = None
) -> dict[str, Artifact]:
    """Compile ``sources`` (unit name -> text) with solc-js; every contract by name, cached."""
    modules = node_modules_dir()
    version = installed_solc_version(modules)
    if version != SOLC_VERSION:
        raise ConfigError(f"npm solc is {version}, expected {SOLC_VERSION}: run `make setup`")
    payload = json.dumps(standard_json_input(sources), sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(f"solc-js {version}\n{payload}".encode()).hexdigest()[:24]
    cached = (cache_dir if cache_dir is not None else build_dir()) / f"{key}.json"
    if cached.is_file():
        contracts = json.loads(cached.read_text(encoding="utf-8"))
    else:
        contracts = _collect(_run_solc(payload, modules))
        _write_atomically(cached, json.dumps(contracts, sort_keys=True))
    return {
        name: Artifact(name=name, abi=data["abi"], bytecode=bytes.fromhex(data["bytecode"]))
        for name, data in contracts.items()
        if data["bytecode"]  # interfaces have none
    }


def compile_standard_json(
    input_json: Mapping[str, Any], *, cache_dir: Path | None = None, fresh: bool = False
) -> dict[str, Any]:
    """The ``contracts`` part of solc-js's output for a whole standard-JSON input, cached.

    For contracts built with their own settings (the executor). ``fresh`` compiles even when a
    cached output exists (and does not write one): a reproducibility check needs a real compile.
    """
    modules = node_modules_dir()
    version = installed_solc_version(modules)
    if version != SOLC_VERSION:
        raise ConfigError(f"npm solc is {version}, expected {SOLC_VERSION}: run `make setup`")
    payload = json.dumps(input_json, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(f"solc-js {version}\n{payload}".encode()).hexdigest()[:24]
    cached = (cache_dir if cache_dir is not None else build_dir()) / f"{key}.json"
    if cached.is_file() and not fresh:
        contracts: dict[str, Any] = json.loads(cached.read_text(encoding="utf-8"))
        return contracts
    output = _run_solc(payload, modules)
    _raise_errors(output)
    contracts = output.get("contracts", {})
    if not fresh:
        _write_atomically(cached, json.dumps(contracts, sort_keys=True))
    return contracts


def contracts_dir() -> Path:
    """Our Solidity sources: ``<repo>/contracts``."""
    return project_root() / "contracts"


@cache
def test_contracts() -> dict[str, Artifact]:
    """``contracts/test/*.sol`` compiled: TestToken, V2Probe, V3SwapProbe."""
    root = contracts_dir()
    files = sorted((root / "test").glob("*.sol"))
    if not files:
        raise ConfigError(f"no Solidity sources in {root / 'test'}")
    sources = {f.relative_to(root).as_posix(): f.read_text(encoding="utf-8") for f in files}
    return compile_sources(sources)


def load_test_contract(name: str) -> Artifact:
    """One of our test contracts by name, e.g. ``"TestToken"``."""
    compiled = test_contracts()
    if name not in compiled:
        raise ConfigError(f"no contract {name!r} in contracts/test (have {sorted(compiled)})")
    return compiled[name]
