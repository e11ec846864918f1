"""The live executor's records, written off the hot path: one worker thread, in order.

Between a head and a bundle sent nothing waits for the database. Every record the live executor
keeps (the block and its opportunities, a bundle sent, a bundle that failed simulation, an
outcome) is a job for ``RecordWriter``: a single worker thread runs the jobs in the order they
were given, so a later job sees what an earlier one wrote (an outcome finds its bundle's row),
and a slow or locked database delays only the records, never the next bundle. ``drain`` waits
for every job given so far; a failed job is logged and does not stop the others. A job that
fails because the database cannot be reached or is locked (a restart, a cut connection, another
writer) is tried again, in place, for up to ``RETRY_FOR`` seconds: the records after it wait
their turn, so nothing is lost to a database restarted mid-run and the order holds.

Writing is Python work that holds the interpreter lock, so the executor ``pause``s the writer
from a head's arrival until its bundle is out (a job already running finishes) and ``resume``s
it afterwards; a pause lasts at most ``MAX_PAUSE`` seconds, whatever happens.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from arbx.domain.profit import Opportunity
from arbx.execution.keys import SignedTx
from arbx.store import api_repo
from arbx.store import execution_repo as xrepo
from arbx.store.repo import route_key

log = logging.getLogger(__name__)
MAX_PAUSE = 1.0  # seconds a pause holds the writer back at most
RETRY_FOR = 120.0  # seconds a record is retried while the database is unreachable or locked
RETRY_MAX_DELAY = 2.0  # seconds between two tries at most


class RecordWriter:
    """Runs record jobs in one worker thread, in order; nothing on the event loop waits."""

    def __init__(
        self, name: str = "arbx-records", retry_for: float = RETRY_FOR, *, strict: bool = False
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.retry_for = retry_for
        self.strict = strict  # a job that fails for good raises in its future (else: None)
        self.retries = 0  # tries again after the database could not be reached
        self._pending: set[asyncio.Future[Any]] = set()
        self._open = threading.Event()
        self._open.set()
        self.failures = 0
        self.submitted = 0  # jobs given
        self.written = 0  # jobs that ran to the end without an error

    def pause(self) -> None:
        """Start no new job until ``resume`` (or ``MAX_PAUSE`` seconds)."""
        self._open.clear()

    def resume(self) -> None:
        """Let queued jobs run again."""
        self._open.set()

    def submit(self, job: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue ``job(*args)``; its future (None if the job failed, or its error if strict)."""
        loop = asyncio.get_running_loop()
        self.submitted += 1
        future = loop.run_in_executor(self._pool, functools.partial(self._run, job, *args))
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return future

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        return len(self._pending)

    async def drain(self) -> None:
        """Wait for every job queued so far."""
        self.resume()
        while self._pending:
            await asyncio.gather(*list(self._pending))

    def close(self) -> None:
        """Stop the worker thread (after the jobs already queued)."""
        self._pool.shutdown(wait=True)

    def _run(self, job: Callable[..., Any], *args: Any) -> Any:
        self._open.wait(MAX_PAUSE)
        name = getattr(job, "__name__", "record")
        deadline, delay = time.monotonic() + self.retry_for, 0.05
        while True:
            try:
                result = job(*args)
            except Exception as exc:  # a record lost is logged; the engine goes on
                line = str(exc).splitlines()[0] if str(exc) else repr(exc)
                if _unreachable(exc) and time.monotonic() + delay < deadline:
                    self.retries += 1
                    log.warning("%s: the database is unavailable, again in %.2f s: %s",
                                name, delay, line)  # fmt: skip
                    time.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_DELAY)
                    continue
                self.failures += 1
                if self.strict:
                    raise
                log.error("%s failed: %s", name, line)
                return None
            self.written += 1
            return result


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or was locked (worth another try),
    rather than that the record itself was refused."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@dataclass(slots=True)
