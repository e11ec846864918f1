"""Competing searchers on the devnet, so that our searcher can lose an auction.

Each competitor has its own key (derived from the seed, funded with ``anvil_setBalance``), its
own copy of the shipped executor contract deployed from that key, and its own relay reputation
key; it sends its trades as bundles to the local builder over its JSON-RPC (``eth_sendBundle``
with an ``X-Flashbots-Signature``), as we do. Competitors trade the V2 pairs only, whose state
is two reserves read in one batch, and size with our own exact math (``arbx.domain``):

- **fast** (even indices): two-pool cycles. When the market sends a large swap on a V2 pair
  (one aiming to move its price by ``LARGE_MOVE`` or more) as its sender's next transaction,
  it backruns it: the bundle is the trader's transaction and then the cycle through that pair,
  sized on the reserves the swap leaves. Otherwise it takes the best two-pool cycle on the
  head's state. It gives the builder ``FAST_SHARE_BPS`` of its gross profit.
- **bidder** (odd indices): three-hop cycles on the head's state, giving the builder
  ``BIDDER_SHARE_BPS``: it pays the coinbase far more per gas than anyone else.

The market simulator calls :meth:`Competitors.act` once per block, after its own transactions
are sent and before the block is built, so each competitor's bundle targets the next block.
Everything a competitor decides follows from the seed and the chain's state: the same seed on
the same chain sends the same transactions (``sent`` keeps them, for tests and reports).
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from eth_abi.abi import decode, encode
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from arbx.devnet.chain import MAX_FEE_PER_GAS, DevChain
from arbx.devnet.deployment import Deployment
from arbx.domain.arbitrage import evaluate
from arbx.domain.errors import ConfigError
from arbx.domain.pools import Pool, Token, V2Pool
from arbx.domain.profit import Costs, Opportunity, kept_profit
from arbx.domain.routes import find_cycles
from arbx.domain.sizing import Sized
from arbx.errors import TransientError
from arbx.execution.contract import locked_build
from arbx.execution.flashbots import (
    FLASHBOTS_HEADER,
    BuilderSpec,
    FlashbotsSigner,
    send_bundle_params,
)
from arbx.execution.rawtx import decode_raw_tx, tx_hash
from arbx.execution.route_codec import execute_call

MAX_COMPETITORS: Final = 8
COMPETITOR_ETH: Final = 10**24  # wei set on each competitor's account
LARGE_MOVE: Final = 0.004  # a market swap aiming to move its pool's price this much is large
FAST_SHARE_BPS: Final = 3_000
BIDDER_SHARE_BPS: Final = 9_000
PRIORITY_FEE: Final = 10**9
GAS_LIMIT: Final = 600_000
DEPLOY_GAS: Final = 3_000_000
_GET_RESERVES: Final = "0x0902f1ac"
_TIMEOUT: Final = 10.0


def competitor_count(text: str) -> int:
    """``--competitors``: how many competitors, 0 (none) to ``MAX_COMPETITORS`` (argparse)."""
    if not text.isascii() or not text.isdigit() or len(text) > 3 or int(text) > MAX_COMPETITORS:
        message = f"{text[:40]!r} is not a number of competitors (0..{MAX_COMPETITORS})"
        raise argparse.ArgumentTypeError(message)
    return int(text)


@dataclass(frozen=True, slots=True)
class Style:
    """How a competitor trades: route length, the builder's share, whether it backruns."""

    name: str
    hops: int
    share_bps: int
    backrun: bool


FAST: Final = Style("fast", 2, FAST_SHARE_BPS, backrun=True)
BIDDER: Final = Style("bidder", 3, BIDDER_SHARE_BPS, backrun=False)


@dataclass(frozen=True, slots=True)
class PendingSwap:
    """A market swap sent for the coming block: its transaction, pool, input and size."""

    tx_hash: str
    pool: str
    token_in: str
    amount: int
    move: float


@dataclass(frozen=True, slots=True)
class SentBundle:
    """A bundle a competitor sent: the target block, its transactions, what it expected."""

    block: int
    competitor: str  # the competitor's address (its executor's owner)
    txs: tuple[str, ...]  # transaction hashes, in order
    arbitrage_tx: str  # the competitor's own transaction
    backrun: bool
    route: tuple[str, ...]  # pools
    gross_profit: int
    builder_payment: int
    accepted: bool  # the builder acknowledged it

    @property
    def hash(self) -> bytes:
        """The bundle hash (keccak256 of its transaction hashes), as the builder names it."""
        return keccak(b"".join(bytes.fromhex(h.removeprefix("0x")) for h in self.txs))


@dataclass(frozen=True, slots=True)
class _Victim:
    """A swap a backrun can follow: its raw bytes, its pool, the pools as it leaves them."""

    tx_hash: str
    raw: bytes
    pool: str
    pools: dict[str, Pool]


