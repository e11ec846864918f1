"""One live signer per key: a database lock taken before signing and checked before every signature.

PostgreSQL: ``pg_try_advisory_lock`` on a 64-bit hash of the key, held by a dedicated connection
(outside the pool) for as long as the process signs. The server drops the lock when that
connection ends, whatever killed the process; ``still_held`` asks the server, on that same
connection, whether this session still holds it, and a broken connection means no. The holder
also writes a ``signer_leases`` row (holder id, epoch) so that a refused instance can say who
holds the key.

SQLite: a lease row ``(key_address, holder_id, epoch, expires_at)`` in ``signer_leases``, taken by
an atomic conditional INSERT / UPDATE (inside ``BEGIN IMMEDIATE``): a key whose lease has expired
is taken over and its epoch goes up by one. The holder renews the lease well before it ends;
``still_held`` reads the row and answers yes only for our holder id and epoch with at least
``margin`` of the lease left, so a signature made just before expiry is out before anyone can
take over.

``acquire`` returns None on success, else the reason as one sentence ("key 0x… is held by holder
… since …") for the engine to log as it stays in shadow.

History: every acquisition opens a ``signer_epochs`` row (key, epoch, holder, release, chain,
acquired_at) in the same transaction that takes the lease, and closes the epochs of that key
still open (``taken_over``: their holder lost the key without saying so); ``release`` closes
ours (``released``, released_at) in the transaction that lets the lease go. Every signature is
witnessed in memory (``witness``: epoch, holder, time, transaction hash) and written to
``signatures`` with the next renewal and, at the latest, with the release, so that the audit
can prove no two epochs overlapped and nothing was signed outside its epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from arbx.domain.errors import ConfigError
from arbx.domain.releases import Signature
from arbx.errors import SignerLockLostError
from arbx.store import release_repo
from arbx.store.db import make_session_factory
from arbx.store.models import SignerLease

_HELD_SQL = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    " AND granted AND objsubid = 1 AND classid = CAST(:hi AS oid) AND objid = CAST(:lo AS oid)"
)
_HOLDER_PID_SQL = text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
    " AND classid = CAST(:hi AS oid) AND objid = CAST(:lo AS oid) LIMIT 1"
)


def _now() -> datetime:
    return datetime.now(UTC)


def default_holder_id() -> str:
    """host:pid:random, unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def advisory_key(key_address: str) -> int:
    """The signed 64-bit advisory-lock id of a key address (case-insensitive)."""
    digest = hashlib.sha256(b"arbx-signer:" + key_address.lower().encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class SignerLock:
    """The right to sign with one key, held in the database."""

    def __init__(
        self,
        engine: Engine,
        key_address: str,
        *,
        holder_id: str | None = None,
        lease_seconds: float = 30.0,
        margin_seconds: float | None = None,
        clock: Callable[[], datetime] = _now,
        release: str | None = None,
        chain_id: int | None = None,
    ) -> None:
        if lease_seconds <= 0:
            raise ConfigError("the signer lease must last more than 0 seconds")
        self.engine = engine
        self.key_address = key_address.lower()
        self.holder_id = holder_id or default_holder_id()
        self.lease = timedelta(seconds=lease_seconds)
        self.margin = timedelta(
            seconds=lease_seconds / 6 if margin_seconds is None else margin_seconds
        )
        if self.margin >= self.lease:
            raise ConfigError("the signer lease margin must be shorter than the lease")
        self.clock = clock
        self.backend = engine.dialect.name
        if self.backend not in ("postgresql", "sqlite"):
            raise ConfigError(f"unsupported database {self.backend!r} for the signer lock")
        self.release_name = release  # the release of this process, for the epochs history
        self.chain_id = chain_id
        self.epoch: int | None = None
        self._signed: list[Signature] = []  # witnessed, not yet written
        self._until: datetime | None = None  # SQLite: the lease's end as last written by us
        self._conn: Connection | None = None
        self._mutex = threading.Lock()
        self._reader = make_session_factory(engine, readonly=True)
        self.read_only: Engine = self._reader.kw["bind"]  # never takes SQLite's write lock
        # built once: the fence before sending reads it for every bundle
        self._lease_query = select(
            SignerLease.holder_id, SignerLease.epoch, SignerLease.expires_at
        ).where(SignerLease.key_address == self.key_address)
        lock_id = advisory_key(self.key_address)
        self._lock_id = lock_id
        self._hi, self._lo = (lock_id >> 32) & 0xFFFFFFFF, lock_id & 0xFFFFFFFF

    @property
    def held(self) -> bool:
        """Whether the last ``acquire`` succeeded and nothing was released or lost since."""
        return self.epoch is not None

    def fresh(self) -> bool:
        """Whether the key is ours as far as this process knows, without asking the database.

        True while held and, on SQLite, while the lease we last wrote has more than ``margin``
        left: nobody can take a lease over before it ends. Not a substitute for ``still_held``
        before a bundle leaves (a PostgreSQL connection may have died unnoticed).
        """
        if self.epoch is None:
            return False
        until = self._until
        return until is None or until - self.clock() > self.margin

    def acquire(self) -> str | None:
        """Take the key. -> None when this instance now holds it, else why it may not sign."""
        with self._mutex:
            if self.backend == "postgresql":
                return self._acquire_pg()
            return self._acquire_lease()

    def still_held(self, conn: Connection | None = None) -> bool:
        """Verify, in the database, that this instance still holds the key (before signing).

        SQLite reads the lease on ``conn`` when given (a read-only connection of the caller's);
        PostgreSQL always asks on the connection that holds the lock.
        """
        with self._mutex:
            if self.epoch is None:
                return False
            ok = self._held_pg() if self.backend == "postgresql" else self._held_lease(conn)
            if not ok:
                self._lost()
            return ok

    def require(self) -> None:
        """Raise SignerLockLostError unless the database says this instance holds the key."""
        if not self.still_held():
            raise SignerLockLostError(
                "refusing to sign: this process does not hold the signer lock of "
                + self.key_address
            )

    def renew(self) -> bool:
        """Extend the lease (SQLite) or confirm the lock (PostgreSQL). -> still held?

        The write runs without holding the lock object's mutex, so that a database busy with
        another writer delays only the renewal, never ``still_held`` (the fence before a send).
        """
        with self._mutex:
            epoch = self.epoch
            if epoch is None:
                return False
            now = self.clock()
            until = None if self.backend == "postgresql" else now + self.lease
            stmt = (
                update(SignerLease).where(*self._ours(now)).values(renewed_at=now, expires_at=until)
            )
            signed, self._signed = self._signed, []
        try:
            with self.engine.begin() as conn:
                renewed = conn.execute(stmt).rowcount == 1
                release_repo.add_signatures(conn, signed)
        except DBAPIError:
            with self._mutex:
                self._signed[:0] = signed  # written with the next renewal or the release
            # A busy or unreachable database: keep what we have; ``still_held`` decides
            # before the next signature (and the lease or the lock ends on its own).
            return False
        with self._mutex:
            if self.epoch != epoch:
                return False  # released or lost meanwhile
            # PostgreSQL: the advisory lock decides; the row only names the holder.
            ok = self._held_pg() if self.backend == "postgresql" else renewed
            if not ok:
                self._lost()
            elif until is not None:
                self._until = until
            return ok

    def release(self) -> None:
        """Give the key up (idempotent); another instance may take it at once.

        The signatures witnessed so far are written, then the epoch is closed, in the
        transaction that ends the lease: its ``released_at`` is after every signature."""
        with self._mutex:
            signed, self._signed = self._signed, []
            if self.epoch is not None or signed:
                now = self.clock()
                try:
                    with self.engine.begin() as conn:
                        release_repo.add_signatures(conn, signed)
                        if self.epoch is not None:
                            conn.execute(
                                update(SignerLease).where(*self._ours(now)).values(expires_at=now)
                            )
                            release_repo.close_epoch(
                                conn, self.key_address, self.epoch, self.holder_id, now
                            )
                except DBAPIError:
                    pass  # the lock goes with the connection anyway; the next holder closes it
            if self._conn is not None:  # unlock now: the server ends a closed session later
                with contextlib.suppress(DBAPIError):
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._lock_id})
            self._lost()

    def witness(self, tx_hash: str) -> None:
        """Note a signature made now under the epoch held (written with the next renewal)."""
        with self._mutex:
            if self.epoch is not None:
                self._signed.append(
                    Signature(self.key_address, self.epoch, self.holder_id, tx_hash, self.clock())
                )

    async def keep_alive(self, stop: asyncio.Event, interval: float | None = None) -> None:
        """Renew every ``interval`` seconds (default a third of the lease) until stopped or lost."""
        period = self.lease.total_seconds() / 3 if interval is None else interval
        while not stop.is_set() and self.held:
            await asyncio.to_thread(self.renew)
            try:
                await asyncio.wait_for(stop.wait(), timeout=period)
            except TimeoutError:
                continue

    def describe_holder(self) -> str:
        """Who holds the key now, as the sentence ``acquire`` returns on refusal."""
        with self._reader() as session:
            row = session.scalars(
                select(SignerLease).where(SignerLease.key_address == self.key_address)
            ).first()
            pid = None
            if self.backend == "postgresql":
                pid = session.execute(_HOLDER_PID_SQL, {"hi": self._hi, "lo": self._lo}).scalar()
        where = f" (database session pid {pid})" if pid is not None else ""
        if row is None:
            return f"key {self.key_address} is held by another instance{where}"
        until = f", lease until {row.expires_at.isoformat()}" if row.expires_at else ""
        return (
            f"key {self.key_address} is held by holder {row.holder_id} since "
            f"{row.acquired_at.isoformat()} (epoch {row.epoch}{until}){where}"
        )

    # --- PostgreSQL -----------------------------------------------------------------------

    def _acquire_pg(self) -> str | None:
        if self.epoch is not None and self._held_pg():
            return None
        self._lost()
        conn = self.engine.execution_options(isolation_level="AUTOCOMMIT").connect()
        conn.detach()  # closing it really closes it, and the session lock goes with it
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._lock_id}).scalar()
        if not got:
            conn.close()
            return self.describe_holder()
        self._conn = conn
        try:
            self.epoch = self._write_lease(expires_at=None)
        except BaseException:
            self._lost()  # closes the connection, and the lock with it
            raise
        return None

    def _held_pg(self) -> bool:
        if self._conn is None:
            return False
        try:
            count = self._conn.execute(_HELD_SQL, {"hi": self._hi, "lo": self._lo}).scalar()
        except DBAPIError:
            return False
        return count == 1

    # --- SQLite lease ---------------------------------------------------------------------

    def _acquire_lease(self) -> str | None:
        if self.epoch is not None and self._held_lease():
            return None
        self._lost()
        now = self.clock()
        refused = False
        with self.engine.begin() as conn:  # BEGIN IMMEDIATE: the read and the write are atomic
            inserted = conn.execute(
                sqlite_insert(SignerLease)
                .values(self._lease_values(now, 1, now + self.lease))
                .on_conflict_do_nothing(index_elements=["key_address"])
            ).rowcount
            if inserted != 1:
                taken = conn.execute(
                    update(SignerLease)
                    .where(
                        SignerLease.key_address == self.key_address,
                        or_(
                            SignerLease.expires_at <= now,
                            SignerLease.expires_at.is_(None),
                            SignerLease.holder_id == self.holder_id,
                        ),
                    )
                    .values(
                        holder_id=self.holder_id,
                        epoch=SignerLease.epoch + 1,
                        acquired_at=now,
                        renewed_at=now,
                        expires_at=now + self.lease,
                    )
                ).rowcount
                if taken != 1:
                    refused = True
            if not refused:
                self.epoch = self._read_epoch(conn)
                self._until = now + self.lease
                self._open_epoch(conn, self.epoch, now)
        # Described after the write transaction ends: a reader must not wait on our own lock.
        return self.describe_holder() if refused else None

    def _held_lease(self, conn: Connection | None = None) -> bool:
        query = self._lease_query
        if conn is not None:
            row = conn.execute(query).first()
        else:
            with self.read_only.connect() as own:
                row = own.execute(query).first()
        if row is None:
            return False
        holder, epoch, expires_at = row
        return (
            holder == self.holder_id
            and epoch == self.epoch
            and expires_at is not None
            and expires_at - self.clock() > self.margin
        )

    # --- shared ---------------------------------------------------------------------------

    def _write_lease(self, expires_at: datetime | None) -> int:
        """Record this holder in ``signer_leases`` (PostgreSQL), epoch + 1. -> the epoch."""
        now = self.clock()
        with self.engine.begin() as conn:
            ins = pg_insert(SignerLease).values(self._lease_values(now, 1, expires_at))
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["key_address"],
                    set_={
                        "holder_id": ins.excluded.holder_id,
                        "epoch": SignerLease.epoch + 1,
                        "acquired_at": ins.excluded.acquired_at,
                        "renewed_at": ins.excluded.renewed_at,
                        "expires_at": ins.excluded.expires_at,
                    },
                )
            )
            epoch = self._read_epoch(conn)
            self._open_epoch(conn, epoch, now)
            return epoch

    def _open_epoch(self, conn: Connection, epoch: int, now: datetime) -> None:
        release_repo.open_epoch(
            conn,
            self.key_address,
            epoch,
            self.holder_id,
            release=self.release_name,
            chain_id=self.chain_id,
            at=now,
        )

    def _lease_values(
        self, now: datetime, epoch: int, expires_at: datetime | None
    ) -> dict[str, Any]:
        return {
            "key_address": self.key_address,
            "holder_id": self.holder_id,
            "epoch": epoch,
            "acquired_at": now,
            "renewed_at": now,
            "expires_at": expires_at,
        }

    def _read_epoch(self, conn: Connection) -> int:
        epoch: int = conn.execute(
            select(SignerLease.epoch).where(SignerLease.key_address == self.key_address)
        ).scalar_one()
        return epoch

    def _ours(self, now: datetime) -> tuple[Any, ...]:
        """Conditions matching our lease row while it is ours (and, on SQLite, not expired)."""
        cond: tuple[Any, ...] = (
            SignerLease.key_address == self.key_address,
            SignerLease.holder_id == self.holder_id,
            SignerLease.epoch == self.epoch,
        )
        if self.backend == "sqlite":
            cond += (SignerLease.expires_at > now,)
        return cond

    def _lost(self) -> None:
        self.epoch = None
        self._until = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(DBAPIError):
                conn.close()


class SignerGuard:
    """The signing key's guard: signing is allowed only while ``lock`` is set and held.

    It asks no database (the signature is on the hot path): the live executor's fence has just
    read the lock; here ``fresh`` says whether anything since (a failed renewal, a lease about
    to end) took the key away.

    The key must be loaded to know which lock to take, so the guard is handed to the signer
    first and the lock set once taken; until then, and after it is lost, signing raises
    SignerLockLostError.
    """

    def __init__(self) -> None:
        self.lock: SignerLock | None = None

    def witness(self, tx_hash: str) -> None:
        """Note a signature just made (the lock records it under its epoch)."""
        if self.lock is not None:
            self.lock.witness(tx_hash)

    def __call__(self) -> None:
        if self.lock is None:
            raise SignerLockLostError("refusing to sign: the signer lock is not taken")
        if not self.lock.fresh():  # in memory: the executor's fence asked the database just before
            raise SignerLockLostError(
                "refusing to sign: this process does not hold the signer lock of "
                + self.lock.key_address
            )
