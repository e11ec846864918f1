"""Nonces for the signing address: the chain's pending count is the truth, ours a tentative overlay.

Why the chain and not a file: a nonce is used when, and only when, a transaction with it is in a
block (or, for a public send, in the node's pool). A bundle sent privately that no builder
included used nothing, and the next bundle must take the same nonce again; a transaction dropped
from a pool, replaced, or sent by another tool with the same key changes what is free without
telling us. A persisted counter would be a second opinion that drifts on every one of these (the
"nonce too low" and "replacement underpriced" loops bots are known for); the chain cannot drift
from itself. So :meth:`NonceManager.sync` reads ``eth_getTransactionCount(address, "pending")`` at
start, and again before the next reservation after any failure. One live signer per key (the
signer lock) guarantees nobody else spends these nonces while we count.

Between syncs, reservations are tentative: :meth:`~NonceManager.reserve` hands out the next
number and remembers it; :meth:`~NonceManager.confirm` settles it once its transaction is in a
block; :meth:`~NonceManager.release` gives back a nonce that was never sent;
:meth:`~NonceManager.failed` (a send refused, a transaction dropped, a bundle not included) marks
the count unknown, and the next :meth:`~NonceManager.reserve` reads it from the chain again, so
the unused nonce is handed out once more.
"""

from __future__ import annotations

import asyncio
import logging

from arbx.chain.rpc import RpcClient, hex_address, hex_int

log = logging.getLogger(__name__)


class NonceManager:
    """Hands out nonces for one address, reconciling with the chain at start and after failures."""

    def __init__(self, client: RpcClient, address: str) -> None:
        self.client = client
        self.address = hex_address(address)
        self.syncs = 0  # chain reads so far (a metric)
        self._next: int | None = None  # None: unknown, read the chain before the next reservation
        self._tentative: set[int] = set()  # handed out, neither confirmed nor given back
        self._lock = asyncio.Lock()

    @property
    def needs_sync(self) -> bool:
        """True until the first sync, and after a failure, until the next reservation syncs."""
        return self._next is None

    @property
    def tentative(self) -> frozenset[int]:
        """The nonces handed out and not yet confirmed, given back or failed."""
        return frozenset(self._tentative)

    async def sync(self) -> int:
        """Read the chain's pending count; the next nonce. Forgets every tentative reservation."""
        async with self._lock:
            return await self._sync()

    async def _sync(self) -> int:
        count = await self.client.call(
            "eth_getTransactionCount", [self.address, "pending"], decode=hex_int
        )
        if self._tentative or (self._next is not None and self._next != count):
            log.info(
                "nonce of %s resynced to %d (had next %s, tentative %s)",
                self.address,
                count,
                self._next,
                sorted(self._tentative),
            )
        self._next = count
        self._tentative.clear()
        self.syncs += 1
        return count

    async def reserve(self) -> int:
        """The next nonce, tentative until confirmed; syncs first if the count is unknown."""
        async with self._lock:
            nonce = self._next if self._next is not None else await self._sync()
            self._next = nonce + 1
            self._tentative.add(nonce)
            return nonce

    def confirm(self, nonce: int) -> None:
        """``nonce``'s transaction is in a block: it is used for good."""
        self._tentative.discard(nonce)
        if self._next is not None and nonce >= self._next:
            self._next = nonce + 1

    def release(self, nonce: int) -> None:
        """``nonce`` was reserved but never sent: hand it out again."""
        if nonce not in self._tentative:
            return  # a reservation from before the last sync: nothing of ours to undo
        self._tentative.discard(nonce)
        if self._next is not None and nonce == self._next - 1:
            self._next = nonce
        else:
            self._next = None  # a gap below later reservations: let the chain say what is free

    def failed(self, nonce: int) -> None:
        """``nonce``'s send failed, its transaction was dropped or its bundle not included."""
        self._tentative.discard(nonce)
        self._next = None
        log.info("nonce %d of %s failed: the next reservation reads the chain", nonce, self.address)
