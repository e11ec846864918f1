"""``arbx executor deploy``: the shipped executor contract on any chain, owned by the signing key.

The RPC comes from ``--rpc`` or the settings' ``chain.rpc``; the wrapped native token from
``--weth`` or the first of ``strategy.base_tokens``; the key from its usual sources (keystore,
secret file or variable), never from the command line. Deploying signs with the key, so it takes
the signer lock like a live run: a key in use elsewhere is refused. The new address is printed
alone on standard output (``ADDR=$(arbx executor deploy)``), what to do with it on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arbx.domain.errors import ConfigError

if TYPE_CHECKING:
    from arbx.config import Settings
    from arbx.execution.deploy import Deployed
    from arbx.execution.keys import TxSigner


def register(sub: Any) -> None:
    """Add ``executor deploy``."""
    executor = sub.add_parser("executor", help="the executor contract")
    actions = executor.add_subparsers(
        dest="executor_command", required=True, parser_class=type(executor)
    )
    deploy = actions.add_parser(
        "deploy", help="deploy the shipped executor from the signing key; prints its address"
    )
    deploy.add_argument("--config", type=Path, help="settings file (TOML)")
    deploy.add_argument(
        "--rpc", help="JSON-RPC URL of the chain (default: the settings' chain.rpc)"
    )
    deploy.add_argument(
        "--weth", help="the wrapped native token (default: the first strategy.base_tokens)"
    )
    deploy.set_defaults(handler=_deploy)


def _deploy(args: argparse.Namespace) -> int:
    from arbx.cli.store import database_errors
    from arbx.config import load_settings
    from arbx.execution.keys import load_tx_signer
    from arbx.risk.signer_lock import SignerGuard, SignerLock
    from arbx.store import make_engine, migrate

    settings = load_settings(args.config)
    urls = [args.rpc] if args.rpc else list(settings.chain.rpc)
    if not urls:
        raise ConfigError("no chain to deploy on: pass --rpc or set chain.rpc")
    weth = args.weth or next(iter(settings.strategy.base_tokens), None)
    if weth is None:
        raise ConfigError("no wrapped native token: pass --weth or set strategy.base_tokens")
    guard = SignerGuard()
    signer = load_tx_signer(dict(os.environ), guard=guard, witness=guard.witness)
    url = settings.database_url
    with database_errors(url):
        migrate.upgrade(url)
        engine = make_engine(url)
        lock = SignerLock(
            engine,
            signer.address,
            lease_seconds=settings.risk.signer_lease_seconds,
            release=settings.release,
        )
        try:
            refused = lock.acquire()
            if refused is not None:
                raise ConfigError(f"the signing key is in use, not deploying: {refused}")
            guard.lock = lock
            deployed = asyncio.run(_deploy_on(urls, settings, signer, weth))
        finally:
            lock.release()
            engine.dispose()
    print(deployed.address, flush=True)
    print(
        f"deployed the executor at {deployed.address} (owner {deployed.owner}, "
        f"tx {deployed.tx_hash}, block {deployed.block}); configure it as execution.executor "
        f'= "{deployed.address}" or ARBX_EXECUTION__EXECUTOR={deployed.address}',
        file=sys.stderr,
    )
    return 0


async def _deploy_on(urls: list[str], settings: Settings, signer: TxSigner, weth: str) -> Deployed:
    from arbx.chain.rpc import RpcClient
    from arbx.execution.deploy import deploy_executor
    from arbx.execution.nonces import NonceManager

    async with RpcClient(urls, timeout=settings.chain.timeout) as client:
        nonces = NonceManager(client, signer.address)
        await nonces.sync()
        return await deploy_executor(
            client, signer, nonces, weth, priority_fee=settings.strategy.priority_fee_wei
        )
