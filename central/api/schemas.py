"""Request bodies and response shapes of the HTTP API (contract §4.0)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from gridwatch.contract.enums import Condition, Level, Resolution, UserRole, WorkflowState


def _rfc3339_only(value: Any) -> Any:
    """The schema says `date-time`; pydantic would also take epoch numbers, so refuse them to match it."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("give an RFC 3339 time with an offset, e.g. 2026-11-23T06:00:00Z")
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("give an RFC 3339 time with an offset, e.g. 2026-11-23T06:00:00Z")
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only)]
"""An aware RFC 3339 date-time (with Z or an offset); numbers and naive times get 422."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoteBody(_Body):
    note: str | None = Field(default=None, max_length=2000)


class DispatchBody(_Body):
    officer: str = Field(min_length=1, max_length=64, description="Username of the officer sent to the scene")
    note: str | None = Field(default=None, max_length=2000)


class ResolveBody(_Body):
    resolution: Resolution = Field(description="real, nuisance (benign stimulus), false (equipment fault) or test")
    note: str = Field(default="", max_length=2000)
    steps_done: list[str] | None = Field(
        default=None, max_length=100, description="Response-plan steps done; unchecked steps notify the supervisor"
    )


class ShelveBody(_Body):
    until: Rfc3339 = Field(description="When the alert returns from the shelf")
    reason: str = Field(min_length=1, max_length=500)


class CommentBody(_Body):
    note: str = Field(min_length=1, max_length=2000)


class OutOfServiceBody(_Body):
    until: Rfc3339 = Field(description="When the device returns to service by itself")
    reason: str = Field(min_length=1, max_length=500)


class WalkTestBody(_Body):
    minutes: int = Field(ge=1, le=240, description="How long detections in the zone count as test results")


class Error(BaseModel):
    """Every error answer: `detail` is a message (a list of {loc, msg, type} for 422)."""

    detail: str


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "malformed request (e.g. a body that is not JSON)"},
    401: {"model": Error, "description": "missing, invalid or expired token"},
    403: {"model": Error, "description": "the token's role may not do this"},
}


class _Loose(BaseModel):
    """Service dicts: the documented keys are checked, further keys pass through."""

    model_config = ConfigDict(extra="allow")


class Subject(_Loose):
    kind: str
    id: str


class AlertItem(_Loose):
    id: str
    rule: str
    level: Level
    condition: Condition
    workflow: WorkflowState
    site: str
    area: str | None = None
    grid: str | None = None
    zone: str | None = None
    subject: Subject
    devices: list[str]
    title: str
    first_seen: datetime
    last_change: datetime
    snapshot: str | None = None
    escalated_to: str | None = None


class AlertList(BaseModel):
    items: list[AlertItem]
    next_cursor: str | None


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = None


class Items(BaseModel):
    items: list[dict[str, Any]]


class Me(BaseModel):
    username: str
    role: UserRole
    name: str = ""
    grids: list[str] = Field(default_factory=list)


class CommandOutcome(BaseModel):
    """What an edge answered to a command (`cmd_result`), or `answered: false` if it did not in time."""

    edge: str
    request_id: str
    answered: bool
    ok: bool | None = None
    result: dict[str, Any] = Field(default_factory=dict)


class MaintenanceResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    command: CommandOutcome | None = Field(description="The edge's answer; null when no edge serves the target")
