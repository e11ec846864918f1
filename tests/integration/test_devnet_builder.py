"""The devnet's blocks go through the local builder, and the searcher's bundles land on top.

The embedded devnet runs anvil with ``--order fifo`` and the builder in a thread; the market
sends its transactions and ``evm_mine`` through the builder (or, with a block time, the builder
mines every ``block_time``). A bundle signed with the searcher's key (anvil account 9, read from
the key file written on request) lands as the first transaction of its block.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address

from arbx.chain.rpc import RpcClient, hex_int
from arbx.devnet.anvil import free_port, rpc_chain_id
from arbx.devnet.builder import BUILDER_COINBASE
from arbx.devnet.commands import EmbeddedDevnet, add_devnet_parser, is_running, run_devnet
from arbx.devnet.deployment import SEARCHER_KEY_FILE, Deployment, load_deployment
from arbx.execution.flashbots import BuilderSpec, FlashbotsSigner
from arbx.execution.keys import KeySource, read_private_key
from arbx.execution.rawtx import tx_hash
from arbx.execution.relay import RelayClient

pytestmark = pytest.mark.integration

CHAIN_ID = 31337
PAYMENT = 10**15  # wei the bundle sends to the builder's coinbase
GWEI = 10**9


def _wait(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _miners(url: str, first: int, last: int) -> set[str]:
    """The coinbases of blocks ``first..last``, read from anvil."""

    async def read() -> set[str]:
        async with RpcClient([url], timeout=10) as rpc:
            blocks = await rpc.batch(
                [("eth_getBlockByNumber", [hex(n), False]) for n in range(first, last + 1)]
            )
        return {str(b["miner"]).lower() for b in blocks}

    return asyncio.run(read())


def _senders(url: str, number: int) -> list[str]:
    """The senders of block ``number``'s transactions, in order."""

    async def read() -> list[str]:
        async with RpcClient([url], timeout=10) as rpc:
            block = await rpc.call("eth_getBlockByNumber", [hex(number), True])
        return [str(tx["from"]).lower() for tx in block["transactions"]]

    return asyncio.run(read())


def _key_file_checks(path: Path, deployment: Deployment, deployment_file: Path) -> str:
    """The key file is 0600 and holds account 9's key, absent from the deployment file."""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = read_private_key(KeySource.file(path))  # the way `arbx run` loads it
    assert Account.from_key(key).address.lower() == deployment.accounts.searcher.lower()
    text = deployment_file.read_text()
    assert key.hex() not in text.lower()
    assert "devnet-searcher" not in text
    return key.hex()


async def _send_bundle(devnet: EmbeddedDevnet, key: bytes) -> dict[str, Any]:
    """Send a one-transaction bundle (a coinbase payment) for head+1..head+3; its receipt."""
    searcher = Account.from_key(key)
    assert devnet.builder_url is not None
    spec = BuilderSpec("devnet", devnet.builder_url, supports_call_bundle=True)
    async with (
        RpcClient([devnet.url], timeout=10) as rpc,
        RelayClient(FlashbotsSigner(Account.create().key), timeout=5) as relay,
    ):
        nonce = hex_int(await rpc.call("eth_getTransactionCount", [searcher.address, "latest"]))
        tx = {
            "type": 2, "chainId": CHAIN_ID, "nonce": nonce, "value": PAYMENT, "gas": 21_000,
            "to": to_checksum_address(BUILDER_COINBASE),
            "maxFeePerGas": 100 * GWEI, "maxPriorityFeePerGas": 0,
        }  # fmt: skip
        raw = bytes(searcher.sign_transaction(tx).raw_transaction)
        for _ in range(3):  # the market mines every `pace`: a send may miss all three blocks
            report = await relay.fan_out([spec], [raw], await rpc.block_number() + 1)
            assert len(report.acks) == 3
            last = report.blocks[-1]
            while await rpc.block_number() < last:
                await asyncio.sleep(0.02)
            receipt = await rpc.call("eth_getTransactionReceipt", ["0x" + tx_hash(raw).hex()])
            if receipt is not None:
                return dict(receipt)
    raise AssertionError("the bundle never landed")


