"""Alerts: list, detail, workflow commands (contract §4, §4.1) and snapshots."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response

from central.api.deps import AlertScope, ServiceDep, alert_visible
from central.api.schemas import (
    AlertItem,
    AlertList,
    CommentBody,
    DispatchBody,
    NoteBody,
    ResolveBody,
    Rfc3339,
    ShelveBody,
    alert_list_json,
)
from central.auth import AnyUser, require, require_or_query
from central.workflow import ALLOWED_ROLES, Actor, Command
from gridwatch.contract.enums import Condition, Level, WorkflowState

router = APIRouter(tags=["alerts"])

AlertId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="The edge's alert_id")]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such alert"},
    409: {"description": "not allowed from the alert's current state"},
}


def _may(command: Command) -> Any:
    return Depends(require(*sorted(ALLOWED_ROLES[command])))


def _in_scope(service: ServiceDep, scope: frozenset[str] | None, alert_id: str) -> dict[str, Any] | None:
    """An officer's alert outside their grids is answered 404, exactly as one that does not exist.

    Returns the alert detail when it had to be read (officers only), else None.
    """
    if scope is None:
        return None
    alert: dict[str, Any] = service.get_alert(alert_id)
    if not alert_visible(scope, alert):
        raise HTTPException(404, f"no alert {alert_id!r}")
    return alert


# List queries running at once per process. FastAPI would run up to 40 sync handlers at once;
# under an open-loop 200 req/s they fought for the GIL, each request's CPU doubled and the queue
# grew without end (bench/central.py). On SQLite the work is all Python and SQLite under the GIL,
# so one at a time is fastest (200 req/s answered, 4.3 ms CPU each, against 176 req/s with four);
# PostgreSQL requests also wait on the server with the GIL released, so a few overlap.
_LIST_THREADS = {True: 1, False: 4}


def _limiter(request: Request, sqlite: bool) -> anyio.CapacityLimiter:
    """The app's own (an app's event loop owns it; tests run several apps in one process)."""
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "list_limiter", None)
    if limiter is None:  # created on first use: anyio needs the running event loop
        limiter = request.app.state.list_limiter = anyio.CapacityLimiter(_LIST_THREADS[sqlite])
    return limiter


@router.get("/alerts", response_model=AlertList)
async def list_alerts(
    request: Request,
    service: ServiceDep,
    _actor: AnyUser,
    scope: AlertScope,
    state: Annotated[WorkflowState | None, Query(description="Workflow state")] = None,
    level: Level | None = None,
    rule: Annotated[str | None, Query(max_length=64)] = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
    area: Annotated[str | None, Query(max_length=64)] = None,
    grid: Annotated[str | None, Query(max_length=64)] = None,
    condition: Annotated[Condition | None, Query(description="gridwatch extension: active or cleared")] = None,
    since: Annotated[Rfc3339 | None, Query(description="Last change at or after")] = None,
    until: Annotated[Rfc3339 | None, Query(description="Last change before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
) -> Any:
    """Alerts, newest first, filtered; page with `cursor` = the previous answer's `next_cursor`.

    An officer gets only the alerts of their own grids (`central.users[].grids`).
    """

    def query() -> tuple[list[dict[str, Any]], str | None, bytes | None]:
        items, next_cursor = service.list_alerts(
            state=state,
            level=level,
            rule=rule,
            site=site,
            area=area,
            grid=grid,
            condition=condition,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
            grids=scope,
        )
        return items, next_cursor, alert_list_json(items, next_cursor)

    limiter = _limiter(request, service.db.is_sqlite)
    items, next_cursor, body = await anyio.to_thread.run_sync(query, limiter=limiter)
    # `response_model` stays (it is the OpenAPI schema); a Response returned as is skips FastAPI
    # validating and dumping 100 models. The same bytes, see alert_list_json.
    if body is None:  # not the usual item shape: let the model validate it (a bug answers 500)
        return {"items": items, "next_cursor": next_cursor}
    return Response(body, media_type="application/json")


@router.get("/alerts/{alert_id}", responses={404: ERRORS[404]})
def get_alert(alert_id: AlertId, service: ServiceDep, _actor: AnyUser, scope: AlertScope) -> dict[str, Any]:
    """The alert with its transitions, workflow history, evidence and response plan (404 outside an officer's grids)."""
    alert: dict[str, Any] | None = _in_scope(service, scope, alert_id) or service.get_alert(alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert '{alert_id}'")
    AlertItem.model_validate(alert)  # the detail is an item plus more; a broken item is a bug here, not later
    return alert


@router.post("/alerts/{alert_id}/ack", response_model=AlertItem, responses=ERRORS)
def ack(
    alert_id: AlertId,
    service: ServiceDep,
    actor: Annotated[Actor, _may(Command.ACK)],
    scope: AlertScope,
    body: Annotated[NoteBody | None, Body()] = None,
) -> dict[str, Any]:
    """Acknowledge (new → acknowledged)."""
    _in_scope(service, scope, alert_id)
    result: dict[str, Any] = service.ack(alert_id, actor, note=body.note if body else None)
    return result


@router.post("/alerts/{alert_id}/dispatch", response_model=AlertItem, responses=ERRORS)
def dispatch(
    alert_id: AlertId,
    body: DispatchBody,
    service: ServiceDep,
    actor: Annotated[Actor, _may(Command.DISPATCH)],
    scope: AlertScope,
) -> dict[str, Any]:
    """Send an officer (new/acknowledged → dispatched; ack may be skipped)."""
    _in_scope(service, scope, alert_id)
    result: dict[str, Any] = service.dispatch(alert_id, actor, body.officer, note=body.note)
    return result


@router.post("/alerts/{alert_id}/resolve", response_model=AlertItem, responses=ERRORS)
def resolve(
    alert_id: AlertId,
    body: ResolveBody,
    service: ServiceDep,
    actor: Annotated[Actor, _may(Command.RESOLVE)],
    scope: AlertScope,
) -> dict[str, Any]:
    """Resolve with a resolution (real, nuisance, false, test); unchecked response-plan steps are recorded."""
    _in_scope(service, scope, alert_id)
    result: dict[str, Any] = service.resolve(alert_id, actor, body.resolution, body.note, steps_done=body.steps_done)
    return result


@router.post("/alerts/{alert_id}/close", response_model=AlertItem, responses=ERRORS)
def close(
    alert_id: AlertId,
    service: ServiceDep,
    actor: Annotated[Actor, _may(Command.CLOSE)],
    scope: AlertScope,
    body: Annotated[NoteBody | None, Body()] = None,
) -> dict[str, Any]:
    """Close a resolved alert (supervisor or admin; a high alert only once its condition has cleared)."""
    _in_scope(service, scope, alert_id)
    result: dict[str, Any] = service.close(alert_id, actor, note=body.note if body else None)
    return result


@router.post("/alerts/{alert_id}/shelve", response_model=AlertItem, responses=ERRORS)
def shelve(
    alert_id: AlertId,
    body: ShelveBody,
    service: ServiceDep,
    actor: Annotated[Actor, _may(Command.SHELVE)],
    scope: AlertScope,
) -> dict[str, Any]:
    """Shelve until a time; the alert then returns to its previous state."""
    _in_scope(service, scope, alert_id)
    result: dict[str, Any] = service.shelve(alert_id, actor, body.until, body.reason)
    return result


@router.post("/alerts/{alert_id}/comment", response_model=AlertItem, responses=ERRORS)
def comment(
    alert_id: AlertId,
    body: CommentBody,
    service: ServiceDep,
    actor: Annotated[Actor, _may(Command.COMMENT)],
    scope: AlertScope,
) -> dict[str, Any]:
    """Add a note to the workflow history (the state does not change)."""
    _in_scope(service, scope, alert_id)
    result: dict[str, Any] = service.comment(alert_id, actor, body.note)
    return result


@router.get(
    "/snapshots/{sha256}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "the JPEG"}, 404: {"description": "unknown"}},
)
def snapshot(
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    service: ServiceDep,
    _actor: Annotated[Actor, Depends(require_or_query())],
) -> Response:
    """A camera snapshot referenced by an alert; the token may be given as `?access_token=` for <img>."""
    jpeg: bytes | None = service.snapshot(sha256)
    if jpeg is None:
        raise HTTPException(404, f"no snapshot {sha256}")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400, immutable"})
