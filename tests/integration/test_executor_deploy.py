"""``arbx executor deploy`` on anvil, run the way a production image runs it: no Node, no solc.

The command runs as a subprocess whose PATH holds only the virtualenv (no ``node``) and whose
``node_modules`` is hidden (``ARBX_NODE_MODULES`` names a missing folder), so any compile or npm
lookup would fail it. The deployed code must be the shipped runtime, owned by the signing key.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from eth_abi.abi import decode
from eth_account import Account
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy import create_engine

from arbx.devnet.anvil import Anvil, free_port
from arbx.devnet.chain import DevChain
from arbx.devnet.deploy import UniswapDeployment
from arbx.execution.contract import locked_build, runtime_matches
from arbx.risk.signer_lock import SignerLock
from arbx.store import migrate

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent


def _without_node(tmp_path: Path, extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBX_")}
    env["PATH"] = str(VENV_BIN)
    env["ARBX_NODE_MODULES"] = str(tmp_path / "no-node-modules")
    env["ARBX_DATABASE_URL"] = f"sqlite:///{tmp_path / 'arbx.db'}"
    env.update(extra)
    assert shutil.which("node", path=env["PATH"]) is None
    assert shutil.which("solcjs", path=env["PATH"]) is None
    return env


def _arbx(env: Mapping[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "arbx"), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _funded_key(chain: DevChain, tmp_path: Path) -> tuple[ChecksumAddress, Path]:
    key = "0x" + secrets.token_hex(32)
    address = Account.from_key(key).address
    chain.w3.provider.make_request("anvil_setBalance", [address, hex(10**20)])  # type: ignore[arg-type]
    path = tmp_path / "signing.key"
    path.write_text(key + "\n")
    path.chmod(0o600)
    return address, path


def _getter(chain: DevChain, address: str, name: str) -> str:
    raw = chain.w3.eth.call({"to": address, "data": keccak(text=f"{name}()")[:4]})
    (value,) = decode(["address"], bytes(raw))
    return str(to_checksum_address(value))


def test_deploy_without_node_puts_the_shipped_executor_owned_by_the_key(
    anvil: Anvil, chain: DevChain, uniswap: UniswapDeployment, tmp_path: Path
) -> None:
    owner, key_file = _funded_key(chain, tmp_path)
    env = _without_node(tmp_path, {"ARBX_SIGNING_KEY_FILE": str(key_file)})
    done = _arbx(env, tmp_path, "executor", "deploy", "--rpc", anvil.url, "--weth", uniswap.weth9)
    assert done.returncode == 0, done.stderr
    address = to_checksum_address(done.stdout.strip())
    assert f'execution.executor = "{address}"' in done.stderr
    code = bytes(chain.w3.eth.get_code(address))
    assert runtime_matches(code)
    assert len(code) == len(locked_build().runtime)
    assert _getter(chain, address, "owner") == owner
    assert _getter(chain, address, "weth") == uniswap.weth9
    assert key_file.read_text().strip()[2:] not in done.stdout + done.stderr

    helped = _arbx(env, tmp_path, "run", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--max-blocks" in helped.stdout


def test_a_runtime_import_loads_no_devnet_module(tmp_path: Path) -> None:
    script = (
        "import importlib, pkgutil, sys, arbx\n"
        "skip = ('arbx.devnet', 'arbx.cli', 'arbx.store.migrations')\n"
        "todo = list(pkgutil.iter_modules(arbx.__path__, 'arbx.'))\n"
        "while todo:\n"
        "    info = todo.pop()\n"
        "    if info.name.startswith(skip):\n"
        "        continue\n"
        "    module = importlib.import_module(info.name)\n"
        "    if info.ispkg:\n"
        "        todo += pkgutil.iter_modules(module.__path__, info.name + '.')\n"
        "loaded = sorted(n for n in sys.modules if n.startswith('arbx.devnet'))\n"
        "print(len([n for n in sys.modules if n.startswith('arbx.')]), loaded)\n"
        "from arbx.execution.contract import locked_build\n"
        "assert locked_build().runtime\n"
    )
    env = _without_node(tmp_path, {})
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    count, loaded = done.stdout.split(" ", 1)
    assert int(count) > 50
    assert loaded.strip() == "[]"


def test_deploy_against_a_dead_rpc_is_one_line_and_exit_2(chain: DevChain, tmp_path: Path) -> None:
    _, key_file = _funded_key(chain, tmp_path)
    env = _without_node(tmp_path, {"ARBX_SIGNING_KEY_FILE": str(key_file)})
    dead = f"http://127.0.0.1:{free_port()}"
    done = _arbx(env, tmp_path, "executor", "deploy", "--rpc", dead, "--weth", "0x" + "11" * 20)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("arbx: error: ")
    assert "Traceback" not in done.stderr


def test_deploy_is_refused_while_another_process_holds_the_key(
    anvil: Anvil, chain: DevChain, tmp_path: Path
) -> None:
    owner, key_file = _funded_key(chain, tmp_path)
    env = _without_node(tmp_path, {"ARBX_SIGNING_KEY_FILE": str(key_file)})
    url = env["ARBX_DATABASE_URL"]
    migrate.upgrade(url)
    engine = create_engine(url)
    holder = SignerLock(engine, owner, holder_id="live-engine")
    try:
        assert holder.acquire() is None
        nonce = chain.w3.eth.get_transaction_count(owner)
        done = _arbx(env, tmp_path, "executor", "deploy", "--rpc", anvil.url, "--weth", owner)
        assert done.returncode == 2
        assert "the signing key is in use" in done.stderr
        assert "live-engine" in done.stderr
        assert chain.w3.eth.get_transaction_count(owner) == nonce  # nothing was signed
    finally:
        holder.release()
        engine.dispose()
