"""Request bodies and response shapes of the HTTP API (contract §4.0)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import to_json

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


_ALERT_ITEM_KEYS = tuple(AlertItem.model_fields)
_LEVELS = frozenset(v.value for v in Level)
_CONDITIONS = frozenset(v.value for v in Condition)
_WORKFLOW_STATES = frozenset(v.value for v in WorkflowState)
_UTC = "+00:00"


def _str_or_none(value: Any) -> bool:
    return value is None or type(value) is str


def _wire_item(item: dict[str, Any]) -> dict[str, Any] | None:
    """`AlertItem.model_validate(item).model_dump(mode="json")`, in the same key order, or None if invalid."""
    try:
        wire = {key: item[key] for key in _ALERT_ITEM_KEYS}
    except KeyError:
        return None
    subject, devices = wire["subject"], wire["devices"]
    first_seen, last_change = wire["first_seen"], wire["last_change"]
    if not (
        type(wire["id"]) is str
        and type(wire["rule"]) is str
        and type(wire["site"]) is str
        and type(wire["title"]) is str
        and wire["level"] in _LEVELS
        and wire["condition"] in _CONDITIONS
        and wire["workflow"] in _WORKFLOW_STATES
        and _str_or_none(wire["area"])
        and _str_or_none(wire["grid"])
        and _str_or_none(wire["zone"])
        and _str_or_none(wire["snapshot"])
        and _str_or_none(wire["escalated_to"])
        and type(subject) is dict
        and len(subject) == 2
        and type(subject.get("kind")) is str
        and type(subject.get("id")) is str
        and type(devices) is list
        and all(type(d) is str for d in devices)
        # RFC 3339 in UTC as `views.ts` writes it; the model's datetime dumps UTC with `Z`
        and type(first_seen) is str
        and first_seen.endswith(_UTC)
        and first_seen[10:11] == "T"
        and type(last_change) is str
        and last_change.endswith(_UTC)
        and last_change[10:11] == "T"
    ):
        return None
    wire["first_seen"] = first_seen[:-6] + "Z"
    wire["last_change"] = last_change[:-6] + "Z"
    for key in item:  # extra keys pass through (`_Loose`), after the declared ones
        if key not in wire:
            wire[key] = item[key]
    return wire


def alert_list_json(items: list[dict[str, Any]], next_cursor: str | None) -> bytes | None:
    """The JSON of `AlertList(items=items, next_cursor=next_cursor)`, byte for byte, without building the models.

    Validating and dumping 100 `AlertItem`s per page was most of a list request's time outside the
    database. Service items (`central.domain.views.alert_item`) already have the model's shape; this
    checks what validation would and writes what `model_dump_json` would: declared fields first in
    declaration order, then the extra keys as they come, UTC date-times with `Z`. None when an item
    is not of that shape: the caller then lets the model validate it (and report the bug).
    """
    wire_items = []
    for item in items:
        wire = _wire_item(item)
        if wire is None:
            return None
        wire_items.append(wire)
    if not _str_or_none(next_cursor):
        return None
    return to_json({"items": wire_items, "next_cursor": next_cursor})


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
