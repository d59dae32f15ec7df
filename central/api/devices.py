"""Edges and devices: health, maintenance (out of / in service) and zone walk tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path

from central.api.deps import ClockDep, CommandsDep, ServiceDep, SettingsDep
from central.api.schemas import CommandOutcome, Items, MaintenanceResult, OutOfServiceBody, WalkTestBody
from central.auth import AnyUser, require
from central.commands import BrokerDown, Commands, NoEdge, edge_for_device, edge_for_zone, new_request_id
from central.workflow import MAINTENANCE_ROLES, Actor
from gridwatch.config.models import SiteConfig
from gridwatch.contract.uplink import MaintenanceCmd, WalkTestCmd

router = APIRouter(tags=["devices"])

IdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Engineer = Annotated[Actor, Depends(require(*sorted(MAINTENANCE_ROLES)))]
ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "unknown device or zone"}}


@router.get("/edges", response_model=Items)
def edges(service: ServiceDep, _actor: AnyUser) -> dict[str, Any]:
    """Every edge: online, last heartbeat, version, config hash, outbox depth."""
    return {"items": service.edges()}


@router.get("/devices", response_model=Items)
def devices(service: ServiceDep, _actor: AnyUser) -> dict[str, Any]:
    """Every device: online, last seen, battery, dead letters, maintenance state."""
    return {"items": service.devices()}


async def _command(
    commands: Commands, edge: str | None, cmd: MaintenanceCmd | WalkTestCmd, timeout: float, actor: Actor
) -> CommandOutcome | None:
    """Send the command to the edge and report its answer; the change is recorded centrally either way."""
    if edge is None:
        return None
    try:
        result = await commands.send(edge, cmd, timeout, actor)
    except BrokerDown:
        result = None
    if result is None:
        return CommandOutcome(edge=edge, request_id=cmd.request_id, answered=False)
    return CommandOutcome(edge=edge, request_id=cmd.request_id, answered=True, ok=result.ok, result=result.result)


def _edge_or_none(finder: Callable[[SiteConfig, str], str], site: SiteConfig, target: str) -> str | None:
    """The edge serving `target`, or None when no edge does (the change is then only recorded centrally)."""
    try:
        return finder(site, target)
    except NoEdge:
        return None


@router.post("/devices/{device_id}/out_of_service", response_model=MaintenanceResult, responses=ERRORS)
async def out_of_service(
    device_id: IdPath,
    body: OutOfServiceBody,
    service: ServiceDep,
    settings: SettingsDep,
    commands: CommandsDep,
    actor: Engineer,
) -> dict[str, Any]:
    """Maintenance: the device's alerts are still evaluated and logged but not raised until `until`."""
    if settings.site.device(device_id) is None:
        raise HTTPException(404, f"no device '{device_id}'")
    recorded = await asyncio.to_thread(service.set_out_of_service, device_id, actor, body.until, body.reason)
    cmd = MaintenanceCmd(request_id=new_request_id(), device=device_id, until=body.until, reason=body.reason)
    outcome = await _command(
        commands, _edge_or_none(edge_for_device, settings.site, device_id), cmd, settings.cmd_timeout_s, actor
    )
    return {**(recorded or {}), "command": outcome}


@router.post("/devices/{device_id}/in_service", response_model=MaintenanceResult, responses=ERRORS)
async def in_service(
    device_id: IdPath, service: ServiceDep, settings: SettingsDep, commands: CommandsDep, actor: Engineer
) -> dict[str, Any]:
    """End maintenance: the device's alerts are raised again."""
    if settings.site.device(device_id) is None:
        raise HTTPException(404, f"no device '{device_id}'")
    recorded = await asyncio.to_thread(service.set_in_service, device_id, actor)
    cmd = MaintenanceCmd(request_id=new_request_id(), device=device_id, until=None)
    outcome = await _command(
        commands, _edge_or_none(edge_for_device, settings.site, device_id), cmd, settings.cmd_timeout_s, actor
    )
    return {**(recorded or {}), "command": outcome}


@router.post("/zones/{zone_id}/walk_test", response_model=MaintenanceResult, responses=ERRORS)
async def walk_test(
    zone_id: IdPath,
    body: WalkTestBody,
    service: ServiceDep,
    settings: SettingsDep,
    commands: CommandsDep,
    clock: ClockDep,
    actor: Engineer,
) -> dict[str, Any]:
    """Walk test: for `minutes`, detections in the zone are recorded as test results (probability of detection)."""
    if settings.site.zone(zone_id) is None:
        raise HTTPException(404, f"no zone '{zone_id}'")
    recorded = await asyncio.to_thread(service.start_walk_test, zone_id, actor, body.minutes)
    until = (recorded or {}).get("until") or (clock.now() + timedelta(minutes=body.minutes))
    cmd = WalkTestCmd(request_id=new_request_id(), zone=zone_id, until=until)
    outcome = await _command(
        commands, _edge_or_none(edge_for_zone, settings.site, zone_id), cmd, settings.cmd_timeout_s, actor
    )
    return {**(recorded or {}), "command": outcome}
