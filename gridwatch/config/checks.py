"""Cross-reference and geometry checks of a parsed site config; every problem, at once."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable

from shapely.geometry import Polygon as ShapelyPolygon
from shapely.validation import explain_validity

from gridwatch.contract.enums import Family, PersonRole, ZoneKind
from gridwatch.rules import RULES

from .broker import BrokerUrl
from .loader import PathKey, Problem, SourceMap
from .models import SiteConfig


def did_you_mean(value: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(value, list(known), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


class _Checker:
    def __init__(self, config: SiteConfig, source: SourceMap) -> None:
        self.c = config
        self.src = source
        self.problems: list[Problem] = []

    def add(self, path: PathKey, message: str) -> None:
        self.problems.append(self.src.problem(path, message))

    def ref(self, path: PathKey, value: str | None, known: set[str], what: str) -> None:
        if value is not None and value not in known:
            self.add(path, f"unknown {what} '{value}'{did_you_mean(value, known)}")

    def unique(self, items: Iterable[tuple[PathKey, str | None]], what: str) -> None:
        seen: dict[str, PathKey] = {}
        for path, value in items:
            if value is None:
                continue
            if value in seen:
                self.add(path, f"duplicate {what} '{value}' (first at line {self.src.line(seen[value])})")
            else:
                seen[value] = path

    def polygon(self, path: PathKey, points: list[tuple[float, float]]) -> ShapelyPolygon | None:
        poly = ShapelyPolygon(points)
        if not poly.is_valid or poly.area <= 0:
            self.add(path, f"polygon is not simple: {explain_validity(poly)}")
            return None
        return poly

    def run(self) -> list[Problem]:
        c = self.c
        area_ids = {a.id for a in c.areas}
        grid_ids = {g.id for a in c.areas for g in a.grids}
        zone_ids = {z.id for z in c.zones}
        door_ids = {d.id for d in c.doors}
        device_ids = {d.id for d in c.devices}
        user_names = {u.username for u in c.central.users}

        self.unique(((("areas", i, "id"), a.id) for i, a in enumerate(c.areas)), "area id")
        self.unique(
            ((("areas", i, "grids", j, "id"), g.id) for i, a in enumerate(c.areas) for j, g in enumerate(a.grids)),
            "grid id",
        )
        self.unique(((("zones", i, "id"), z.id) for i, z in enumerate(c.zones)), "zone id")
        self.unique(((("doors", i, "id"), d.id) for i, d in enumerate(c.doors)), "door id")
        self.unique(((("devices", i, "id"), d.id) for i, d in enumerate(c.devices)), "device id")
        self.unique(((("people", i, "id"), p.id) for i, p in enumerate(c.people)), "person id")
        self.unique(((("people", i, "tag"), p.tag) for i, p in enumerate(c.people)), "tag")
        self.unique(((("people", i, "band"), p.band) for i, p in enumerate(c.people)), "band")
        self.unique(((("edges", i, "id"), e.id) for i, e in enumerate(c.edges)), "edge id")
        self.unique(((("central", "users", i, "username"), u.username) for i, u in enumerate(c.central.users)),
                    "username")

        # areas and grids: polygons simple, grids do not overlap
        grid_polys: list[tuple[PathKey, str, ShapelyPolygon]] = []
        for i, area in enumerate(c.areas):
            if user_names:
                self.ref(("areas", i, "supervisor"), area.supervisor, user_names, "user")
            for j, grid in enumerate(area.grids):
                base: PathKey = ("areas", i, "grids", j)
                if user_names:
                    self.ref((*base, "officer"), grid.officer, user_names, "user")
                poly = self.polygon((*base, "polygon"), list(grid.polygon))
                if poly is not None:
                    grid_polys.append((base, grid.id, poly))
        for n, (path_a, id_a, poly_a) in enumerate(grid_polys):
            for path_b, id_b, poly_b in grid_polys[n + 1 :]:
                if poly_a.intersection(poly_b).area > 1e-6:
                    self.add((*path_b, "polygon"), f"grid '{id_b}' overlaps grid '{id_a}' "
                                                   f"(line {self.src.line(path_a)}); grids must not overlap")

        for i, zone in enumerate(c.zones):
            base = ("zones", i)
            self.ref((*base, "area"), zone.area, area_ids, "area")
            for k, other in enumerate(zone.neighbours):
                self.ref((*base, "neighbours", k), other, zone_ids, "zone")
            if (zone.polygon is None) == (zone.gps_polygon is None):
                self.add(base, "a zone needs exactly one of polygon (site metres) or gps_polygon (lat/lon)")
            if zone.polygon is not None:
                self.polygon((*base, "polygon"), list(zone.polygon))
            if zone.gps_polygon is not None:
                self.polygon((*base, "gps_polygon"), [(lon, lat) for lat, lon in zone.gps_polygon])
                for k, (lat, lon) in enumerate(zone.gps_polygon):
                    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                        self.add((*base, "gps_polygon", k), f"[{lat}, {lon}] is not a [lat, lon] in degrees")
            if zone.kind in (ZoneKind.INCLUSION, ZoneKind.EXCLUSION) and zone.gps_polygon is None:
                self.add((*base, "kind"), f"{zone.kind} zones are GPS zones: give gps_polygon")
            for rule in zone.thresholds:
                self.ref((*base, "thresholds", rule), rule, set(RULES), "rule")

        for i, door in enumerate(c.doors):
            self.ref(("doors", i, "zone"), door.zone, zone_ids, "zone")

        served: Counter[str] = Counter()
        edge_devices: dict[str, set[str]] = {}
        for i, edge in enumerate(c.edges):
            base = ("edges", i)
            for k, a in enumerate(edge.areas):
                self.ref((*base, "areas", k), a, area_ids, "area")
            for k, z in enumerate(edge.zones):
                self.ref((*base, "zones", k), z, zone_ids, "zone")
            for k, d in enumerate(edge.devices):
                self.ref((*base, "devices", k), d, device_ids, "device")
            zones_served = c.edge_zone_ids(edge)
            for k, d in enumerate(edge.devices):
                dev = c.device(d)
                if dev is not None and dev.zone is not None and dev.zone not in zones_served:
                    self.add((*base, "devices", k), f"device '{d}' is in zone '{dev.zone}', which edge "
                                                    f"'{edge.id}' does not serve (add it to zones or areas)")
            mine = c.edge_device_ids(edge)
            edge_devices[edge.id] = mine
            served.update(mine)
            for key in ("device_broker", "uplink_broker"):
                self.broker((*base, key), getattr(edge, key))
        self.broker(("central", "uplink_broker"), c.central.uplink_broker)

        for i, dev in enumerate(c.devices):
            base = ("devices", i)
            self.ref((*base, "zone"), dev.zone, zone_ids, "zone")
            self.ref((*base, "door"), dev.door, door_ids, "door")
            if c.edges and served[dev.id] == 0:
                self.add((*base, "id"), f"device '{dev.id}' is served by no edge (put it in an edge's "
                                        "devices, or its zone in an edge's zones/areas)")
            if served[dev.id] > 1:
                owners = sorted(e for e, ds in edge_devices.items() if dev.id in ds)
                self.add((*base, "id"), f"device '{dev.id}' is served by several edges: {', '.join(owners)}")
            if dev.family == Family.CAMERA and not dev.url:
                self.add((*base, "url"), "a camera needs a url (rtsp://, http(s):// or a file path)")
            if dev.family != Family.CAMERA and dev.url:
                self.add((*base, "url"), f"only cameras have a url, this is a {dev.family} device")
            if dev.family == Family.ACCESS and dev.door is None:
                self.add((*base, "door"), "an access-control device needs the door it controls")
            if dev.format == "contact_id":
                if dev.family != Family.PERIMETER_IR:
                    self.add((*base, "format"), "contact_id is a perimeter_ir format")
                if not dev.contact_id:
                    self.add((*base, "contact_id"), "a Contact ID panel needs its (account, zone) → detector map")
            for k, cid in enumerate(dev.contact_id):
                self.ref((*base, "contact_id", k, "detector"), cid.detector, device_ids, "device")
            for k, mask in enumerate(dev.motion_mask):
                self.polygon((*base, "motion_mask", k), [tuple(p) for p in mask])  # type: ignore[misc]

        for i, person in enumerate(c.people):
            base = ("people", i)
            self.ref((*base, "grid"), person.grid, grid_ids, "grid")
            self.ref((*base, "home_zone"), person.home_zone, zone_ids, "zone")
            if person.role == PersonRole.INMATE and person.grid is None:
                self.add((*base, "grid"), "an inmate needs a grid")
            if not person.curfew.is_never and person.home_zone is None:
                self.add((*base, "curfew"), "a curfew needs a home_zone")

        for name in c.rules:
            self.ref(("rules", name), name, set(RULES), "rule")
        for name in c.response_plans:
            self.ref(("response_plans", name), name, set(RULES), "rule")

        for i, user in enumerate(c.central.users):
            path: PathKey = ("central", "users", i, "password")
            if user.password is not None and path not in self.src.from_env:
                self.add(path, "passwords come from the environment: write ${VAR}, not the password")
            for k, g in enumerate(user.grids):
                self.ref(("central", "users", i, "grids", k), g, grid_ids, "grid")
        if c.central.tsdb.token and ("central", "tsdb", "token") not in self.src.from_env:
            self.add(("central", "tsdb", "token"), "tokens come from the environment: write ${VAR}")
        return self.problems

    def broker(self, path: PathKey, url: str) -> None:
        try:
            parsed = BrokerUrl.parse(url)
        except ValueError as exc:
            self.add(path, str(exc))
            return
        if parsed.has_inline_password and path not in self.src.from_env:
            self.add(path, "broker passwords come from the environment: write mqtt://user:${VAR}@host:port")


def check_site(config: SiteConfig, source: SourceMap) -> list[Problem]:
    return _Checker(config, source).run()
