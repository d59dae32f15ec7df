"""Named dependencies shared by the routers (no globals: everything hangs off `app.state`)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request

from central.auth import AnyUser
from central.commands import Commands
from central.service import CentralService
from central.settings import Settings
from central.workflow import Actor
from gridwatch.clock import Clock
from gridwatch.contract.enums import UserRole

# These dependencies only read app state: they are async so FastAPI runs them on the event loop
# instead of sending each through the threadpool (measured: it dominated /alerts under load).


async def get_service(request: Request) -> CentralService:
    service: CentralService = request.app.state.service
    return service


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_commands(request: Request) -> Commands:
    commands: Commands = request.app.state.commands
    return commands


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


ServiceDep = Annotated[CentralService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CommandsDep = Annotated[Commands, Depends(get_commands)]
ClockDep = Annotated[Clock, Depends(get_clock)]


def alert_grids(settings: Settings, actor: Actor) -> frozenset[str] | None:
    """The grids whose alerts `actor` may see: None (all alerts) for every role but officer.

    An officer with grids in `central.users[].grids` sees only the alerts of those grids. An
    officer account the config gives no grids (e.g. one made with `gridwatch central user add`)
    is not limited: the config is where an officer's grids are decided.
    """
    if actor.role is not UserRole.OFFICER:
        return None
    user = next((u for u in settings.site.central.users if u.username == actor.username), None)
    return frozenset(user.grids) if user is not None and user.grids else None


def alert_visible(grids: Collection[str] | None, alert: Mapping[str, Any]) -> bool:
    """Whether an alert item is within `grids` (None: no restriction)."""
    return grids is None or alert.get("grid") in grids


def stream_filter(settings: Settings, actor: Actor) -> Callable[[str, Any], bool] | None:
    """For the SSE stream: which (event, data) an officer receives; None lets everything through.

    Officers get `alert` events of their own grids only and no `escalation` notices (those name
    alerts without their grid and go to supervisors); `device` and `edge` health passes.
    """
    grids = alert_grids(settings, actor)
    if grids is None:
        return None

    def accept(event: str, data: Any) -> bool:
        if event == "alert":
            return isinstance(data, Mapping) and alert_visible(grids, data)
        return event != "escalation"

    return accept


async def get_alert_scope(settings: SettingsDep, actor: AnyUser) -> frozenset[str] | None:
    return alert_grids(settings, actor)


AlertScope = Annotated[frozenset[str] | None, Depends(get_alert_scope)]
"""The caller's alert grids (None: all); see `alert_grids`."""