class Competitor:
    """One competing searcher: a key, an executor contract, a style."""

    def __init__(self, index: int, seed: int, style: Style) -> None:
        self.index = index
        self.style = style
        self.account = Account.from_key(keccak(text=f"arbx-competitor:{seed}:{index}"))
        self.relay = FlashbotsSigner(keccak(text=f"arbx-competitor-relay:{seed}:{index}"))
        self.executor = ""

    @property
    def address(self) -> str:
        """The competitor's account (checksummed)."""
        return str(self.account.address)

    def sign(self, chain_id: int, nonce: int, to: str | None, data: bytes, gas: int) -> bytes:
        """A signed EIP-1559 transaction from this competitor's account."""
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": chain_id,
            "nonce": nonce,
            "value": 0,
            "data": data,
            "gas": gas,
            "maxFeePerGas": MAX_FEE_PER_GAS,  # fixed, so the bytes do not follow the base fee
            "maxPriorityFeePerGas": PRIORITY_FEE,
        }
        if to is not None:
            tx["to"] = to
        return bytes(self.account.sign_transaction(tx).raw_transaction)


class Competitors:
    """The devnet's competing searchers, acting once per block through the local builder."""

    def __init__(
        self,
        deployment: Deployment,
        chain: DevChain,
        builder_url: str,
        count: int,
        seed: int,
        styles: Sequence[Style] = (FAST, BIDDER),
    ) -> None:
        """``count`` competitors; competitor ``i`` trades in ``styles[i % len(styles)]``."""
        if not 0 < count <= MAX_COMPETITORS or not styles:
            raise ConfigError(f"competitors must be 1..{MAX_COMPETITORS}, got {count}")
        self.deployment = deployment
        self.chain = chain
        self.builder_url = builder_url
        self._spec = BuilderSpec("local", builder_url)
        self.members = [Competitor(i, seed, styles[i % len(styles)]) for i in range(count)]
        self.sent: list[SentBundle] = []
        self.refused = 0  # bundles the builder answered with an error
        self._weth = to_checksum_address(deployment.weth)
        self._pairs = [p for p in deployment.pools if p.kind == "uniswap_v2"]
        self._tokens = {
            t.address.lower(): Token(to_checksum_address(t.address), t.symbol, t.decimals)
            for t in deployment.tokens
        }
        self._tokens[self._weth.lower()] = Token(self._weth, "WETH", 18)
        placeholder = {
            p.address: V2Pool(
                to_checksum_address(p.address), self._token(p.token0), self._token(p.token1), 1, 1
            )
            for p in self._pairs
        }
        self._routes = {
            hops: find_cycles(placeholder.values(), [self._weth], max_hops=hops, min_hops=hops)
            for hops in {m.style.hops for m in self.members}
        }
        self._ready = False

    def _token(self, address: str) -> Token:
        return self._tokens.get(address.lower()) or Token(to_checksum_address(address))

    # --- setup ---------------------------------------------------------------------------------

    def setup(self) -> None:
        """Fund each competitor and deploy its executor (one block, through the builder)."""
        if self._ready:
            return
        chain_id = self.deployment.chain_id
        self.chain.rpc_batch(
            [("anvil_setBalance", [m.address, hex(COMPETITOR_ETH)]) for m in self.members]
        )
        code = locked_build().bytecode + encode(["address"], [self._weth])
        hashes = []
        for member in self.members:
            nonce = int(self.chain.rpc("eth_getTransactionCount", member.address, "latest"), 16)
            raw = member.sign(chain_id, nonce, None, code, DEPLOY_GAS)
            hashes.append(self.chain.rpc("eth_sendRawTransaction", "0x" + raw.hex()))
        self.chain.rpc("evm_mine")
        for member, sent in zip(self.members, hashes, strict=True):
            receipt = self.chain.rpc("eth_getTransactionReceipt", sent)
            if receipt is None or int(receipt["status"], 16) != 1:
                raise TransientError(f"competitor {member.address}'s executor was not deployed")
            member.executor = to_checksum_address(receipt["contractAddress"])
        self._ready = True

    # --- one block -----------------------------------------------------------------------------

    def act(self, pending: Sequence[PendingSwap] = ()) -> list[SentBundle]:
        """Each competitor sends its best bundle for the next block; what was sent."""
        self.setup()
        head = self.chain.rpc("eth_getBlockByNumber", "latest", False)
        target, base = int(head["number"], 16) + 1, int(head["baseFeePerGas"], 16)
        pools = self._read_pairs()
        victims = self._victims(pending, pools)
        taken: set[str] = set()  # victims already backrun by a competitor this block
        sent: list[SentBundle] = []
        for member in self.members:
            nonce = int(self.chain.rpc("eth_getTransactionCount", member.address, "latest"), 16)
            costs = Costs(
                base_fee_wei=base,
                priority_fee_wei=PRIORITY_FEE,
                builder_share_bps=member.style.share_bps,
            )
            choice = self._choose(member, pools, victims, taken, costs)
            if choice is None:
                continue
            opportunity, victim_raw, state = choice
            data = execute_call(
                opportunity.route,
                state,
                Sized(opportunity.amount_in, opportunity.amounts, (0,) * len(opportunity.amounts)),
                self._weth,
                max(1, kept_profit(opportunity.gross_profit, member.style.share_bps) // 2),
                member.style.share_bps,
            ).encode()
            raw = member.sign(self.deployment.chain_id, nonce, member.executor, data, GAS_LIMIT)
            txs = [victim_raw, raw] if victim_raw is not None else [raw]
            accepted = self._send(member, txs, target)
            sent.append(
                SentBundle(
                    target,
                    member.address,
                    tuple("0x" + tx_hash(t).hex() for t in txs),
                    "0x" + tx_hash(raw).hex(),
                    victim_raw is not None,
                    opportunity.route.pools,
                    opportunity.gross_profit,
                    opportunity.builder_payment,
                    accepted,
                )
            )
        self.sent += sent
        return sent

    def _choose(
        self,
        member: Competitor,
        pools: dict[str, Pool],
        victims: Mapping[str, _Victim],
        taken: set[str],
        costs: Costs,
    ) -> tuple[Opportunity, bytes | None, Mapping[str, Pool]] | None:
        """The competitor's trade: a backrun when one pays, else the best route on the head."""
        routes = self._routes[member.style.hops]
        if member.style.backrun:
            for victim in victims.values():
                if victim.tx_hash in taken:
                    continue
                through = [r for r in routes if victim.pool in r.pools]
                found = evaluate(through, victim.pools, costs)
                if found:
                    taken.add(victim.tx_hash)
                    return found[0], victim.raw, victim.pools
        found = evaluate(routes, pools, costs)
        return (found[0], None, pools) if found else None

    def _victims(
        self, pending: Sequence[PendingSwap], pools: dict[str, Pool]
    ) -> dict[str, _Victim]:
        """The large V2 swaps a backrun can follow (their senders' next transaction), each with
        its raw bytes and the pools as it leaves them."""
        if not any(m.style.backrun for m in self.members):
            return {}
        large = [
            p for p in pending if p.move >= LARGE_MOVE and to_checksum_address(p.pool) in pools
        ]
        victims: dict[str, _Victim] = {}
        for swap in large:
            answer = self.chain.rpc("eth_getRawTransactionByHash", swap.tx_hash)
            if not answer:
                continue
            raw = bytes.fromhex(str(answer).removeprefix("0x"))
            tx = decode_raw_tx(raw)
            if tx.nonce != int(self.chain.rpc("eth_getTransactionCount", tx.sender, "latest"), 16):
                continue  # the sender has an earlier transaction in this block
            address = to_checksum_address(swap.pool)
            pool = pools[address]
            assert isinstance(pool, V2Pool)
            zero_for_one = swap.token_in.lower() == pool.token0.address.lower()
            out = pool.swap_exact_in(zero_for_one, swap.amount).amount_out
            if zero_for_one:
                moved = replace(
                    pool, reserve0=pool.reserve0 + swap.amount, reserve1=pool.reserve1 - out
                )
            else:
                moved = replace(
                    pool, reserve0=pool.reserve0 - out, reserve1=pool.reserve1 + swap.amount
                )
            victims[swap.tx_hash] = _Victim(swap.tx_hash, raw, address, {**pools, address: moved})
        return victims

    def _read_pairs(self) -> dict[str, Pool]:
        """The V2 pairs' reserves at the head, in one batch."""
        requests = [
            ("eth_call", [{"to": p.address, "data": _GET_RESERVES}, "latest"]) for p in self._pairs
        ]
        pools: dict[str, Pool] = {}
        for pair, answer in zip(self._pairs, self.chain.rpc_batch(requests), strict=True):
            r0, r1, _ = decode(
                ["uint112", "uint112", "uint32"], bytes.fromhex(answer.removeprefix("0x"))
            )
            if r0 and r1:
                address = to_checksum_address(pair.address)
                pools[address] = V2Pool(
                    address, self._token(pair.token0), self._token(pair.token1), r0, r1
                )
        return pools

    def _send(self, member: Competitor, txs: Sequence[bytes], block: int) -> bool:
        """``eth_sendBundle`` to the local builder, signed with the competitor's relay key."""
        params = send_bundle_params(self._spec, txs, block)
        body = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "eth_sendBundle", "params": [params]}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 (BuilderSpec checked the scheme)
            self.builder_url,
            data=body,
            headers={"Content-Type": "application/json", FLASHBOTS_HEADER: member.relay(body)},
        )
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:  # noqa: S310
                answer = json.loads(response.read(1 << 20))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TransientError(
                f"the local builder did not take a competitor's bundle: {exc}"
            ) from exc
        if not isinstance(answer, dict) or "error" in answer:
            self.refused += 1
            return False
        return True
