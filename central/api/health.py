"""Liveness, readiness and Prometheus metrics (no token: probes and scrapers)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """200 while the process is up."""
    return {"status": "ok"}


async def _probe(name: str, check: Any) -> bool:
    try:
        return bool(await asyncio.wait_for(check(), 3))
    except Exception as exc:  # a probe that fails for any reason means "not ready", with the reason logged
        log.warning("readiness: %s is not reachable: %s", name, exc or type(exc).__name__)
        return False


@router.get(
    "/readyz",
    responses={503: {"description": "`detail` says which of broker, database, tsdb is not reachable"}},
)
async def readyz(request: Request) -> Any:
    """200 when the uplink broker, the database and the time-series store are reachable, else 503."""
    state = request.app.state
    service, tsdb = state.service, state.tsdb
    lanes = [lane for lane in (state.ingest, state.ingest_bulk) if lane is not None]

    async def database() -> bool:
        return bool(await asyncio.to_thread(service.ready))

    async def store() -> bool:
        return tsdb is not None and bool(await tsdb.ping())

    status = {
        "broker": bool(lanes) and all(lane.connected for lane in lanes),
        "database": await _probe("database", database),
        "tsdb": await _probe("tsdb", store),
    }
    if all(status.values()):
        return {"status": "ready", **status}
    return JSONResponse({"detail": status}, status_code=503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Prometheus text format: ingest counts, duplicates, malformed, alerts by level, SSE clients, latency."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
