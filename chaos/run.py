"""The suite's stage: the devnet, the private database, the proxies and the engine processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from arbx.chain.rpc import RpcClient
from arbx.devnet.deployment import Deployment
from chaos.postgres import PrivatePostgres
from chaos.proxy import HttpProxy, TcpProxy
from chaos.world import Devnet, EngineProcess, arbx, settings_toml


@dataclass
class Stage:
    """Everything a fault acts on."""

    folder: Path
    devnet: Devnet
    deployment: Deployment
    rpcs: list[HttpProxy]
    builder: HttpProxy
    postgres: PrivatePostgres | None
    db_proxy: TcpProxy | None
    executor: str
    database_url: str
    engines: list[EngineProcess]
    logs: Path | None = None  # where the engines' output is kept
    env_extra: dict[str, str] = field(default_factory=dict)  # for the next engine started

    def env(self, relay_name: str = "relay") -> dict[str, str]:
        """The engine's variables: its keys and database."""
        relay = self.folder / f"{relay_name}.key"
        if not relay.exists():
            relay.write_text("0x" + os.urandom(32).hex() + "\n")
            relay.chmod(0o600)
        return {
            "ARBX_SIGNING_KEY_FILE": str(self.devnet.key_file),
            "ARBX_RELAY_KEY_FILE": str(relay),
            "ARBX_DATABASE_URL": self.database_url,
            **self.env_extra,
        }

    def settings(self, name: str = "settings", api_port: int | None = None) -> Path:
        """A settings file for an engine of this stage."""
        path = self.folder / f"{name}.toml"
        urls = [p.url for p in self.rpcs]
        path.write_text(
            settings_toml(self.deployment, urls, self.builder.url, self.executor, api_port)
        )
        return path

    async def engine(self, name: str = "engine", api_port: int | None = None) -> EngineProcess:
        """Start one more engine and wait until it processes blocks."""
        engine = EngineProcess(
            self.settings(name, api_port), self.env(f"{name}-relay"), name, self.logs
        )
        self.engines.append(engine)
        await engine.start()
        await engine.wait_blocks(3, timeout=180)
        return engine

    async def head(self) -> int:
        """The chain's head, from anvil itself (not through the proxies)."""
        async with RpcClient([self.deployment.rpc_url], timeout=10.0) as client:
            return int(await client.call("eth_blockNumber", []), 16)


@contextlib.asynccontextmanager
async def stage(folder: Path, *, database: str = "postgres", seed: int = 7) -> AsyncIterator[Stage]:
    """Bring the stage up (devnet, database, proxies, executor); tear everything down after."""
    folder.mkdir(parents=True, exist_ok=True)
    devnet = Devnet(folder / "devnet", seed=seed)
    postgres: PrivatePostgres | None = None
    db_proxy: TcpProxy | None = None
    proxies: list[HttpProxy] = []
    engines: list[EngineProcess] = []
    try:
        deployment = await asyncio.to_thread(devnet.up)
        assert deployment.builder_url is not None
        if database == "postgres":
            postgres = PrivatePostgres()
            await asyncio.to_thread(postgres.init)
            db_proxy = TcpProxy("127.0.0.1", postgres.port)
            await db_proxy.start()
            url = postgres.url(db_proxy.port)
        else:
            url = f"sqlite:///{folder / 'arbx.db'}"
        rpcs = [HttpProxy(deployment.rpc_url, f"rpc{i}") for i in (1, 2)]
        builder = HttpProxy(deployment.builder_url, "builder")
        proxies = [*rpcs, builder]
        for proxy in proxies:
            await proxy.start()
        env = {
            "ARBX_SIGNING_KEY_FILE": str(devnet.key_file),
            "ARBX_DATABASE_URL": url,
        }
        out = await asyncio.to_thread(
            arbx, "executor", "deploy", "--rpc", deployment.rpc_url, "--weth", deployment.weth,
            env=env,
        )  # fmt: skip
        executor = out.split()[0]
        yield Stage(
            folder, devnet, deployment, rpcs, builder, postgres, db_proxy, executor, url, engines
        )
    finally:
        for engine in engines:
            if engine.running:
                await engine.stop()
        for proxy in proxies:
            await proxy.close()
        if db_proxy is not None:
            await db_proxy.close()
        if postgres is not None:
            await asyncio.to_thread(postgres.remove)
        await asyncio.to_thread(devnet.down)
