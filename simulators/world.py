"""A simulated facility in motion: where every tagged person is, and what every wristband reads.

People wander between random waypoints inside their grid (inmates) or their area (staff), at
walking pace with pauses, so that a quiet facility raises no alarms. Supervisees carry GPS bands
and stay inside their home or inclusion zone. Scenario steps override single people: walk them
somewhere, silence their tag, push their heart rate up, gather several of them in one spot.

Everything is deterministic for a given seed and driven by an explicit `now`, so tests replay it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from shapely import Polygon, contains_xy, union_all
from shapely.geometry.base import BaseGeometry

from gridwatch.config import SiteConfig
from gridwatch.contract.enums import PersonRole, ZoneKind

_METRES_PER_DEG_LAT = 111_320.0


@dataclass(slots=True)
class Walker:
    person: str
    tag: str | None
    band: str | None
    area: BaseGeometry
    x: float
    y: float
    target: tuple[float, float]
    speed: float
    pause_until: float = 0.0
    pinned: tuple[float, float] | None = None  # a scenario walked them here; they stay
    silent_until: float = 0.0
    gps: bool = False  # area is in local metres around gps_origin
    hr: float = 72.0
    temp: float = 36.6
    bat: float = 95.0
    override_until: float = 0.0
    override: dict[str, float] = field(default_factory=dict)


def _sample(poly: BaseGeometry, rng: np.random.Generator, tries: int = 200) -> tuple[float, float]:
    """A uniform point inside a polygon (rejection sampling on its bounding box)."""
    minx, miny, maxx, maxy = poly.bounds
    inner = poly.buffer(-0.5) if poly.area > 4 else poly
    if inner.is_empty:
        inner = poly
    for _ in range(tries):
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if contains_xy(inner, x, y):
            return float(x), float(y)
    c = poly.representative_point()
    return float(c.x), float(c.y)


class World:
    """Positions and vitals of every tagged person of a site."""

    def __init__(self, site: SiteConfig, *, seed: int = 7) -> None:
        self.site = site
        self.rng = np.random.default_rng(seed)
        grids = site.grid_index()
        self.places: dict[str, Polygon] = {gid: Polygon(g.polygon) for gid, (_a, g) in grids.items()}
        for z in site.zones:
            if z.polygon is not None:
                self.places[z.id] = Polygon(z.polygon)
        self.gps_origin = self._gps_origin()
        self.gps_places: dict[str, Polygon] = {
            z.id: Polygon([self.to_local(lat, lon) for lat, lon in z.gps_polygon])
            for z in site.zones
            if z.gps_polygon is not None
        }
        area_union: dict[str, BaseGeometry] = {}
        for area in site.areas:
            polys = [Polygon(g.polygon) for g in area.grids]
            if polys:
                area_union[area.id] = union_all(polys)
        self.walkers: dict[str, Walker] = {}
        for person in site.people:
            if person.tag is None and person.band is None:
                continue
            home, gps = self._home(person.id, person.role, person.grid, person.home_zone, area_union)
            if home is None:
                continue
            x, y = _sample(home, self.rng)
            self.walkers[person.id] = Walker(
                person=person.id,
                tag=person.tag,
                band=person.band,
                area=home,
                x=x,
                y=y,
                target=_sample(home, self.rng),
                speed=float(self.rng.uniform(0.4, 1.1)),
                gps=gps,
                hr=float(self.rng.normal(72, 6)),
                temp=float(self.rng.normal(36.6, 0.15)),
                bat=float(self.rng.uniform(60, 100)),
            )
        self.by_tag = {w.tag: w for w in self.walkers.values() if w.tag}
        self.by_band = {w.band: w for w in self.walkers.values() if w.band}

    # -- geometry ---------------------------------------------------------------------------
    def _gps_origin(self) -> tuple[float, float]:
        pts = [p for z in self.site.zones if z.gps_polygon for p in z.gps_polygon]
        if not pts:
            return (0.0, 0.0)
        return (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))

    def to_local(self, lat: float, lon: float) -> tuple[float, float]:
        lat0, lon0 = self.gps_origin
        return (
            (lon - lon0) * _METRES_PER_DEG_LAT * math.cos(math.radians(lat0)),
            (lat - lat0) * _METRES_PER_DEG_LAT,
        )

    def to_gps(self, x: float, y: float) -> tuple[float, float]:
        lat0, lon0 = self.gps_origin
        return (lat0 + y / _METRES_PER_DEG_LAT, lon0 + x / (_METRES_PER_DEG_LAT * math.cos(math.radians(lat0))))

    def _home(
        self, pid: str, role: PersonRole, grid: str | None, home_zone: str | None, areas: dict[str, BaseGeometry]
    ) -> tuple[BaseGeometry | None, bool]:
        if role == PersonRole.SUPERVISEE or (home_zone and home_zone in self.gps_places):
            if home_zone and home_zone in self.gps_places:
                return self.gps_places[home_zone], True
            inclusion = [self.gps_places[z.id] for z in self.site.zones if z.kind == ZoneKind.INCLUSION]
            return (inclusion[0], True) if inclusion else (None, True)
        if grid and grid in self.places:
            return self.places[grid], False
        # staff: roam their officers' area, or the first area
        for area_id, poly in areas.items():
            if any(g.officer == pid for a in self.site.areas if a.id == area_id for g in a.grids):
                return poly, False
        return (next(iter(areas.values())), False) if areas else (None, False)

    def place(self, place_id: str, gps: bool = False) -> Polygon:
        return (self.gps_places if gps and place_id in self.gps_places else self.places).get(
            place_id, self.gps_places.get(place_id)
        )

    # -- scenario overrides ---------------------------------------------------------------
    def walk_to(self, person: str, to: str | tuple[float, float], speed: float) -> None:
        w = self.walkers[person]
        if isinstance(to, str):
            poly = self.place(to, w.gps)
            point = (float(poly.representative_point().x), float(poly.representative_point().y))
        else:
            point = (float(to[0]), float(to[1]))
        w.pinned = point
        w.target = point
        w.speed = speed
        w.pause_until = 0.0

    def release(self, person: str) -> None:
        w = self.walkers[person]
        w.pinned = None
        w.target = _sample(w.area, self.rng)
        w.speed = float(self.rng.uniform(0.4, 1.1))

    def silence(self, person: str, until: float) -> None:
        self.walkers[person].silent_until = until

    def set_vitals(self, band: str, values: dict[str, float], until: float) -> None:
        w = self.by_band[band]
        w.override = dict(values)
        w.override_until = until

    def gather(self, place: str, count: int, now: float, seconds: float) -> list[str]:
        """Walk `count` inmates of the place (or the nearest ones) to one spot; released after `seconds`."""
        poly = self.places[place]
        spot = poly.representative_point()
        inmates = [w for w in self.walkers.values() if w.tag and not w.gps and w.pinned is None]
        inmates.sort(key=lambda w: (w.x - spot.x) ** 2 + (w.y - spot.y) ** 2)
        chosen = inmates[:count]
        for i, w in enumerate(chosen):
            angle = 2 * math.pi * i / max(1, len(chosen))
            self.walk_to(w.person, (spot.x + 0.6 * math.cos(angle), spot.y + 0.6 * math.sin(angle)), 2.0)
        return [w.person for w in chosen]

    # -- time --------------------------------------------------------------------------------
    def step(self, now: float, dt: float) -> None:
        """Advance everyone by dt seconds of scenario time."""
        for w in self.walkers.values():
            if now < w.pause_until:
                continue
            dx, dy = w.target[0] - w.x, w.target[1] - w.y
            dist = math.hypot(dx, dy)
            reach = w.speed * dt
            if dist <= reach:
                w.x, w.y = w.target
                if w.pinned is None:
                    w.pause_until = now + float(self.rng.uniform(2, 25))
                    w.target = _sample(w.area, self.rng)
            else:
                w.x += dx / dist * reach
                w.y += dy / dist * reach
            if w.band:
                w.hr = float(np.clip(w.hr + self.rng.normal(0, 0.8) + (72 - w.hr) * 0.05, 50, 110))
                w.temp = float(np.clip(w.temp + self.rng.normal(0, 0.01) + (36.6 - w.temp) * 0.05, 36.0, 37.3))
                w.bat = max(20.0, w.bat - dt * 0.0005)

    def vitals(self, w: Walker, now: float) -> dict[str, float]:
        values = {"hr": round(w.hr, 1), "temp": round(w.temp, 2), "bat": round(w.bat, 1)}
        if now < w.override_until:
            values.update(w.override)
        return values

    def tag_positions(self, now: float) -> list[Walker]:
        return [w for w in self.walkers.values() if w.tag and not w.gps and now >= w.silent_until]
