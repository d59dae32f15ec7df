"""What the rule engine knows about its site: an index of the config for one edge, plus operator controls.

`SiteView` is read-only (built once from the config); `Controls` holds what commands change at run
time (arm overrides, devices out of service, walk tests) and is saved with the engine state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import shapely
from shapely.geometry import Polygon

from gridwatch.config.models import Area, Device, Door, Grid, Person, SiteConfig, Zone
from gridwatch.contract.enums import Family, Level, ZoneKind
from gridwatch.contract.uplink import Suppression
from gridwatch.rules import QUIET_PERIOD_S, RULES

WALK_TEST_RULES = frozenset({"perimeter.intrusion", "camera.motion"})
"""Detections that a walk test turns into test results."""


class SiteView:
    """The config as the edge `edge_id` sees it: what it serves, thresholds, geometry and look-ups."""

    def __init__(self, site: SiteConfig, edge_id: str) -> None:
        self.site = site
        self.edge = site.edge(edge_id)
        self.site_id = site.site.id
        self.edge_id = self.edge.id
        self.tz = ZoneInfo(site.site.timezone)
        self.zone_ids = site.edge_zone_ids(self.edge)
        self.device_ids = site.edge_device_ids(self.edge)
        self.zones: dict[str, Zone] = {z.id: z for z in site.zones}
        self.devices: dict[str, Device] = {d.id: d for d in site.devices}
        self.doors: dict[str, Door] = {d.id: d for d in site.doors}
        self.people: dict[str, Person] = {p.id: p for p in site.people}
        self.by_tag: dict[str, Person] = {p.tag: p for p in site.people if p.tag}
        self.by_band: dict[str, Person] = {p.band: p for p in site.people if p.band}
        self.grids: dict[str, tuple[Area, Grid]] = site.grid_index()
        self.grid_ids = {g.id for a in site.areas if a.id in self.edge.areas for g in a.grids}
        self.door_ids = {d.id for d in site.doors if d.zone in self.zone_ids} | {
            dev.door for dev in site.devices if dev.door is not None and dev.id in self.device_ids
        }
        self.zone_polys: dict[str, Polygon] = {z.id: Polygon(z.polygon) for z in site.zones if z.polygon is not None}
        for poly in self.zone_polys.values():
            shapely.prepare(poly)
        self.grid_polys: dict[str, Polygon] = {gid: Polygon(g.polygon) for gid, (_, g) in self.grids.items()}
        for poly in self.grid_polys.values():
            shapely.prepare(poly)
        self.zone_cameras: dict[str, list[str]] = {}
        for dev in site.devices:
            if dev.family == Family.CAMERA and dev.zone is not None:
                self.zone_cameras.setdefault(dev.zone, []).append(dev.id)

    # -- rules and thresholds ------------------------------------------------------------------
    def enabled(self, rule: str) -> bool:
        override = self.site.rules.get(rule)
        return override is None or override.enabled

    def level(self, rule: str) -> Level:
        override = self.site.rules.get(rule)
        if override is not None and override.level is not None:
            return override.level
        return RULES[rule].level

    def params(self, rule: str, zone: str | None = None) -> dict[str, Any]:
        """RULES defaults | site `rules[rule].params` | zone `thresholds[rule]`."""
        out: dict[str, Any] = dict(RULES[rule].params)
        override = self.site.rules.get(rule)
        if override is not None:
            out.update(override.params)
        z = self.zones.get(zone) if zone is not None else None
        if z is not None:
            out.update(z.thresholds.get(rule, {}))
        return out

    def param(self, rule: str, key: str, zone: str | None = None) -> float:
        return float(self.params(rule, zone)[key])

    def quiet_s(self, rule: str, zone: str | None = None) -> float:
        return float(self.params(rule, zone).get("quiet_s", QUIET_PERIOD_S))

    # -- look-ups ------------------------------------------------------------------------------
    def zone_name(self, zone_id: str | None) -> str:
        z = self.zones.get(zone_id) if zone_id is not None else None
        if z is None:
            return zone_id or "unknown zone"
        return z.name or z.id

    def zone_area(self, zone_id: str | None) -> str | None:
        z = self.zones.get(zone_id) if zone_id is not None else None
        return z.area if z is not None else None

    def grid_area(self, grid_id: str | None) -> str | None:
        entry = self.grids.get(grid_id) if grid_id is not None else None
        return entry[0].id if entry is not None else None

    def device_zone(self, device_id: str) -> str | None:
        dev = self.devices.get(device_id)
        if dev is None:
            return None
        if dev.zone is not None:
            return dev.zone
        door = self.doors.get(dev.door) if dev.door is not None else None
        return door.zone if door is not None else None

    def device_name(self, device_id: str) -> str:
        dev = self.devices.get(device_id)
        return (dev.name or dev.id) if dev is not None else device_id

    def door_name(self, door_id: str) -> str:
        door = self.doors.get(door_id)
        return (door.name or door.id) if door is not None else door_id

    def person_name(self, person: Person) -> str:
        return f"{person.name} ({person.id})" if person.name else person.id

    def camera_for(self, zone_id: str | None) -> str | None:
        cams = self.zone_cameras.get(zone_id, []) if zone_id is not None else []
        return cams[0] if cams else None

    def is_perimeter_device(self, device_id: str) -> bool:
        dev = self.devices.get(device_id)
        if dev is None:
            return False
        if dev.family == Family.PERIMETER_IR:
            return True
        zone = self.zones.get(dev.zone) if dev.zone is not None else None
        return dev.family == Family.CAMERA and zone is not None and zone.kind == ZoneKind.PERIMETER


@dataclass(slots=True)
class Controls:
    """Run-time operator state: arm overrides, maintenance, walk tests (saved with the engine)."""

    # zone -> (armed, the schedule's own state when the override was set): the override lasts
    # until the schedule itself changes, so a forgotten manual disarm cannot outlive the shift.
    arm: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    out_of_service: dict[str, datetime] = field(default_factory=dict)
    walk_tests: dict[str, datetime] = field(default_factory=dict)

    def armed(self, view: SiteView, zone_id: str, now: datetime) -> bool:
        zone = view.zones.get(zone_id)
        if zone is None:
            return False
        scheduled = zone.armed.active(now, view.tz)
        override = self.arm.get(zone_id)
        if override is not None:
            if override[1] == scheduled:
                return override[0]
            del self.arm[zone_id]
        return scheduled

    def set_arm(self, view: SiteView, zone_id: str, armed: bool, now: datetime) -> None:
        zone = view.zones[zone_id]
        self.arm[zone_id] = (armed, zone.armed.active(now, view.tz))

    def in_walk_test(self, zone_id: str | None, now: datetime) -> bool:
        if zone_id is None or zone_id not in self.walk_tests:
            return False
        if now >= self.walk_tests[zone_id]:
            del self.walk_tests[zone_id]
            return False
        return True

    def is_out_of_service(self, device_id: str, now: datetime) -> bool:
        if device_id not in self.out_of_service:
            return False
        if now >= self.out_of_service[device_id]:
            del self.out_of_service[device_id]
            return False
        return True

    def suppression(self, rule: str, zone: str | None, devices: tuple[str, ...], now: datetime) -> Suppression | None:
        if any(self.is_out_of_service(d, now) for d in devices):
            return "out_of_service"
        if rule in WALK_TEST_RULES and self.in_walk_test(zone, now):
            return "walk_test"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "arm": {z: list(v) for z, v in self.arm.items()},
            "out_of_service": {d: u.isoformat() for d, u in self.out_of_service.items()},
            "walk_tests": {z: u.isoformat() for z, u in self.walk_tests.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Controls:
        return cls(
            arm={z: (bool(v[0]), bool(v[1])) for z, v in data.get("arm", {}).items()},
            out_of_service={d: datetime.fromisoformat(u) for d, u in data.get("out_of_service", {}).items()},
            walk_tests={z: datetime.fromisoformat(u) for z, u in data.get("walk_tests", {}).items()},
        )