class SentBundle:
    """What is recorded of a bundle sent; ``bundle_id`` is filled in once it is written."""

    opportunity: Opportunity
    target: int
    builders: list[str]
    signed: SignedTx
    bundle_hash: str
    signer: str
    executor: str
    priority_fee: int
    bundle_id: int | None = None
    # the routes' expected net profit together at the shares paid (None: the opportunity's)
    expected_net_profit: int | None = None
    routes: int = 1  # routes in its transaction (executeMany past one)
    carried: tuple[Opportunity, ...] = ()  # its routes' opportunities (empty: ``opportunity``)
    # the key its requests to the builders are replaced and cancelled by (one per target block
    # derived from it: ``relay.block_uuid``); recorded so that a later process can cancel them
    replacement_uuid: str | None = None
    # set once its intent's writing ended (written, or given up): the records about it wait
    written: threading.Event = field(default_factory=threading.Event)

    @property
    def routes_carried(self) -> tuple[Opportunity, ...]:
        """The opportunities its transaction's routes were sized for, in order."""
        return self.carried or (self.opportunity,)

    @property
    def expected(self) -> int:
        """The expected net profit of the whole transaction."""
        if self.expected_net_profit is None:
            return self.opportunity.net_profit
        return self.expected_net_profit


def store_sent(sessions: sessionmaker[Session], run_id: int, sent: SentBundle) -> int:
    """Record a bundle about to be sent (its intent: target block, bundle hash, transaction and
    nonce; status 'sent') or sent; its id (also set on ``sent``)."""
    with sessions.begin() as session:
        bundle_id = xrepo.record_bundle(
            session,
            run_id,
            target_block=sent.target,
            builders=sent.builders,
            tx_hashes=[sent.signed.hash_hex],
            expected_net_profit=sent.expected,
            signer=sent.signer,
            bundle_hash="0x" + sent.bundle_hash,
            replacement_uuid=sent.replacement_uuid,
            routes=[(route_key(o.route), o.net_profit) for o in sent.routes_carried],
        )
        api_repo.notify_event(session, "bundle", {"id": bundle_id})
        xrepo.record_tx(
            session,
            bundle_id,
            xrepo.TxRecord(
                hash=sent.signed.hash_hex,
                nonce=sent.signed.nonce,
                from_address=sent.signer,
                to_address=sent.executor,
                gas_limit=0,
                max_fee=0,
                priority_fee=sent.priority_fee,
            ),
        )
    sent.bundle_id = bundle_id
    return bundle_id


def store_acks(sessions: sessionmaker[Session], sent: SentBundle) -> None:
    """Record the builders that acknowledged a bundle whose intent was recorded."""
    with sessions.begin() as session:
        xrepo.set_bundle_builders(session, _recorded(sent), sent.builders)
        api_repo.notify_event(session, "bundle", {"id": sent.bundle_id})


def store_row_outcome(
    sessions: sessionmaker[Session], bundle_id: int, status: str, details: dict[str, Any]
) -> None:
    """Record the outcome of the bundle row ``bundle_id`` (one no bundle in memory stands for:
    settled long ago, corrected after a reorg deeper than the journal)."""
    with sessions.begin() as session:
        xrepo.update_bundle_outcome(
            session, bundle_id, status, settled_at=datetime.now(UTC), **details
        )
        api_repo.notify_event(session, "bundle", {"id": bundle_id})


def drop_unsent(sessions: sessionmaker[Session], sent: SentBundle) -> None:
    """Forget the intent of a bundle that did not leave (late, or refused by the last fence)."""
    with sessions.begin() as session:
        xrepo.drop_bundle(session, _recorded(sent))


def _recorded(sent: SentBundle) -> int:
    """The bundle's row id, once its intent (written in another thread) is in."""
    sent.written.wait(RETRY_FOR + 10.0)
    if sent.bundle_id is None:
        raise LookupError(f"bundle 0x{sent.bundle_hash} was never recorded")
    return sent.bundle_id


def store_outcome(
    sessions: sessionmaker[Session], sent: SentBundle, status: str, details: dict[str, Any]
) -> None:
    """Record a bundle's outcome (after ``store_sent`` of the same bundle ran)."""
    bundle_id = _recorded(sent)
    with sessions.begin() as session:
        xrepo.update_bundle_outcome(
            session, bundle_id, status, settled_at=datetime.now(UTC), **details
        )
        api_repo.notify_event(session, "bundle", {"id": sent.bundle_id})
