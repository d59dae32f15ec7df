"""Named dependencies shared by the routers (no globals: everything hangs off `app.state`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from central.commands import Commands
from central.service import CentralService
from central.settings import Settings
from gridwatch.clock import Clock


def get_service(request: Request) -> CentralService:
    service: CentralService = request.app.state.service
    return service


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_commands(request: Request) -> Commands:
    commands: Commands = request.app.state.commands
    return commands


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


ServiceDep = Annotated[CentralService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CommandsDep = Annotated[Commands, Depends(get_commands)]
ClockDep = Annotated[Clock, Depends(get_clock)]
