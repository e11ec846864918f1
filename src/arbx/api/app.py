"""The API application: ``create_app`` builds it on a session factory, ``serve`` runs it.

The engine and the API share the database and nothing else; they may run as separate processes
(``arbx api``) or in one event loop (the engine's ``arbx run`` calling ``serve``). Every refusal
is ``{"detail": "<one clear line>"}``: 400 bad input, 401 no or bad token, 403 a viewer's token
for a change, 404 no such thing, 409 nothing to act on yet, 422 a parameter or body field that
does not validate, 503 the database is unreachable; before anything else (``admission``), 429 a
client over its rate and 503 the API at capacity; and before any route runs (``limits``):
408 a body too slow, 413 a body too large, 414 a query string too long, 431 too many or too
large headers, 422 a body that is not JSON or nests too deep.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from arbx import __version__
from arbx.api import (
    routes_control,
    routes_pnl,
    routes_read,
    routes_scores,
    routes_stage,
    stream,
    views,
)
from arbx.api.admission import Admission, AdmissionBounds
from arbx.api.context import ApiContext, utc_now
from arbx.api.events import EventHub
from arbx.api.limits import SERVER_LIMITS, RequestLimits
from arbx.api.metrics import MetricsMiddleware, metrics_endpoint
from arbx.api.schemas import ErrorOut, HealthOut, ReadyOut
from arbx.api.share import ForgetOnWrite, SharedAnswers
from arbx.api.views import age_s
from arbx.domain.errors import ConfigError, InputError
from arbx.domain.limits import Limits
from arbx.domain.modes import Mode
from arbx.domain.stages import Alerts, Schedule, default_schedule
from arbx.scrub import scrub_text
from arbx.store import api_repo
from arbx.store.db import make_session_factory

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
READY_TIMEOUT_S = 3.0
WARM_UP_TIMEOUT_S = 10.0  # the most a start waits for the warm-up
TOKENS_KEPT = 4096  # token digests remembered (arbx.api.auth), the least recently used forgotten

DESCRIPTION = """\
The arbx searcher's API: status, opportunities, bundles, PnL, pools, and the operator controls
(mode ceiling, limits, kill switch), with a live stream.

**Authentication.** `Authorization: Bearer <token>`, with a token from
`arbx token add --name NAME --role viewer|operator` (shown once; only its SHA-256 is stored).
Viewers read; operators also change. `/healthz`, `/readyz` and `/metrics` (Prometheus) need no
token. The stream also takes `?token=` because a browser's EventSource cannot set headers.

**Amounts** in wei are decimal strings (they pass 2^53). **Lists** are keyset pages, newest
first: pass a page's `next_before_id` as `before_id` (`after_id` is the same cursor) for the next
one. **Errors** are `{"detail": "..."}`.

