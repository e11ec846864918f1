"""Live events for the stream: new opportunities, bundle outcomes and status changes, fanned out
to every subscriber by one source task per API process.

The engine runs in another process and shares only the database, so the source is:

- PostgreSQL: LISTEN on ``arbx_events``. The engine's ``notify_event`` names the new rows' ids
  (delivered when its transaction commits); the hub reads those rows and sends them as the REST
  endpoints would. Every few seconds, and after each (re)connection, it also polls for rows it
  has not seen, so nothing is lost while disconnected or from a writer that does not notify.
- SQLite: polling every ``poll_interval`` for ids above the last seen, and for bundles that left
  the 'sent' state (the ``status`` index makes that cheap). SQLite has one writer at a time, so
  ids appear in commit order and "above the last seen" misses nothing.

Status is recomputed on each tick and sent when it changed (the heartbeat age aside). A
subscriber that falls 1,000 events behind is disconnected (its client reconnects) rather than
slowing the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
from sqlalchemy.orm import Session

from arbx import safejson
from arbx.api import views
from arbx.api.context import ApiContext
from arbx.store import browse_repo
from arbx.store.api_repo import EVENTS_CHANNEL
from arbx.store.models import BundleRow, OpportunityRow

log = logging.getLogger(__name__)

QUEUE_SIZE: Final = 1_000
BATCH: Final = 500
_SEEN = 50_000


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: its kind and JSON-ready data."""

    kind: str  # 'opportunity' | 'bundle' | 'status'
    data: dict[str, Any]

    def sse(self) -> str:
        """The event in the text/event-stream format."""
        return f"event: {self.kind}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n"


@dataclass(eq=False)
class Subscription:
    """A subscriber's queue; None in it means: stop (lagging too far, or shutting down)."""

    queue: asyncio.Queue[Event | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE + 1)
    )


