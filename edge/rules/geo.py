"""GPS geometry: WGS84 polygons projected to local metres (equirectangular around the centroid),
accurate to well under a metre over the few kilometres a geofence spans. Longitudes are taken
modulo 360°, so a zone or fix across the antimeridian (Fiji's Taveuni, Chukotka) stays local."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import shapely
from shapely.geometry import Point, Polygon

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG)."""


@dataclass(frozen=True, slots=True)
class GpsPolygon:
    """A [lat, lon] ring as a shapely polygon in metres around its own centroid."""

    lat0: float
    lon0: float
    polygon: Polygon

    @classmethod
    def from_ring(cls, ring: Sequence[tuple[float, float]]) -> GpsPolygon:
        lat0 = sum(p[0] for p in ring) / len(ring)
        ref = ring[0][1]  # average the longitudes as offsets from one vertex, not across ±180°
        lon0 = _wrap(ref + sum(_wrap(p[1] - ref) for p in ring) / len(ring))
        poly = Polygon([_project(lat, lon, lat0, lon0) for lat, lon in ring])
        shapely.prepare(poly)
        return cls(lat0, lon0, poly)

    def local(self, lat: float, lon: float) -> Point:
        return Point(_project(lat, lon, self.lat0, self.lon0))

    def signed_distance(self, lat: float, lon: float) -> float:
        """Metres from the boundary: negative inside, positive outside."""
        point = self.local(lat, lon)
        dist = float(self.polygon.exterior.distance(point))
        return -dist if self.polygon.contains(point) else dist


def _wrap(dlon: float) -> float:
    """A longitude (difference) in [-180, 180]; unchanged, bit for bit, when already in range."""
    if dlon > 180:
        return dlon - 360 * math.ceil((dlon - 180) / 360)
    if dlon < -180:
        return dlon + 360 * math.ceil((-180 - dlon) / 360)
    return dlon


def _project(lat: float, lon: float, lat0: float, lon0: float) -> tuple[float, float]:
    k = math.pi / 180 * EARTH_RADIUS_M
    return _wrap(lon - lon0) * k * math.cos(math.radians(lat0)), (lat - lat0) * k


def outside_inclusion(zones: Sequence[GpsPolygon], lat: float, lon: float, acc_m: float) -> bool:
    """Outside every inclusion zone by more than the fix's accuracy radius (False if there are none)."""
    return bool(zones) and all(z.signed_distance(lat, lon) > acc_m for z in zones)


def inside_exclusion(zone: GpsPolygon, lat: float, lon: float, acc_m: float) -> bool:
    """Inside the exclusion zone even allowing for the fix's accuracy radius."""
    return zone.signed_distance(lat, lon) < -acc_m
