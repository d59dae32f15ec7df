"""Edge → central uplink bodies and topics (contract §3).

Central parses every uplink body with `parse_uplink(suffix, payload)` and nothing else.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter

from .base import AwareDatetime, EventId, Frozen, Id, Sha256
from .enums import Condition, Family, Level, SubjectKind

RuleName = Annotated[str, StringConstraints(pattern=r"^[a-z_]+(\.[a-z_]+)+$", max_length=64)]

UPLINK_ROOT = "gridwatch/v1"


class UplinkKind(StrEnum):
    """The last topic level(s) under `gridwatch/v1/{site}/{edge}/`."""

    ALERTS = "alerts"
    EVENTS = "events"
    TELEMETRY = "telemetry"
    DEVICES = "devices"
    HEARTBEAT = "heartbeat"
    SNAPSHOTS = "snapshots"
    CMD = "cmd"
    CMD_RESULT = "cmd_result"


def uplink_topic(site: str, edge: str, kind: UplinkKind | str, *rest: str) -> str:
    """`gridwatch/v1/{site}/{edge}/{kind}[/rest…]`."""
    return "/".join((UPLINK_ROOT, site, edge, str(kind), *rest))


def split_uplink_topic(topic: str) -> tuple[str, str, str, tuple[str, ...]] | None:
    """(site, edge, kind, rest) of an uplink topic, or None if it is not one."""
    parts = topic.split("/")
    if len(parts) < 5 or "/".join(parts[:2]) != UPLINK_ROOT:
        return None
    return parts[2], parts[3], parts[4], tuple(parts[5:])


class _Body(Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Subject(_Body):
    kind: SubjectKind
    id: Id


Suppression = Literal["out_of_service", "walk_test"]


class AlertTransition(_Body):
    """3.1: one transition of one alert. `alert_id` is stable per (rule, subject) activation."""

    event_id: EventId
    alert_id: Id
    rule: RuleName
    level: Level
    state: Condition
    ts: AwareDatetime
    first_seen: AwareDatetime
    site: Id
    edge: Id
    area: Id | None = None
    grid: Id | None = None
    zone: Id | None = None
    subject: Subject
    devices: tuple[Id, ...] = ()
    title: str = Field(max_length=200)
    detail: dict[str, Any] = Field(default_factory=dict)
    snapshot: Sha256 | None = None
    suppressed: Suppression | None = Field(
        default=None,
        description="gridwatch extension: evaluated but not raised (device out of service, zone in walk test)",
    )


class DeviceEvent(_Body):
    ts: AwareDatetime
    device: Id
    kind: Annotated[str, StringConstraints(max_length=64)]
    data: dict[str, Any] = Field(default_factory=dict)


class EventsBody(_Body):
    event_id: EventId
    batch: tuple[DeviceEvent, ...] = Field(min_length=1)


TelemetryValue = float | int | bool | str


class TelemetryPoint(_Body):
    m: Literal["position", "gps", "vitals", "device"]
    tags: dict[str, str]
    fields: dict[str, TelemetryValue]
    ts: AwareDatetime


class TelemetryBody(_Body):
    event_id: EventId
    batch: tuple[TelemetryPoint, ...] = Field(min_length=1)
    dropped: int = Field(default=0, ge=0, description="gridwatch extension: points shed since the last body")


class DeviceHealth(_Body):
    id: Id
    family: Family
    online: bool
    last_seen: AwareDatetime | None = None
    battery: float | None = None
    dead_letters: int = Field(default=0, ge=0)


class DevicesBody(_Body):
    event_id: EventId
    ts: AwareDatetime
    devices: tuple[DeviceHealth, ...]


class OutboxDepth(_Body):
    alerts: int = Field(ge=0)
    events: int = Field(ge=0)
    telemetry: int = Field(ge=0)


class Heartbeat(_Body):
    ts: AwareDatetime
    version: str
    uptime_s: float = Field(ge=0)
    config_hash: str
    outbox: OutboxDepth


class HeartbeatWill(_Body):
    """The uplink MQTT will, published on `heartbeat` when the edge vanishes."""

    state: Literal["offline"]


class RollcallCmd(_Body):
    request_id: str = Field(min_length=1, max_length=64)
    grid: Id


class ArmCmd(_Body):
    request_id: str = Field(min_length=1, max_length=64)
    zone: Id
    armed: bool


class MaintenanceCmd(_Body):
    """gridwatch extension `cmd/maintenance`: a device out of service until a time (None = back in service)."""

    request_id: str = Field(min_length=1, max_length=64)
    device: Id
    until: AwareDatetime | None
    reason: str = ""


class WalkTestCmd(_Body):
    """gridwatch extension `cmd/walk_test`: detections in a zone are test results until a time."""

    request_id: str = Field(min_length=1, max_length=64)
    zone: Id
    until: AwareDatetime | None


class CmdResult(_Body):
    request_id: str = Field(min_length=1, max_length=64)
    ok: bool
    result: dict[str, Any] = Field(default_factory=dict)


CMD_BODIES: dict[str, type[_Body]] = {
    "rollcall": RollcallCmd,
    "arm": ArmCmd,
    "maintenance": MaintenanceCmd,
    "walk_test": WalkTestCmd,
}

# -- end-to-end confirmation (gridwatch extension, docs/protocol.md "Confirmations") ----------------
CONFIRM_CMD = "confirm"
"""`cmd/confirm`: central → edge, the uplink messages central has finished with."""

CONFIRMED_KINDS = (
    UplinkKind.ALERTS,
    UplinkKind.EVENTS,
    UplinkKind.DEVICES,
    UplinkKind.SNAPSHOTS,
    UplinkKind.CMD_RESULT,
)
"""The uplink kinds an edge keeps after the broker's PUBACK until central confirms them.

