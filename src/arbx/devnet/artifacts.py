"""The real compiled Uniswap contracts, loaded from the npm packages in ``node_modules``.

Two formats are shipped: the V2 packages' waffle builds (``bytecode`` as hex without ``0x``, and
``evm.bytecode.object``) and the V3 packages' hardhat artifacts (``bytecode`` with ``0x``). Both
become an :class:`Artifact` with the ABI and the creation bytecode.
"""

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from arbx.domain.errors import ConfigError

NODE_MODULES_ENV = "ARBX_NODE_MODULES"

# Contract name -> file under node_modules. Other names are looked up in the same packages.
_KNOWN: dict[str, str] = {
    "WETH9": "@uniswap/v2-periphery/build/WETH9.json",
    "UniswapV2Factory": "@uniswap/v2-core/build/UniswapV2Factory.json",
    "UniswapV2Pair": "@uniswap/v2-core/build/UniswapV2Pair.json",
    "UniswapV2Router02": "@uniswap/v2-periphery/build/UniswapV2Router02.json",
    "UniswapV3Factory": (
        "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json"
    ),
    "UniswapV3Pool": "@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json",
    "NonfungiblePositionManager": (
        "@uniswap/v3-periphery/artifacts/contracts/"
        "NonfungiblePositionManager.sol/NonfungiblePositionManager.json"
    ),
    "QuoterV2": "@uniswap/v3-periphery/artifacts/contracts/lens/QuoterV2.sol/QuoterV2.json",
    "SwapRouter": "@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json",
}
_SEARCH_DIRS = (
    "@uniswap/v2-core/build",
    "@uniswap/v2-periphery/build",
    "@uniswap/v3-core/artifacts/contracts",
    "@uniswap/v3-periphery/artifacts/contracts",
)


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: its name, ABI and creation bytecode."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes


def project_root() -> Path:
    """The repository root: the nearest folder above this file (or the cwd) with pyproject.toml."""
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "pyproject.toml").is_file() and (folder / "package.json").is_file():
                return folder
    return Path.cwd().resolve()


def node_modules_dir() -> Path:
    """Where the npm packages are: ``$ARBX_NODE_MODULES`` or ``<repo>/node_modules``."""
    override = os.environ.get(NODE_MODULES_ENV)
    folder = Path(override) if override else project_root() / "node_modules"
    if not folder.is_dir():
        raise ConfigError(f"no node_modules at {folder}: run `make setup`")
    return folder


def _artifact_path(name: str, node_modules: Path) -> Path:
    known = _KNOWN.get(name)
    if known is not None:
        return node_modules / known
    for folder in _SEARCH_DIRS:
        base = node_modules / folder
        direct = base / f"{name}.json"
        if direct.is_file():
            return direct
        found = sorted(base.glob(f"**/{name}.sol/{name}.json")) if base.is_dir() else []
        if found:
            return found[0]
    raise ConfigError(f"no compiled artifact named {name!r} under {node_modules}/@uniswap")


def parse_artifact(name: str, data: dict[str, Any]) -> Artifact:
    """Read a waffle build or a hardhat artifact into an :class:`Artifact`."""
    if data.get("linkReferences"):
        raise ConfigError(f"artifact {name!r} needs library linking, which is not supported")
    raw = data.get("bytecode")
    if not isinstance(raw, str) or not raw.removeprefix("0x"):
        raw = data.get("evm", {}).get("bytecode", {}).get("object", "")
    code = raw.removeprefix("0x") if isinstance(raw, str) else ""
    if not code or "__" in code:
        raise ConfigError(f"artifact {name!r} has no deployable bytecode")
    abi = data["abi"]
    if isinstance(abi, str):  # some builds store the ABI as a JSON string
        abi = json.loads(abi)
    return Artifact(name=name, abi=abi, bytecode=bytes.fromhex(code))


@cache
def load_artifact(name: str, node_modules: Path | None = None) -> Artifact:
    """The real compiled contract ``name`` (e.g. ``"UniswapV3Pool"``) from the npm packages."""
    folder = node_modules if node_modules is not None else node_modules_dir()
    path = _artifact_path(name, folder)
    if not path.is_file():
        raise ConfigError(f"artifact {name!r} not found at {path}: run `make setup`")
    with path.open(encoding="utf-8") as handle:
        return parse_artifact(name, json.load(handle))