def test_market_blocks_go_through_the_builder_and_a_bundle_lands_on_top(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    file, key_file = tmp_path / "devnet.json", tmp_path / SEARCHER_KEY_FILE
    with EmbeddedDevnet.start(seed=4, pace=0.1, file=file, searcher_key_file=key_file) as devnet:
        assert devnet.builder is not None
        assert devnet.simulator is not None
        assert devnet.simulator.manual
        deployment = devnet.deployment
        assert devnet.builder_url == deployment.builder_url == load_deployment(file).builder_url
        assert devnet.builder_url != devnet.url == deployment.rpc_url  # readers use anvil
        start = deployment.start_block
        _wait(lambda: sum(devnet.stats.swaps.values()) > 0 and devnet.stats.block > start + 3)
        head = devnet.stats.block
        assert devnet.builder.builder.stats.blocks >= head - start  # every block is the builder's
        assert _miners(devnet.url, start + 1, head) == {BUILDER_COINBASE}

        key_hex = _key_file_checks(key_file, deployment, file)
        receipt = asyncio.run(_send_bundle(devnet, bytes.fromhex(key_hex)))
        assert hex_int(receipt["status"]) == 1
        assert hex_int(receipt["transactionIndex"]) == 0  # on top of its block
        assert receipt["from"].lower() == deployment.accounts.searcher.lower()
        assert devnet.builder.builder.stats.included >= 1
        others = _senders(devnet.url, hex_int(receipt["blockNumber"]))[1:]
        assert set(others) <= {t.lower() for t in deployment.accounts.traders}  # the market's
        landed, swaps = hex_int(receipt["blockNumber"]), sum(devnet.stats.swaps.values())
        _wait(lambda: sum(devnet.stats.swaps.values()) > swaps)  # the market trades on
        assert devnet.stats.block > landed
        assert devnet.stats.reverted == 0
        assert devnet.error is None
        assert devnet.builder.builder.stats.violations == 0
        builder_url = devnet.builder.url
    assert rpc_chain_id(builder_url, timeout=0.2) is None  # the builder stopped, and anvil
    assert not [t for t in threading.enumerate() if t.name in ("arbx-builder", "arbx-market")]
    captured = capfd.readouterr()
    assert key_hex not in (captured.out + captured.err).lower()


def test_with_a_block_time_the_builder_mines_every_block_time() -> None:
    with EmbeddedDevnet.start(seed=6, block_time=0.2) as devnet:
        assert devnet.builder is not None
        assert devnet.builder.interval == 0.2
        assert devnet.simulator is not None
        assert not devnet.simulator.manual
        start = devnet.deployment.start_block
        _wait(lambda: sum(devnet.stats.swaps.values()) > 0 and devnet.stats.block > start + 3)
        assert _miners(devnet.url, start + 1, devnet.stats.block) == {BUILDER_COINBASE}
        assert devnet.builder.failures == 0
        assert devnet.stats.reverted == 0
        assert devnet.error is None


def test_without_the_builder_and_without_a_key_file(tmp_path: Path) -> None:
    with EmbeddedDevnet.start(seed=7, market=False, builder=False, file=tmp_path / "d.json"):
        pass
    assert load_deployment(tmp_path / "d.json").builder_url is None
    assert list(tmp_path.iterdir()) == [tmp_path / "d.json"]


def _devnet(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="arbx")
    add_devnet_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["devnet", *argv])


def test_devnet_up_serves_the_builder_from_the_market_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, key_file = tmp_path / "data" / "devnet.json", tmp_path / "data" / SEARCHER_KEY_FILE
    up = _devnet("up", "--port", str(free_port()), "--seed", "3", "--block-time", "0",
                 "--pace", "0.1", "--file", str(path),
                 "--searcher-key-file", str(key_file))  # fmt: skip
    assert run_devnet(up) == 0
    try:
        deployment = load_deployment(path)
        assert deployment.builder_url is not None
        assert json.loads(path.read_text())["builder_url"] == deployment.builder_url
        assert deployment.market_pid is not None
        assert is_running(deployment.market_pid, "arbx.devnet")
        assert rpc_chain_id(deployment.builder_url) == CHAIN_ID
        key_hex = _key_file_checks(key_file, deployment, path)
        start = deployment.start_block
        _wait(lambda: _head(deployment.rpc_url) > start + 3)
        assert _miners(deployment.rpc_url, start + 1, start + 3) == {BUILDER_COINBASE}
    finally:
        assert run_devnet(_devnet("down", "--file", str(path))) == 0
    out = capsys.readouterr().out
    assert deployment.builder_url in out
    assert key_hex not in out.lower()
    assert rpc_chain_id(deployment.builder_url, timeout=0.2) is None
    assert key_hex not in (path.parent / "market.log").read_text().lower()


def _head(url: str) -> int:
    async def read() -> int:
        async with RpcClient([url], timeout=5) as rpc:
            return await rpc.block_number()

    return asyncio.run(read())