Telemetry is not among them: it is downsampled, sheddable and written to a best-effort store.
Heartbeats are QoS 0.
"""

_ID_PREFIX = {  # the first field pydantic writes for each body, when the sender is gridwatch
    UplinkKind.ALERTS: b'{"event_id":"',
    UplinkKind.EVENTS: b'{"event_id":"',
    UplinkKind.DEVICES: b'{"event_id":"',
    UplinkKind.CMD_RESULT: b'{"request_id":"',
}
_ID_FIELD = {UplinkKind.ALERTS: "event_id", UplinkKind.EVENTS: "event_id", UplinkKind.DEVICES: "event_id",
             UplinkKind.CMD_RESULT: "request_id"}  # fmt: skip


class ConfirmCmd(_Body):
    """The body of `cmd/confirm`: per uplink kind, the ids of the messages central has finished with.

    Finished means committed to its database, recognised as a repeat of one already committed, or
    rejected for good (a body that will never validate). A message central could not store (its
    database was down) is not confirmed, so the edge sends it again. Ids are `event_id`s for
    alerts, events and devices, the sha256 for snapshots and the `request_id` for cmd_result.
    """

    alerts: list[str] = Field(default_factory=list, max_length=10_000)
    events: list[str] = Field(default_factory=list, max_length=10_000)
    devices: list[str] = Field(default_factory=list, max_length=10_000)
    snapshots: list[str] = Field(default_factory=list, max_length=10_000)
    cmd_result: list[str] = Field(default_factory=list, max_length=10_000)

    def keys(self) -> list[str]:
        """The confirmation keys (see `confirm_key`) this body confirms."""
        return [f"{kind}:{i}" for kind in CONFIRMED_KINDS for i in getattr(self, str(kind))]


def confirm_key(topic_suffix: str, payload: bytes) -> str | None:
    """`"{kind}:{id}"` for an uplink message that central confirms, None for one it does not.

    `topic_suffix` is the part of the topic after `{site}/{edge}/` ("alerts", "snapshots/<sha256>").
    Both ends derive the same key: the edge when it stores a message, central (through
    `ConfirmCmd.keys`) from the ids it confirms. A body without a readable id has no key and is
    handled as before confirmations existed (deleted on PUBACK).
    """
    kind, _, rest = topic_suffix.partition("/")
    if kind == UplinkKind.SNAPSHOTS:
        return f"{kind}:{rest}" if rest else None
    prefix = _ID_PREFIX.get(kind)  # type: ignore[call-overload]
    if prefix is None or rest:
        return None
    if payload.startswith(prefix):  # gridwatch's own bodies: no JSON parse needed
        end = payload.find(b'"', len(prefix))
        if end > len(prefix) and b"\\" not in payload[len(prefix) : end]:
            return f"{kind}:{payload[len(prefix) : end].decode('utf-8', 'replace')}"
    return key_of_body(kind, payload)


def key_of_body(kind: str, payload: bytes | str) -> str | None:
    """The confirmation key of a JSON body of uplink `kind` by a full parse; None if it names no id."""
    field = _ID_FIELD.get(kind)  # type: ignore[call-overload]
    if field is None:
        return None
    try:
        obj = json.loads(payload)
    except ValueError:
        return None
    value = obj.get(field) if isinstance(obj, dict) else None
    return f"{kind}:{value}" if isinstance(value, str) and value else None


UplinkBody = AlertTransition | EventsBody | TelemetryBody | DevicesBody | Heartbeat | HeartbeatWill | CmdResult

_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    UplinkKind.ALERTS: TypeAdapter(AlertTransition),
    UplinkKind.EVENTS: TypeAdapter(EventsBody),
    UplinkKind.TELEMETRY: TypeAdapter(TelemetryBody),
    UplinkKind.DEVICES: TypeAdapter(DevicesBody),
    UplinkKind.HEARTBEAT: TypeAdapter(Heartbeat | HeartbeatWill),
    UplinkKind.CMD_RESULT: TypeAdapter(CmdResult),
}


def parse_uplink(kind: str, payload: bytes | str) -> UplinkBody:
    """Validate an uplink JSON body for topic kind `kind`; raises pydantic.ValidationError or KeyError."""
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        raise KeyError(f"no JSON body is defined for uplink topic kind {kind!r}")
    body: UplinkBody = adapter.validate_json(payload)
    return body
