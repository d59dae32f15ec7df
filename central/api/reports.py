"""Alarm-system KPIs, the audit log and time-series history."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from central.api.deps import ClockDep, ServiceDep
from central.api.schemas import Page, Rfc3339
from central.auth import AnyUser, require
from central.workflow import Actor
from gridwatch.contract.enums import UserRole

router = APIRouter(tags=["reports"])

KPI_ROLES = (UserRole.OPERATOR, UserRole.SUPERVISOR, UserRole.ENGINEER, UserRole.ADMIN)
AUDIT_ROLES = (UserRole.SUPERVISOR, UserRole.ADMIN)
Measurement = Literal["position", "gps", "vitals", "device", "alert"]


@router.get("/kpi")
def kpi(
    service: ServiceDep,
    clock: ClockDep,
    _actor: Annotated[Actor, Depends(require(*KPI_ROLES))],
    window_s: Annotated[int, Query(ge=600, le=90 * 86_400, description="Look-back window in seconds")] = 86_400,
) -> dict[str, Any]:
    """Alarm-system health (EEMUA 191 / ISA-18.2) per operator, grid and zone over the window."""
    result: dict[str, Any] = service.kpi(clock.now(), window_s)
    return result


@router.get("/audit", response_model=Page)
def audit(
    service: ServiceDep,
    _actor: Annotated[Actor, Depends(require(*AUDIT_ROLES))],
    since: Rfc3339 | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """The append-only, hash-chained audit log (who did what, when and why), oldest first from `since`."""
    items, next_cursor = service.audit(since=since, limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/audit/verify")
def audit_verify(service: ServiceDep, _actor: Annotated[Actor, Depends(require(*AUDIT_ROLES))]) -> dict[str, Any]:
    """Recompute the hash chain and report whether (and where) it is broken."""
    result: dict[str, Any] = service.audit_verify()
    return result


@router.get("/telemetry", responses={503: {"description": "time-series store unavailable"}})
async def telemetry(
    request: Request,
    clock: ClockDep,
    _actor: AnyUser,
    measurement: Measurement,
    subject: Annotated[str, Query(min_length=1, max_length=64, description="tag, band, person, device or rule id")],
    start: Annotated[Rfc3339 | None, Query(alias="from", description="Default: one hour before `to`")] = None,
    end: Annotated[Rfc3339 | None, Query(alias="to", description="Default: now")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """History of one subject read back from the time-series store."""
    end = end or clock.now()
    start = start or end - timedelta(hours=1)
    if start > end:
        raise HTTPException(400, "`from` is after `to`")
    store = request.app.state.tsdb
    if store is None:
        raise HTTPException(503, "the time-series store is not open")
    points = await store.query(measurement, subject, start, end, limit)
    return {"measurement": measurement, "subject": subject, "from": start, "to": end, "items": points}
