"""Which of an edge's zones hold each point of a batch, and so the zone a position is in.

An edge has a handful of zones, mostly axis-aligned rectangles, and an RTLS batch a hundred points.
An STRtree query builds a shapely Point per position and walks the tree; testing every zone over
the whole batch with numpy costs a fraction of that. Membership is the zone's interior, as
`Polygon.contains` (a point on an edge or a corner is outside): for a rectangle that is exactly
x0 < x < x1 and y0 < y < y1 (its edges are axis-aligned, so GEOS decides them without rounding);
for any other ring those bounds are only a prefilter, and `shapely.contains_xy` decides the points
inside them. tests/rules/test_zone_order.py and test_geometry_oracle.py hold both to shapely.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import Polygon

from gridwatch.contract.enums import ZoneKind

FORBIDDEN = (ZoneKind.RESTRICTED, ZoneKind.STAFF_ONLY, ZoneKind.PERIMETER)
LUT_ZONES = 12  # up to this many zones, `locate` looks answers up by mask (a 4,096-row table)


def is_rectangle(poly: Polygon) -> bool:
    """An axis-aligned rectangle: four distinct corners on two x and two y values, no diagonal edge
    (the only rings whose interior is the open box of their bounds)."""
    if len(poly.interiors):
        return False
    ring = [(float(x), float(y)) for x, y in poly.exterior.coords[:-1]]
    if len(ring) != 4 or len(set(ring)) != 4:
        return False
    if len({x for x, _ in ring}) != 2 or len({y for _, y in ring}) != 2:
        return False
    return all(ax == bx or ay == by for (ax, ay), (bx, by) in zip(ring, ring[1:] + ring[:1], strict=True))


class ZoneIndex:
    """Zones in the order given (config order); `locate` answers for whole arrays of points.

    A point's zone is the first forbidden zone (restricted, staff only, perimeter) that holds it,
    else the first other zone that holds it, else none: an explicit order, so overlapping zones
    give the same answer whatever their shapes.
    """

    def __init__(self, zones: Sequence[tuple[str, ZoneKind, Polygon]]) -> None:
        self.ids = [zid for zid, _kind, _poly in zones]
        self.polys = [poly for _zid, _kind, poly in zones]
        kinds = [kind for _zid, kind, _poly in zones]
        self.forbidden = np.array([k in FORBIDDEN for k in kinds], dtype=bool)
        self.cell = np.array([k == ZoneKind.CELL for k in kinds], dtype=bool)
        bounds = np.array([p.bounds for p in self.polys], dtype=np.float64).reshape(len(zones), 4)
        self._x0, self._y0, self._x1, self._y1 = (bounds[:, k] for k in range(4))
        # rings that are not rectangles: the bounds only prefilter them
        self._rings = [(z, p) for z, p in enumerate(self.polys) if not is_rectangle(p)]
        for _z, poly in self._rings:
            shapely.prepare(poly)
        self.none = len(zones)  # the index `locate` gives a point no zone holds
        # up to LUT_ZONES zones, which zones hold a point is a bit mask: its answers are looked up
        self._weights = (1 << np.arange(len(zones), dtype=np.int64)) if 0 < len(zones) <= LUT_ZONES else None
        if self._weights is not None:
            masks = np.arange(1 << len(zones), dtype=np.int64)[:, None] & self._weights > 0
            self._lut = self._answers(masks)

    def holding(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.bool_]:
        """(points × zones): whether each zone holds each point, as `Polygon.contains`."""
        xc, yc = x[:, None], y[:, None]
        # a zone's interior lies strictly inside its bounds; a rectangle's interior is exactly that
        inside: NDArray[np.bool_] = (self._x0 < xc) & (xc < self._x1) & (self._y0 < yc) & (yc < self._y1)
        for z, poly in self._rings:
            near = np.flatnonzero(inside[:, z])
            if near.size:
                inside[near, z] = shapely.contains_xy(poly, x[near], y[near])
        return inside

    def locate(
        self, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
        """Per point: its zone, its forbidden zone (`none` where there is none) and whether a cell
        zone holds it. Zones are indices into `ids`."""
        n = len(x)
        if not self.ids or not n:
            return np.full(n, self.none, np.int64), np.full(n, self.none, np.int64), np.zeros(n, dtype=bool)
        inside = self.holding(x, y)
        if self._weights is None:
            return self._answers(inside)
        zone_of, forbidden_of, in_cell = self._lut
        mask = inside @ self._weights
        return zone_of[mask], forbidden_of[mask], in_cell[mask]

    def _answers(self, inside: NDArray[np.bool_]) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
        """`locate`'s answers for rows of `inside` (which zones hold a point)."""
        bad = inside & self.forbidden
        other = inside & ~self.forbidden
        # argmax: the first True of a row (config order); rows with none get `none`
        forbidden_of = np.where(bad.any(axis=1), bad.argmax(axis=1), self.none)
        other_of = np.where(other.any(axis=1), other.argmax(axis=1), self.none)
        zone_of = np.where(forbidden_of < self.none, forbidden_of, other_of)
        in_cell = (inside & self.cell).any(axis=1)
        return zone_of, forbidden_of, in_cell