**Limits**, checked before authentication: a body is at most 64 KiB of JSON nested at most 32
deep (413, 422), arriving within 10 s (408); a query string at most 4 KiB (414); at most 64
headers, 16 KiB in all (431). Before those, admission control (`[api]` settings): each token,
or address without one, may make 100 requests at once and 50 a second after (429 with
`Retry-After` past it), and the API answers at most 32 requests at once (503 with `Retry-After`
past it); the probes and `/metrics` have their own cap.
"""


def create_app(
    sessions_factory: sessionmaker[Session],
    *,
    chain_id: int | None = None,
    static_dir: Path | None = None,
    poll_interval: float = 0.5,
    heartbeat_max_age_s: float = 30.0,
    configured_mode: Mode | None = None,
    configured_limits: Limits | None = None,
    schedule: Schedule | None = None,
    clock: Callable[[], datetime] = utc_now,
    alerts: Callable[[], Alerts] | None = None,
    admission: AdmissionBounds | None = None,
    share_s: float = 0.0,
    token_cache_s: float = 0.0,
) -> FastAPI:
    """The API on ``sessions_factory``'s database, serving the dashboard when there is one;
    with ``admission``, requests over its bounds are refused before any other work; with
    ``share_s``, answers to the same read are shared that many seconds (``arbx.api.share``);
    with ``token_cache_s``, what a token was found to be is kept that long (``arbx.api.auth``)."""
    bind = sessions_factory.kw.get("bind")
    if not isinstance(bind, Engine):
        raise ConfigError("create_app needs a session factory bound to an engine")
    ctx = ApiContext(
        sessions=sessions_factory,
        reader=make_session_factory(bind, readonly=True),
        chain_id=chain_id,
        schedule=schedule or default_schedule(),
        configured_mode=configured_mode,
        configured_limits=configured_limits,
        heartbeat_max_age_s=heartbeat_max_age_s,
        poll_interval=poll_interval,
        clock=clock,
        alerts=alerts or Alerts,
        shared=SharedAnswers(ttl_s=share_s),
        tokens=SharedAnswers(ttl_s=token_cache_s, max_answers=TOKENS_KEPT),
    )
    conninfo = None
    if bind.dialect.name == "postgresql":
        conninfo = bind.url.set(drivername="postgresql").render_as_string(hide_password=False)
    ctx.hub = EventHub(ctx, pg_conninfo=conninfo, poll_interval=poll_interval)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The first requests as fast as the later ones: a new pod (a canary) is judged on its
        # p99 from its first answer on, so the status view's statements and models are built
        # before the server accepts connections.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(_warm_up, ctx), WARM_UP_TIMEOUT_S)
        # What is alive now (the app, SQLAlchemy's and pydantic's machinery) lives as long as the
        # process: keep it out of the collector's full passes, which otherwise pause requests
        # (about 80 ms at p99 for a 500-row page).
        gc.collect()
        gc.freeze()
        yield
        if ctx.hub is not None:
            await ctx.hub.close()

    app = FastAPI(
        title="arbx API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.add_middleware(ForgetOnWrite, shared=ctx.shared)
    app.add_middleware(RequestLimits)
    if admission is not None:  # before the limits read a body
        app.add_middleware(Admission, bounds=admission)
    app.add_middleware(MetricsMiddleware)  # outermost: the refusals count too
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    _handlers(app)
    _health(app, ctx)
    for module in (routes_read, routes_stage, routes_pnl, routes_scores, routes_control, stream):
        app.include_router(module.router)
    web = static_dir if static_dir is not None else WEB_DIR
    if web.is_dir():
        app.mount("/", StaticFiles(directory=web, html=True), name="web")
    return app


async def serve(
    app: FastAPI,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    log_level: str = "warning",
    drain_s: float = 0.0,
) -> None:
    """Serve ``app`` on ``host:port`` in the running event loop until ``stop`` is set.

    Signals stay with the caller (set ``stop`` from them). Once it is set, ``/readyz`` answers
    503 for ``drain_s`` seconds while everything else is still served; then streams end, then
    the server.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,  # the stream's ?token= would land in it
        log_config=None,  # uvicorn's records go to the process's handler (arbx.obs.logging)
        lifespan="on",
        timeout_graceful_shutdown=5,
        **SERVER_LIMITS,
    )
    server = _Server(config)

    async def watch() -> None:
        await stop.wait()
        ctx = getattr(app.state, "ctx", None)
        if isinstance(ctx, ApiContext):
            ctx.draining = True
            if drain_s > 0:
                log.info("shutting down: not ready, serving %g s more", drain_s)
                await asyncio.sleep(drain_s)
        hub = getattr(ctx, "hub", None)
        if isinstance(hub, EventHub):
            await hub.close()
        server.should_exit = True

    watcher = asyncio.create_task(watch())
    try:
        await server.serve()
    except SystemExit:  # uvicorn exits when it cannot bind
        raise ConfigError(f"the API cannot listen on {host}:{port}") from None
    finally:
        watcher.cancel()


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers (the embedding program owns them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signal handling to the caller."""
        yield


# --- health -----------------------------------------------------------------------------------


def _health(app: FastAPI, ctx: ApiContext) -> None:
    @app.get("/healthz", response_model=HealthOut, tags=["health"], summary="Process alive")
    async def healthz() -> HealthOut:
        """The process answers (no token needed)."""
        return HealthOut()

    @app.get(
        "/readyz",
        response_model=ReadyOut,
        tags=["health"],
        summary="Ready to serve",
        responses={
            422: {"model": ErrorOut, "description": "a bad query parameter"},
            503: {"model": ReadyOut, "description": "a check failed"},
        },
    )
    async def readyz(
        engine: Annotated[
            bool, Query(description="false: judge the API alone (database, not shutting down)")
        ] = True,
    ) -> Any:
        """The database answers and the engine's heartbeat is fresh (no token needed).

        503 as soon as shutdown begins. ``?engine=false`` leaves the heartbeat out: a load
        balancer's probe, so that operators keep the API (and the kill switch) when the engine
        is down.
        """
        if ctx.draining:
            return _ready(ctx, False, "ok", None, "shutting down")
        try:
            age = await asyncio.wait_for(asyncio.to_thread(_heartbeat_age, ctx), READY_TIMEOUT_S)
        except (OperationalError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else database_problem(exc)
            log.warning("readiness: database unreachable: %s", scrub_text(_line(exc)))
            return _ready(ctx, False, f"unreachable: {reason}", None, "the database is down")
        if not engine:
            return _ready(ctx, True, "ok", age, None)
        if age is None:
            return _ready(ctx, False, "ok", None, "no engine heartbeat recorded yet")
        if age > ctx.heartbeat_max_age_s:
            return _ready(
                ctx,
                False,
                "ok",
                age,
                f"engine heartbeat is {age:.1f} s old (limit {ctx.heartbeat_max_age_s:g} s)",
            )
        return _ready(ctx, True, "ok", age, None)


def _heartbeat_age(ctx: ApiContext) -> float | None:
    with ctx.reader() as session:
        session.execute(select(1))
        beat = api_repo.get_heartbeat(session, ctx.chain(session))
    return None if beat is None else age_s(ctx.clock(), beat.at)


def _ready(
    ctx: ApiContext, ok: bool, database: str, age: float | None, detail: str | None
) -> JSONResponse:
    body = ReadyOut(
        ready=ok,
        database=database,
        heartbeat_age_s=age,
        heartbeat_max_age_s=ctx.heartbeat_max_age_s,
        detail=detail,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)


# --- errors -----------------------------------------------------------------------------------


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse({"detail": detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc.errors())}, 422)

    @app.exception_handler(InputError)
    async def bad_input(_: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 400)

    @app.exception_handler(OperationalError)
    async def database_down(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", scrub_text(_line(exc)))
        return JSONResponse({"detail": f"database unavailable: {database_problem(exc)}"}, 503)


def validation_message(errors: Any) -> str:
    """FastAPI's list of validation errors as one line: where, then what, for each."""
    parts = []
    for error in list(errors)[:5]:
        loc = [str(p) for p in error.get("loc", ())]
        kind, path = (loc[0], loc[1:]) if loc else ("", [])
        msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            parts.append("request body is not valid JSON")
            continue
        if kind == "body":
            where = f"body field '{'.'.join(path)}'" if path else "request body"
        elif kind in ("query", "path", "header", "cookie"):
            where = f"{kind} parameter '{'.'.join(path)}'"
        else:
            where = ".".join(loc) or "request"
        if error.get("type") == "missing":
            parts.append(f"{where} is required")
        else:
            parts.append(f"{where}: {msg}")
    return "; ".join(parts) or "invalid request"


_PROBLEMS: Final = (  # what a driver's message says, in words that name no host or user
    ("password authentication failed", "authentication failed"),
    ("authentication failed", "authentication failed"),
    ("does not exist", "no such database or user"),
    ("connection refused", "connection refused"),
    ("timeout", "timed out"),
    ("timed out", "timed out"),
    ("could not translate host name", "unknown host"),
    ("name or service not known", "unknown host"),
    ("too many connections", "too many connections"),
    ("database is locked", "database is busy"),
    ("unable to open database file", "cannot open the database file"),
    ("disk i/o error", "disk error"),
)


def database_problem(exc: BaseException) -> str:
    """What went wrong with the database, in a few words that name no host, user or path."""
    text = _line(exc).lower()
    return next((words for marker, words in _PROBLEMS if marker in text), "connection failed")


def _warm_up(ctx: ApiContext) -> None:
    """Answer the status view once (nothing is sent anywhere); a database that is not there
    yet leaves the cost to the first request."""
    try:
        with ctx.reader() as session:
            views.status(ctx, session, ctx.clock())
    except Exception as exc:  # whatever fails here fails again, visibly, in a request
        log.info("warm-up skipped: %s", scrub_text(_line(exc)))


def _line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
