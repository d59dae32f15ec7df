"""`create_app(settings)`: the central FastAPI app; database, service, stores and tasks live in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from central.api import api_router, health
from central.auth import LoginThrottle
from central.commands import Commands
from central.ingest import Ingest, Mode
from central.metrics import Metrics
from central.relay import StreamRelay
from central.service import CentralService
from central.settings import Settings, ensure_sqlite_dir
from central.store.db import Database, open_database
from central.stream import Broadcaster
from central.tsdb import TimeSeriesStore, open_store
from central.workflow import WorkflowError
from gridwatch import __version__
from gridwatch.clock import Clock, SystemClock

log = logging.getLogger(__name__)


class _Latency:
    """Pure ASGI middleware (streams pass through untouched) timing requests by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"
            self.metrics.request_latency.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - start
            )


async def _tick(service: CentralService, clock: Clock, period: float) -> None:
    """Escalations, unshelving, edge.offline: the service's timers, once per `period`."""
    while True:
        try:
            await asyncio.to_thread(service.tick, clock.now())
        except Exception:  # a failing tick must not stop escalation for good; it is retried next period
            log.exception("service tick failed")
        await asyncio.sleep(period)


def _ingest_mode(settings: Settings) -> Mode:
    """Role "ingest" always shares the uplink; role "all" only with GRIDWATCH_INGEST_SHARED=1."""
    return "shared" if settings.shared_ingest or settings.role == "ingest" else "direct"


def _open_tsdb(settings: Settings) -> TimeSeriesStore:
    ensure_sqlite_dir(settings.tsdb_url)
    return open_store(settings.tsdb_url, token=settings.tsdb_token, org=settings.tsdb_org, bucket=settings.tsdb_bucket)


def _open_service(settings: Settings, clock: Clock, broadcaster: Broadcaster) -> tuple[Database, CentralService]:
    """Open (and migrate) the database and build the service; runs in a worker thread."""
    ensure_sqlite_dir(settings.database_url)
    db = open_database(settings.database_url)
    service = CentralService(db, settings.site, clock=clock, publish=broadcaster.publish)
    if settings.admin_password:
        service.ensure_admin(settings.admin_password)
    service.sync_config_users()
    return db, service


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WorkflowError)
    async def workflow_error(_request: Request, exc: WorkflowError) -> JSONResponse:
        if exc.status == 422:  # one shape for every 422, whether pydantic or the workflow found the problem
            detail: Any = [{"loc": ["request"], "msg": exc.detail, "type": "value_error"}]
            return JSONResponse({"detail": detail}, status_code=422)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(ResponseValidationError)
    async def response_error(request: Request, exc: ResponseValidationError) -> JSONResponse:
        log.error(
            "bug: %s %s produced a response that does not match its schema: %s",
            request.method,
            request.url.path,
            exc.errors(),
        )
        return JSONResponse({"detail": "internal error (see central's log)"}, status_code=500)

    @app.exception_handler(Exception)
    async def last_resort(request: Request, exc: Exception) -> JSONResponse:
        log.exception("bug: unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error (see central's log)"}, status_code=500)


def create_app(settings: Settings, *, clock: Clock | None = None, tsdb: TimeSeriesStore | None = None) -> FastAPI:
    """Build the app; nothing is opened until the lifespan starts (so importing has no side effects).

    `tsdb` replaces the time-series store named by `settings.tsdb_url` (any object with the store's
    start/write/query/ping/close); it is started and closed by the lifespan like the real one.
    """
    clock = clock or SystemClock()
    metrics = Metrics()
    broadcaster = Broadcaster(metrics, settings.sse_queue_size)
    commands = Commands(settings.site, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broadcaster.bind(asyncio.get_running_loop())
        db, service = await asyncio.to_thread(_open_service, settings, clock, broadcaster)
        store = tsdb if tsdb is not None else _open_tsdb(settings)
        commands.recorder = service.register_command
        tasks: list[asyncio.Task[None]] = []
        try:
            await store.start()
            app.state.service, app.state.tsdb = service, store
            if settings.role == "api":
                ingest = Ingest(settings, service, store, commands, metrics, mode="commands")
            else:
                # two sessions: alarms never wait behind telemetry (central/ingest.py "Lanes")
                mode = _ingest_mode(settings)
                ingest = Ingest(settings, service, store, commands, metrics, mode=mode, lane="alarms")
                bulk = Ingest(settings, service, store, commands, metrics, mode=mode, lane="bulk")
                app.state.ingest_bulk = bulk
                tasks.append(asyncio.create_task(bulk.run(), name="central-ingest-bulk"))
            app.state.ingest = ingest
            tasks.append(asyncio.create_task(ingest.run(), name="central-ingest"))
            if settings.role == "all" and ingest.mode == "shared":
                # a shared subscription may hand our commands' cmd_results to another worker: hear
                # them on a plain subscription of our own (docs/scale-out.md)
                listener = Ingest(settings, service, store, commands, metrics, mode="commands", primary=False)
                app.state.cmd_listener = listener
                tasks.append(asyncio.create_task(listener.run(), name="central-cmd-results"))
            # every change this process makes reaches consoles on the others, and theirs ours
            relay = StreamRelay(settings, broadcaster, metrics, receive=settings.role != "ingest")
            broadcaster.relay = relay.send
            app.state.relay = relay
            tasks.append(asyncio.create_task(relay.run(), name="central-stream-relay"))
            if settings.role != "api":  # every ingest worker ticks: each timer step re-checks under a row lock
                tasks.append(asyncio.create_task(_tick(service, clock, settings.tick_s), name="central-tick"))
            log.info("central %s for site '%s' (role %s) started", __version__, settings.site.site.id, settings.role)
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await store.close()
            db.close()

    app = FastAPI(
        title="gridwatch central",
        version=__version__,
        description="Warning API of gridwatch: alerts, workflow, stream, health, KPIs, audit (see docs/api.md).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.metrics = metrics
    app.state.broadcaster = broadcaster
    app.state.commands = commands
    app.state.throttle = LoginThrottle(settings.login_failures_per_minute, 60.0)
    app.state.service = app.state.tsdb = app.state.ingest = app.state.ingest_bulk = None
    app.state.cmd_listener = app.state.relay = None
    _install_error_handlers(app)
    app.add_middleware(_Latency, metrics=metrics)
    if settings.dev:  # a console served by a dev server on another port
        app.add_middleware(
            CORSMiddleware,
            allow_origin_regex=r"https?://(localhost|127\.0\.0\.1)(:\d+)?",
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.include_router(health.router)
    if settings.role != "ingest":
        app.include_router(api_router())
        static = settings.static_dir
        if static is not None and (static / "index.html").is_file():
            app.mount("/", StaticFiles(directory=static, html=True), name="console")
    return app
