"""The live run the faults are injected into.

A detached devnet (``arbx devnet up``: anvil, the market and the local builder in their own
processes), the executor deployed from the searcher's key, two RPC endpoints and the builder
behind :class:`~chaos.proxy.HttpProxy`, the database behind :class:`~chaos.proxy.TcpProxy`
(PostgreSQL) or a SQLite file, and the engine as ``arbx run --mode limited`` in a process of its
own: it can be SIGKILLed and restarted like a production engine. Its JSON log events (stderr)
and block lines (stdout) are read as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbx.devnet.anvil import free_port
from arbx.devnet.deployment import Deployment, load_deployment
from arbx.devnet.serve import settings_toml as devnet_settings

PYTHON = sys.executable
BLOCK_PACE = 0.15  # seconds between two market blocks


def arbx(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run ``arbx ARGS``; its standard output (RuntimeError with its stderr on failure)."""
    proc = subprocess.run(
        [PYTHON, "-m", "arbx.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"arbx {' '.join(args)}: {proc.stderr.strip()[-800:]}")
    return proc.stdout


class Devnet:
    """``arbx devnet up`` in ``folder``: anvil, the market and its builder, detached."""

    def __init__(self, folder: Path, seed: int = 7, pace: float = BLOCK_PACE) -> None:
        self.folder = folder
        self.file = folder / "devnet.json"
        self.key_file = folder / "devnet-searcher.key"
        self.seed, self.pace = seed, pace
        self.deployment: Deployment | None = None

    def up(self) -> Deployment:
        """Start it; its deployment."""
        self.folder.mkdir(parents=True, exist_ok=True)
        arbx(
            "devnet", "up", "--port", str(free_port()), "--block-time", "0",
            "--pace", str(self.pace), "--seed", str(self.seed), "--file", str(self.file),
            "--searcher-key-file", str(self.key_file),
        )  # fmt: skip
        self.deployment = load_deployment(self.file)
        return self.deployment

    def down(self) -> None:
        """Stop anvil and the market."""
        if self.file.exists():
            with contextlib.suppress(Exception):
                arbx("devnet", "down", "--file", str(self.file), timeout=60)

    def market_alive(self) -> bool:
        """Whether the market (and so the builder) still runs."""
        pid = self.deployment.market_pid if self.deployment else None
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def settings_toml(
    deployment: Deployment,
    rpcs: list[str],
    builder: str,
    executor: str,
    api_port: int | None = None,
) -> str:
    """Limited mode on the devnet through ``rpcs`` and ``builder``, with the devnet's stages."""
    sections = [
        "[execution]",
        f"executor = {json.dumps(executor)}",
        "blocks_ahead = 1",
        "",
        "[[execution.builders]]",
        'name = "devnet"',
        f"url = {json.dumps(builder)}",
        "",
        "[risk]",
        "daily_gas_cap_wei = 100000000000000000000",
        "daily_loss_cap_wei = 10000000000000000000",
        "signer_lease_seconds = 6.0",
        "promote_min_blocks = 0",
        "promote_min_parity_checks = 0",
        "promote_max_latency_p99_ms = 0",
        "[[risk.stages]]",
        'mode = "shadow"',
        'name = "shadow"',
        "[[risk.stages]]",
        'mode = "limited"',
        'name = "devnet limited 10"',
        'max_input = {"*" = 10000000000000000000}',
        "[[risk.stages]]",
        'mode = "scaled"',
        'name = "devnet scaled 100"',
        'max_input = {"*" = 100000000000000000000}',
    ]
    if api_port is not None:
        sections += ["", "[api]", "serve_in_run = true", f"port = {api_port}"]
    return devnet_settings(
        deployment, rpcs, 0.05, mode="limited", chain_extra=["timeout = 2.0"], sections=sections
    )


@dataclass
class EngineLog:
    """What one engine process said, as it said it (monotonic seconds)."""

    blocks: list[tuple[float, int]] = field(default_factory=list)  # (t, block number)
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # JSON log events
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)  # lines that are no JSON event

    def named(self, event: str) -> list[dict[str, Any]]:
        """The log events called ``event``."""
        return [e for _, e in self.events if e.get("event") == event]

    def last_block(self) -> int:
        """The newest block processed (-1: none yet)."""
        return self.blocks[-1][1] if self.blocks else -1

    def tracebacks(self) -> list[str]:
        """Lines of Python tracebacks it printed, and tasks that died unobserved (a crash, not
        one clear message)."""
        lines = self.stderr + [
            str(e.get("exc_info", "")) + str(e.get("message", "")) for _, e in self.events
        ]
        marks = ("Traceback (most recent call last)", "exception was never retrieved")
        return [line for line in lines if any(mark in line for mark in marks)]


class EngineProcess:
    """``arbx run --config SETTINGS --plain`` in its own process group."""

    def __init__(
        self, settings: Path, env: dict[str, str], name: str = "engine", logs: Path | None = None
    ) -> None:
        self.settings, self.env, self.name = settings, env, name
        self.logs = logs  # a folder for its output, when kept
        self.proc: asyncio.subprocess.Process | None = None
        self.log = EngineLog()
        self.returncode: int | None = None
        self.killed = False  # by the suite (SIGKILL): not a crash
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start it (returns at once)."""
        env = {
            **os.environ, **self.env, "ARBX_LOG__FORMAT": "json", "ARBX_LOG__LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        self.proc = await asyncio.create_subprocess_exec(
            PYTHON, "-m", "arbx.cli", "run", "--config", str(self.settings), "--plain",
            "--metrics-port", "0",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            start_new_session=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._readers = [
            asyncio.ensure_future(self._read(self.proc.stdout, err=False)),
            asyncio.ensure_future(self._read(self.proc.stderr, err=True)),
        ]

    async def _read(self, stream: asyncio.StreamReader, *, err: bool) -> None:
        out = None
        if self.logs is not None:
            self.logs.mkdir(parents=True, exist_ok=True)
            out = (self.logs / f"{self.name}.{'err' if err else 'out'}").open("a")
        try:
            await self._lines(stream, err=err, out=out)
        finally:
            if out is not None:
                out.close()

    async def _lines(self, stream: asyncio.StreamReader, *, err: bool, out: Any) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            if out is not None:
                out.write(text + "\n")
            now = time.monotonic()
            if err:
                try:
                    event = json.loads(text)
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    self.log.events.append((now, event))
                else:
                    self.log.stderr.append(text)
                continue
            self.log.stdout.append(text)
            if text.startswith("block "):
                with contextlib.suppress(ValueError, IndexError):
                    self.log.blocks.append((now, int(text.split()[1])))

    @property
    def running(self) -> bool:
        """Whether the process has not ended."""
        return self.proc is not None and self.proc.returncode is None

    async def wait_blocks(self, count: int, timeout: float = 120.0) -> None:
        """Wait until it has processed ``count`` more blocks."""
        target = len(self.log.blocks) + count
        deadline = time.monotonic() + timeout
        while len(self.log.blocks) < target:
            if not self.running:
                raise RuntimeError(f"{self.name} ended: {self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {count} blocks not processed in {timeout} s")
            await asyncio.sleep(0.05)

    async def wait_event(self, event: str, count: int = 1, timeout: float = 120.0) -> None:
        """Wait until it logged ``count`` events called ``event`` in all."""
        deadline = time.monotonic() + timeout
        while len(self.log.named(event)) < count:
            if not self.running:
                raise RuntimeError(f"{self.name} ended: {self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no {event} in {timeout} s")
            await asyncio.sleep(0.02)

    def sigkill(self) -> None:
        """SIGKILL, as the OOM killer or a lost node does."""
        assert self.proc is not None
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    async def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (a clean stop with its summary); its exit code."""
        if self.proc is None:
            return 0
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.sigkill()
            self.returncode = await self.proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        return self.returncode

    def tail(self, lines: int = 8) -> str:
        """Its last words (stderr, then events), for a message."""
        said = self.log.stderr[-lines:] + [
            str(e.get("message", e)) for _, e in self.log.events[-lines:]
        ]
        return " | ".join(said)[-1500:]
