"""Start and stop Foundry's anvil (npm package ``@foundry-rs/anvil``) on a loopback port."""

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from arbx.devnet.artifacts import node_modules_dir
from arbx.domain.errors import ConfigError
from arbx.errors import TransientError
from arbx.scrub import child_environ

DEFAULT_GAS_LIMIT = 1_000_000_000
_HOST = "127.0.0.1"
_PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class AnvilOptions:
    """How to run anvil: block time (None = mine on every transaction), limits, accounts."""

    block_time: float | None = None
    gas_limit: int = DEFAULT_GAS_LIMIT
    code_size_limit: int | None = None
    chain_id: int = 31337
    accounts: int = 10
    balance_ether: int = 10_000
    # keep at most this many states in memory and write none to disk: anvil otherwise saves
    # every block's state under ~/.foundry/anvil/tmp and never deletes it (tens of GB)
    prune_history: int = 64
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    host: str = _HOST  # the address anvil listens on (clients here still use loopback)
    port: int | None = None  # None: any free port

    def arguments(self, port: int) -> list[str]:
        """The command-line arguments for a node listening on ``port``."""
        args = [
            "--host", self.host,
            "--port", str(port),
            "--silent",
            "--chain-id", str(self.chain_id),
            "--accounts", str(self.accounts),
            "--balance", str(self.balance_ether),
            "--gas-limit", str(self.gas_limit),
            "--prune-history", str(self.prune_history),
        ]  # fmt: skip
        if self.block_time is not None:
            args += ["--block-time", str(self.block_time)]
        if self.code_size_limit is not None:
            args += ["--code-size-limit", str(self.code_size_limit)]
        return [*args, *self.extra_args]


def _platform_package() -> str:
    system = sys.platform  # "linux", "darwin", "win32": the npm package names use the same
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    return f"anvil-{system}-{arch}"


def find_anvil(node_modules: Path | None = None) -> Path:
    """The anvil binary shipped by ``@foundry-rs/anvil`` (or its ``.bin`` launcher)."""
    folder = node_modules if node_modules is not None else node_modules_dir()
    candidates = (
        folder / "@foundry-rs" / _platform_package() / "bin" / "anvil",
        folder / ".bin" / "anvil",
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"anvil not found under {folder} (@foundry-rs/anvil): run `make setup`")


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def rpc_chain_id(url: str, timeout: float = 1.0) -> int | None:
    """``eth_chainId`` of the node at ``url``, or None if it does not answer (yet)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(  # noqa: S310 (a loopback URL built here)
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None
    result = answer.get("result") if isinstance(answer, dict) else None
    return int(result, 16) if isinstance(result, str) else None


class Anvil:
    """A running anvil process; a context manager that stops it on exit."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, chain_id: int, log: IO[bytes]):
        self.process = process
        self.port = port
        self.chain_id = chain_id
        self._log = log

    @property
    def url(self) -> str:
        """The HTTP JSON-RPC endpoint."""
        return f"http://{_HOST}:{self.port}"

    def is_running(self) -> bool:
        """True while the process has not exited."""
        return self.process.poll() is None

    def output(self) -> str:
        """What the process has written to stdout and stderr so far (for error messages)."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process, kill it if it does not exit within ``timeout``, and reap it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _launch(binary: Path, options: AnvilOptions, port: int, timeout: float) -> Anvil | None:
    """Start anvil on ``port``; None if it exited early (most likely the port was taken)."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 (owned by the Anvil object)
    process = subprocess.Popen(
        [str(binary), *options.arguments(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_environ(os.environ),  # no key, password or database URL for the node
    )
    node = Anvil(process, port, options.chain_id, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not node.is_running():
            text = node.output()
            node.stop()
            if "in use" in text.lower():
                return None
            raise ConfigError(f"anvil exited with code {process.returncode}: {text.strip()}")
        chain_id = rpc_chain_id(node.url, timeout=0.5)
        if chain_id is not None:
            if chain_id != options.chain_id:
                node.stop()
                raise ConfigError(f"port {port} answers with chain {chain_id}: not our anvil")
            return node
        time.sleep(0.02)
    node.stop()
    raise TransientError(f"anvil did not answer eth_chainId on port {port} within {timeout}s")


def start_anvil(
    options: AnvilOptions | None = None,
    *,
    binary: Path | None = None,
    timeout: float = 30.0,
) -> Anvil:
    """Start anvil (on a free loopback port unless options name one); return once it answers."""
    opts = options if options is not None else AnvilOptions()
    exe = binary if binary is not None else find_anvil()
    if not exe.is_file():
        raise ConfigError(f"anvil not found at {exe}: run `make setup`")
    if opts.port is not None:
        node = _launch(exe, opts, opts.port, timeout)
        if node is None:
            raise ConfigError(f"port {opts.port} is in use: choose another")
        return node
    for _ in range(_PORT_ATTEMPTS):
        node = _launch(exe, opts, free_port(), timeout)
        if node is not None:
            return node
    raise TransientError(f"anvil could not bind a free port in {_PORT_ATTEMPTS} attempts")