class Tracker:
    """What the source has already sent; turns database rows into events (runs in a thread)."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.started = False
        self.last_opportunity = 0
        self.last_bundle = 0
        self.open_bundles: set[int] = set()
        self.status_key: str | None = None
        self._seen: OrderedDict[tuple[Any, ...], None] = OrderedDict()

    def start(self) -> None:
        """Begin from now: rows written before the first subscriber are not replayed."""
        with self.ctx.reader() as session:
            self.last_opportunity, self.last_bundle = browse_repo.max_ids(session)
            self.open_bundles = browse_repo.open_bundle_ids(session)
            self._status(session)  # subscribers get the current status on connecting
        self.started = True

    def poll(self) -> list[Event]:
        """New opportunities and bundles, bundles settled since the last poll, a changed status."""
        if not self.started:
            self.start()
        with self.ctx.reader() as session:
            events = self._opportunities(
                browse_repo.opportunities_after(session, self.last_opportunity, BATCH)
            )
            fresh = browse_repo.bundles_after(session, self.last_bundle, BATCH)
            still_open = browse_repo.open_bundle_ids(session)
            settled = sorted(self.open_bundles - still_open - {b.id for b in fresh})
            events += self._bundles([*fresh, *browse_repo.bundles_by_id(session, settled)])
            self.open_bundles = still_open
            events += self._status(session)
        return events

    def fetch(self, opportunity_ids: list[int], bundle_ids: list[int]) -> list[Event]:
        """The rows a notification named, and the status when it changed."""
        with self.ctx.reader() as session:
            events = self._opportunities(browse_repo.opportunities_by_id(session, opportunity_ids))
            events += self._bundles(browse_repo.bundles_by_id(session, bundle_ids))
            events += self._status(session)
        return events

    def _opportunities(self, rows: list[OpportunityRow]) -> list[Event]:
        out = []
        for row in rows:
            self.last_opportunity = max(self.last_opportunity, row.id)
            if self._first(("o", row.id)):
                out.append(Event("opportunity", views.opportunity(row).model_dump(mode="json")))
        return out

    def _bundles(self, rows: list[BundleRow]) -> list[Event]:
        out = []
        for row in rows:
            self.last_bundle = max(self.last_bundle, row.id)
            if row.status == "sent":
                self.open_bundles.add(row.id)
            if self._first(("b", row.id, row.status, row.settled_at)):
                out.append(Event("bundle", views.bundle(row).model_dump(mode="json")))
        return out

    def _status(self, session: Session) -> list[Event]:
        data = views.status(self.ctx, session, self.ctx.clock()).model_dump(mode="json")
        key = json.dumps({k: v for k, v in data.items() if k != "heartbeat_age_s"}, sort_keys=True)
        if key == self.status_key:
            return []
        self.status_key = key
        return [Event("status", data)]

    def _first(self, key: tuple[Any, ...]) -> bool:
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > _SEEN:
            self._seen.popitem(last=False)
        return True


class EventHub:
    """Fans events out to subscribers; starts its source with the first subscriber."""

    def __init__(
        self,
        ctx: ApiContext,
        *,
        pg_conninfo: str | None,
        poll_interval: float = 0.5,
        tick: float = 1.0,
        fallback_interval: float = 5.0,
    ) -> None:
        self.ctx = ctx
        self.pg_conninfo = pg_conninfo
        self.poll_interval = poll_interval
        self.tick = tick
        self.fallback_interval = fallback_interval
        self.tracker = Tracker(ctx)
        self.subscribers: set[Subscription] = set()
        self.ready = asyncio.Event()  # set once the source listens (or has polled once)
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self) -> Subscription:
        """A new subscription (starting the source if it is not running)."""
        if self._task is None or self._task.done():
            if not self.tracker.started:
                await asyncio.to_thread(self.tracker.start)
            self._task = asyncio.create_task(self._run(), name="arbx-api-events")
        sub = Subscription()
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscription."""
        self.subscribers.discard(sub)

    def publish(self, events: list[Event]) -> None:
        """Queue events for every subscriber; disconnect the ones too far behind."""
        for event in events:
            for sub in list(self.subscribers):
                if sub.queue.qsize() >= QUEUE_SIZE:
                    self._drop(sub)
                else:
                    sub.queue.put_nowait(event)

    async def close(self) -> None:
        """Stop the source and end every subscription."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for sub in list(self.subscribers):
            self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)

    async def _run(self) -> None:
        while True:
            try:
                if self.pg_conninfo is not None:
                    await self._listen(self.pg_conninfo)
                else:
                    await self._poll_forever()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the source must outlive a database outage
                log.warning("live events: %s; retrying", _line(exc))
                await asyncio.sleep(min(5.0, 4 * self.poll_interval + 0.5))

    async def _step(self, work: Callable[[], list[Event]]) -> None:
        self.publish(await asyncio.to_thread(work))

    async def _poll_forever(self) -> None:
        while True:
            await self._step(self.tracker.poll)
            self.ready.set()
            await asyncio.sleep(self.poll_interval)

    async def _listen(self, conninfo: str) -> None:
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True, connect_timeout=10)
        async with conn:
            await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
            await self._step(self.tracker.poll)  # catch up with what passed while away
            self.ready.set()
            inbox: asyncio.Queue[str] = asyncio.Queue()
            reader = asyncio.create_task(_read_notifies(conn, inbox))
            try:
                await self._consume(inbox, reader)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    async def _consume(self, inbox: asyncio.Queue[str], reader: asyncio.Task[None]) -> None:
        polled = time.monotonic()
        while not reader.done():
            batch: list[str] = []
            with contextlib.suppress(TimeoutError):
                batch.append(await asyncio.wait_for(inbox.get(), timeout=self.tick))
            while not inbox.empty():
                batch.append(inbox.get_nowait())
            if time.monotonic() - polled >= self.fallback_interval:
                polled = time.monotonic()
                await self._step(self.tracker.poll)
            opportunities, bundles = _ids(batch)
            self.publish(await asyncio.to_thread(self.tracker.fetch, opportunities, bundles))
        reader.result()  # raises what ended the connection


async def _read_notifies(conn: psycopg.AsyncConnection[Any], inbox: asyncio.Queue[str]) -> None:
    async for notify in conn.notifies():
        inbox.put_nowait(notify.payload)


def _ids(payloads: list[str]) -> tuple[list[int], list[int]]:
    """Opportunity and bundle ids named by notification payloads (malformed ones ignored)."""
    opportunities: list[int] = []
    bundles: list[int] = []
    for payload in payloads:
        try:
            data = safejson.loads(payload, max_bytes=8000, max_depth=4)  # NOTIFY's own cap
            ids = [int(i) for i in data.get("ids", [])]
        except (ValueError, TypeError, AttributeError):
            continue
        if data.get("kind") == "opportunity":
            opportunities += ids
        elif data.get("kind") == "bundle":
            bundles += ids
    return opportunities, bundles


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
