"""Who am I, the site map for the console, positions, people and grids (headcount, roll call)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path

from central.api.deps import CommandsDep, ServiceDep, SettingsDep
from central.api.schemas import Items, Me
from central.auth import AnyUser, require
from central.commands import BrokerDown, NoEdge, edge_for_grid, new_request_id
from central.workflow import Actor
from gridwatch.config.models import SiteConfig
from gridwatch.contract.enums import UserRole
from gridwatch.contract.uplink import RollcallCmd

router = APIRouter(tags=["site"])

IdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
ROLLCALL_ROLES = (UserRole.OPERATOR, UserRole.OFFICER, UserRole.SUPERVISOR, UserRole.ADMIN)


@router.get("/me", response_model=Me)
def me(actor: AnyUser, settings: SettingsDep) -> Me:
    """The caller: username, role, and (from the config) name and grids."""
    user = next((u for u in settings.site.central.users if u.username == actor.username), None)
    return Me(
        username=actor.username,
        role=actor.role,
        name=user.name if user else "",
        grids=list(user.grids) if user else [],
    )


def site_map(site: SiteConfig) -> dict[str, Any]:
    """The static map model the console draws: polygons in site metres, ids, kinds, who is responsible."""
    return {
        "site": {"id": site.site.id, "name": site.site.name, "timezone": site.site.timezone},
        "areas": [
            {
                "id": a.id,
                "name": a.name,
                "supervisor": a.supervisor,
                "grids": [
                    {
                        "id": g.id,
                        "name": g.name,
                        "officer": g.officer,
                        "polygon": [list(p) for p in g.polygon],
                        "expected_headcount": g.expected_headcount,
                    }
                    for g in a.grids
                ],
            }
            for a in site.areas
        ],
        "zones": [
            {
                "id": z.id,
                "name": z.name,
                "kind": str(z.kind),
                "area": z.area,
                "polygon": [list(p) for p in z.polygon] if z.polygon else None,
                "gps_polygon": [list(p) for p in z.gps_polygon] if z.gps_polygon else None,
                "neighbours": list(z.neighbours),
            }
            for z in site.zones
        ],
        "doors": [
            {"id": d.id, "name": d.name, "zone": d.zone, "position": list(d.position) if d.position else None}
            for d in site.doors
        ],
        "devices": [
            {
                "id": d.id,
                "name": d.name,
                "family": str(d.family),
                "zone": d.zone,
                "door": d.door,
                "position": list(d.position) if d.position else None,
            }
            for d in site.devices
        ],
        "people": [{"id": p.id, "name": p.name, "role": str(p.role), "grid": p.grid} for p in site.people],
        "edges": [{"id": e.id, "name": e.name, "areas": list(e.areas), "zones": list(e.zones)} for e in site.edges],
        "users": [{"username": u.username, "role": str(u.role), "name": u.name} for u in site.central.users],
        "response_plans": {rule: list(steps) for rule, steps in site.response_plans.items()},
    }


@router.get("/site")
def site(settings: SettingsDep, _actor: AnyUser) -> dict[str, Any]:
    """Map model for the console: site, areas/grids, zones, doors, devices, people, edges, users, response plans."""
    return site_map(settings.site)


@router.get("/positions", response_model=Items)
def positions(service: ServiceDep, _actor: AnyUser) -> dict[str, Any]:
    """Latest known position of every tag (thinned), for the live map."""
    return {"items": service.positions()}


@router.get("/people/{person_id}/location", responses={404: {"description": "unknown person or no position yet"}})
def person_location(person_id: IdPath, service: ServiceDep, _actor: AnyUser) -> dict[str, Any]:
    """Last known position (site x,y or GPS) with its time and grid."""
    location: dict[str, Any] | None = service.person_location(person_id)
    if location is None:
        raise HTTPException(404, f"no known location for person '{person_id}'")
    return location


@router.get("/grids/{grid_id}/headcount", responses={404: {"description": "unknown grid"}})
def headcount(grid_id: IdPath, service: ServiceDep, settings: SettingsDep, _actor: AnyUser) -> dict[str, Any]:
    """Present / expected / missing list of a grid, from the latest positions."""
    if grid_id not in settings.site.grid_index():
        raise HTTPException(404, f"no grid '{grid_id}'")
    result: dict[str, Any] = service.headcount(grid_id)
    return result


@router.post(
    "/grids/{grid_id}/rollcall",
    responses={
        404: {"description": "unknown grid"},
        409: {"description": "no edge serves the grid"},
        503: {"description": "uplink broker not connected"},
        504: {"description": "the edge did not answer in time"},
    },
)
async def rollcall(
    grid_id: IdPath,
    settings: SettingsDep,
    commands: CommandsDep,
    actor: Annotated[Actor, Depends(require(*ROLLCALL_ROLES))],
) -> dict[str, Any]:
    """Ask the edge serving the grid for a roll call (`cmd/rollcall`) and return its `cmd_result`."""
    try:
        edge = edge_for_grid(settings.site, grid_id)
    except KeyError:
        raise HTTPException(404, f"no grid '{grid_id}'") from None
    except NoEdge as exc:
        raise HTTPException(409, str(exc)) from None
    cmd = RollcallCmd(request_id=new_request_id(), grid=grid_id)
    try:
        result = await commands.send(edge, cmd, settings.cmd_timeout_s, actor)
    except BrokerDown as exc:
        raise HTTPException(503, str(exc)) from None
    if result is None:
        raise HTTPException(504, f"edge '{edge}' did not answer the roll call within {settings.cmd_timeout_s:.0f} s")
    return {"edge": edge, "grid": grid_id, "request_id": result.request_id, "ok": result.ok, "result": result.result}
