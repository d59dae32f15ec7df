"""The site config schema (contract §6): one YAML file describes one site.

Field-level bounds live here; cross-references (unknown ids, overlapping grids, …) are checked
in `checks.py` so that every problem is reported at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gridwatch.contract.base import Id
from gridwatch.contract.enums import Family, Level, PersonRole, UserRole, ZoneKind

from .schedule import Schedule

Point = Annotated[tuple[float, float], Field(description="[x, y] in site metres (x east, y north)")]
GpsPoint = Annotated[tuple[float, float], Field(description="[lat, lon] in WGS84 degrees")]
ImagePoint = Annotated[
    tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]],
    Field(description="[x, y] as fractions of the image width and height (0..1, origin top left)"),
]
Polygon = Annotated[list[Point], Field(min_length=3, max_length=500)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SiteInfo(_Model):
    id: Id
    name: str = Field(default="", description="Human name of the facility")
    timezone: str = Field(default="UTC", description="IANA timezone; schedules are evaluated in it")

    @field_validator("timezone")
    @classmethod
    def _known_tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as 'Asia/Shanghai')") from None
        return value


class Grid(_Model):
    id: Id
    name: str = ""
    officer: Id = Field(description="Username of the responsible grid officer (a central user)")
    polygon: Polygon
    expected_headcount: int = Field(default=0, ge=0, le=10_000)
    lock_in: Schedule = Field(default_factory=Schedule.never, description="When inmates must stay in the grid")


class Area(_Model):
    id: Id
    name: str = ""
    supervisor: Id = Field(description="Username of the area supervisor (a central user)")
    grids: list[Grid] = Field(default_factory=list)


class Zone(_Model):
    id: Id
    name: str = ""
    kind: ZoneKind
    area: Id | None = None
    polygon: Polygon | None = Field(default=None, description="Site metres; for indoor/fence zones")
    gps_polygon: Annotated[list[GpsPoint], Field(min_length=3, max_length=500)] | None = Field(
        default=None, description="[lat, lon] ring; for inclusion/exclusion/home zones"
    )
    armed: Schedule = Field(default_factory=Schedule.always, description="When detections here raise alarms")
    neighbours: list[Id] = Field(default_factory=list, description="Zones whose beams correlate with this one")
    thresholds: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-rule overrides for this zone: {rule: {key: value}}"
    )


class Door(_Model):
    id: Id
    name: str = ""
    zone: Id | None = None
    position: Point | None = None
    group: Id | None = Field(default=None, description="Anti-passback group; defaults to the door itself")
    schedule: Schedule = Field(default_factory=Schedule.always, description="When grants are expected")
    held_after_s: float = Field(default=30, gt=0, le=3600)


class ContactIdZone(_Model):
    """Maps one Contact ID (account, zone) to a detector and beam (contract §2.2)."""

    account: str = Field(pattern=r"^[0-9A-F]{4}$")
    zone: int = Field(ge=0, le=999)
    detector: Id
    beam: int = Field(default=1, ge=1, le=64)


class Device(_Model):
    id: Id
    family: Family
    name: str = ""
    format: Literal["json", "contact_id"] = "json"
    topic: str | None = Field(default=None, description="Topic override; default per family (contract §2)")
    zone: Id | None = None
    door: Id | None = None
    position: Point | None = None
    beams: int = Field(default=1, ge=1, le=64, description="Perimeter detectors: number of beams")
    expected_interval_s: float | None = Field(
        default=None, gt=0, le=86_400, description="Silence longer than 3× this raises device.offline"
    )
    contact_id: list[ContactIdZone] = Field(default_factory=list, description="Contact ID panels only")
    # cameras
    url: str | None = Field(default=None, description="rtsp://, http(s):// (MJPEG) or a file path")
    fps: float = Field(default=5, gt=0, le=60, description="Analysis frame rate")
    motion_mask: list[Annotated[list[ImagePoint], Field(min_length=3)]] = Field(
        default_factory=list, description="Polygons where motion counts; empty = whole image"
    )


class Person(_Model):
    id: Id
    name: str = ""
    role: PersonRole
    grid: Id | None = None
    tag: Id | None = None
    band: Id | None = None
    home_zone: Id | None = None
    curfew: Schedule = Field(default_factory=Schedule.never)


class Edge(_Model):
    id: Id
    name: str = ""
    device_broker: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt[s]://user:pass@host:port")
    uplink_broker: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt[s]://user:pass@host:port")
    outbox: str = Field(default="var/edge-outbox.db", description="Path of the SQLite outbox")
    outbox_max_mb: float = Field(default=512, gt=0, le=1_000_000)
    status_bind: str = Field(default="127.0.0.1:9180", description="HOST:PORT of the local status endpoint")
    areas: list[Id] = Field(default_factory=list, description="Serve every zone/device of these areas")
    zones: list[Id] = Field(default_factory=list)
    devices: list[Id] = Field(default_factory=list)


class TsdbConfig(_Model):
    url: str = Field(
        default="sqlite:///var/central-tsdb.db",
        description="http(s)://… for InfluxDB 2/3 or VictoriaMetrics; sqlite:///path for the embedded store",
    )
    token: str = ""
    org: str = "gridwatch"
    bucket: str = "gridwatch"


class Escalation(_Model):
    high_s: float = Field(default=30, gt=0)
    medium_s: float = Field(default=300, gt=0)
    low_s: float = Field(default=1800, gt=0)

    def after(self, level: Level) -> float:
        return {Level.HIGH: self.high_s, Level.MEDIUM: self.medium_s, Level.LOW: self.low_s}[level]


class User(_Model):
    username: Id
    role: UserRole
    name: str = ""
    password: str | None = Field(default=None, description="Only as ${VAR}; never a literal")
    grids: list[Id] = Field(default_factory=list, description="Officers: the grids they see")


class CentralConfig(_Model):
    bind: str = "127.0.0.1:8080"
    database_url: str = "sqlite:///var/central.db"
    uplink_broker: str = "mqtt://127.0.0.1:1883"
    tsdb: TsdbConfig = Field(default_factory=TsdbConfig)
    escalation: Escalation = Field(default_factory=Escalation)
    edge_offline_s: float = Field(default=30, gt=0)
    users: list[User] = Field(default_factory=list)


class RuleOverride(_Model):
    enabled: bool = True
    level: Level | None = None
    params: dict[str, Any] = Field(default_factory=dict, description="Threshold overrides, e.g. window_s")


class SiteConfig(_Model):
    site: SiteInfo
    areas: list[Area] = Field(default_factory=list)
    zones: list[Zone] = Field(default_factory=list)
    doors: list[Door] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)
    people: list[Person] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    central: CentralConfig = Field(default_factory=CentralConfig)
    rules: dict[str, RuleOverride] = Field(default_factory=dict)
    response_plans: dict[str, list[str]] = Field(
        default_factory=dict, description="Checklist per rule, shown with the alert"
    )
    scenario: str | None = Field(default=None, description="Scenario file the demo plays (relative path)")

    # -- look-ups used everywhere -------------------------------------------------------------
    def grid_index(self) -> dict[str, tuple[Area, Grid]]:
        return {g.id: (a, g) for a in self.areas for g in a.grids}

    def zone(self, zone_id: str) -> Zone | None:
        return next((z for z in self.zones if z.id == zone_id), None)

    def device(self, device_id: str) -> Device | None:
        return next((d for d in self.devices if d.id == device_id), None)

    def edge(self, edge_id: str | None = None) -> Edge:
        """The edge named, or the only one; raises KeyError with the known ids."""
        if edge_id is None:
            if len(self.edges) == 1:
                return self.edges[0]
            raise KeyError(f"the config has {len(self.edges)} edges; pick one with --edge "
                           f"({', '.join(e.id for e in self.edges)})")
        for edge in self.edges:
            if edge.id == edge_id:
                return edge
        raise KeyError(f"no edge {edge_id!r} in the config (known: {', '.join(e.id for e in self.edges)})")

    def edge_zone_ids(self, edge: Edge) -> set[str]:
        """Zones this edge serves: its `zones` plus every zone of its `areas`."""
        return set(edge.zones) | {z.id for z in self.zones if z.area is not None and z.area in edge.areas}

    def edge_device_ids(self, edge: Edge) -> set[str]:
        """Devices this edge serves: its `devices` plus every device in a zone it serves."""
        zones = self.edge_zone_ids(edge)
        doors_in = {d.id for d in self.doors if d.zone in zones}
        return set(edge.devices) | {
            d.id for d in self.devices if (d.zone in zones) or (d.door is not None and d.door in doors_in)
        }
