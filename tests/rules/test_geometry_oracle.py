"""Geometry of the rules checked against an oracle, on hypothesis-generated polygons and points.

Site metres (edge/rules/location.py): zone membership (restricted zone, gathering zone), grid
membership (out of grid, roll call) and the distance to the perimeter (tag lost) must equal
shapely's direct `Polygon.contains` / `Polygon.distance` on the same coordinates, exactly: the
rules may index and vectorise (STRtree, `contains_xy`) but must not change the answer.

Boundary convention (what the code does, pinned here): membership is the *interior* only, as
`Polygon.contains` — a point on an edge or a vertex is NOT in the zone or grid (so a tag exactly
on a restricted zone's edge raises nothing, and one exactly on its grid's edge counts as out of
the grid during lock-in). The perimeter distance is `Polygon.distance`: 0 on the boundary and
inside.

GPS (edge/rules/geo.py, used by the wristband geofence and curfew rules): zones are [lat, lon]
rings projected equirectangularly around their vertex mean. The oracle is independent of that
projection: spherical geometry (great-circle edges), evaluated exactly in a gnomonic projection
centred on the fix (great circles map to straight lines and the distance from the centre is
monotonic in the arc, so containment and the nearest boundary point are exact there). For
zones under 5 km across, the projected distances are within 0.5 % of haversine, and the signed
distance to the boundary agrees with the oracle within 0.5 % plus the metre or so by which a
chart-straight edge and a great-circle edge part. Accuracy-aware decisions: a fix is inside an
exclusion zone only if its whole accuracy disc is in the interior (signed distance < -acc), and
outside the inclusion zones only if the disc misses all of them (signed distance > acc); a fix
on the boundary (distance 0) is therefore neither, whatever its accuracy.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPoint, Point, Polygon

from edge.rules import RuleEngine
from edge.rules.geo import EARTH_RADIUS_M, GpsPolygon, inside_exclusion, outside_inclusion
from gridwatch.config import SiteConfig
from gridwatch.contract import PositionsReading

from . import T0, of

R = EARTH_RADIUS_M
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- polygon and point strategies (site metres) --------------------------------------------------

# site coordinates are surveyed to the millimetre: without the rounding hypothesis also draws values
# like -4.96e-142, which make nearly flat rings on which GEOS's own predicates disagree (below)
coord = st.floats(-500, 500, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3))


@st.composite
def star_polygons(draw: st.DrawFn, max_radius: float = 200.0) -> Polygon:
    """A star-shaped polygon: sorted distinct angles around a centre, random radii."""
    cx, cy = draw(coord), draw(coord)
    n = draw(st.integers(3, 12))
    angles = sorted(draw(st.lists(st.floats(0, 2 * math.pi, exclude_max=True), min_size=n, max_size=n, unique=True)))
    radii = draw(st.lists(st.floats(max_radius / 20, max_radius), min_size=n, max_size=n))
    ring = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, radii, strict=True)]
    poly = Polygon(ring)
    assume(poly.is_valid and poly.area > 1.0)
    return poly


@st.composite
def hull_polygons(draw: st.DrawFn) -> Polygon:
    """The convex hull of 3..15 random points."""
    pts = draw(st.lists(st.tuples(coord, coord), min_size=3, max_size=15))
    hull = MultiPoint(pts).convex_hull
    assume(isinstance(hull, Polygon) and hull.area > 1.0)
    return Polygon(hull.exterior.coords)


polygons = st.one_of(star_polygons(), hull_polygons())


@st.composite
def points_for(draw: st.DrawFn, poly: Polygon) -> tuple[float, float]:
    """Anywhere around the polygon, exactly on a vertex, on an edge, or a hair off an edge."""
    ring = list(poly.exterior.coords)[:-1]
    kind = draw(st.sampled_from(["anywhere", "vertex", "edge", "near_edge"]))
    if kind == "anywhere":
        minx, miny, maxx, maxy = poly.bounds
        pad = 0.2 * max(maxx - minx, maxy - miny) + 1.0
        return draw(st.floats(minx - pad, maxx + pad)), draw(st.floats(miny - pad, maxy + pad))
    i = draw(st.integers(0, len(ring) - 1))
    (ax, ay), (bx, by) = ring[i], ring[(i + 1) % len(ring)]
    if kind == "vertex":
        return ax, ay
    t = draw(st.floats(0, 1))
    x, y = ax + t * (bx - ax), ay + t * (by - ay)
    if kind == "edge":
        return x, y
    length = math.hypot(bx - ax, by - ay)
    off = draw(st.sampled_from([-1e-3, -1e-6, -1e-9, 1e-9, 1e-6, 1e-3]))  # either side of the edge
    return x - off * (by - ay) / length, y + off * (bx - ax) / length


@st.composite
def polygon_and_points(draw: st.DrawFn) -> tuple[Polygon, list[tuple[float, float]]]:
    poly = draw(polygons)
    # at most 10 tags: an 11th transition of one rule in one zone within a minute is held back by
    # flood grouping (alert.flood, max_per_minute 10), which tests/rules covers on its own
    return poly, draw(st.lists(points_for(poly), min_size=1, max_size=10))


def _site(zones: list[dict[str, Any]], grid: Polygon, n_people: int, lock_in: str) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "site": {"id": "s1", "timezone": "Asia/Shanghai"},
            "areas": [
                {
                    "id": "a1",
                    "supervisor": "sup",
                    "grids": [
                        {"id": "g1", "officer": "off", "polygon": list(grid.exterior.coords)[:-1], "lock_in": lock_in}
                    ],
                }
            ],
            "zones": zones,
            "devices": [{"id": "rtls-1", "family": "rtls"}],
            "people": [{"id": f"p{i}", "role": "inmate", "grid": "g1", "tag": f"t{i}"} for i in range(n_people)],
            "edges": [{"id": "e1", "areas": ["a1"], "zones": [z["id"] for z in zones], "devices": ["rtls-1"]}],
        }
    )


def _positions(points: list[tuple[float, float]], seconds: float = 0) -> PositionsReading:
    when = T0 + timedelta(seconds=seconds)
    return PositionsReading.model_validate(
        {
            "device": "rtls-1",
            "ts": when,
            "positions": [{"tag": f"t{i}", "ts": when, "x": x, "y": y} for i, (x, y) in enumerate(points)],
        }
    )


def _ring(poly: Polygon) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in list(poly.exterior.coords)[:-1]]


# -- site metres: membership ---------------------------------------------------------------------


@FAST
@given(polygon_and_points(), polygons)
def test_zone_and_grid_membership_equal_shapely_contains(
    case: tuple[Polygon, list[tuple[float, float]]], yard: Polygon
) -> None:
    """The polygon is a restricted zone and the inmates' grid; a yard (not forbidden) may overlap it."""
    poly, points = case
    zones = [
        {"id": "z", "kind": "restricted", "polygon": _ring(poly)},
        {"id": "yard", "kind": "yard", "polygon": _ring(yard)},
    ]
    engine = RuleEngine(_site(zones, poly, len(points), "always"), "e1")
    expected = {f"p{i}" for i, (x, y) in enumerate(points) if poly.contains(Point(x, y))}
    on_boundary = {f"p{i}" for i, (x, y) in enumerate(points) if poly.boundary.intersects(Point(x, y))}
    # the convention: the boundary is outside. GEOS itself can call a point both inside and on the
    # boundary of a degenerate ring (coordinates like 1e-266): no oracle there, skip the example
    assume(not expected & on_boundary)

    out = engine.on_readings([_positions(points)], T0)
    restricted = {t.subject.id for t in of(out, "location.restricted_zone", "active")}
    assert restricted == expected
    for t in of(out, "location.restricted_zone", "active"):
        assert t.zone == "z"

    out_of_grid = {t.subject.id for t in of(engine.on_tick(T0), "location.out_of_grid", "active")}
    assert out_of_grid == {f"p{i}" for i in range(len(points))} - expected

    present, missing, others = engine.location.rollcall("g1", T0)
    assert (set(present), set(missing), others) == (expected, {f"p{i}" for i in range(len(points))} - expected, [])

    for x, y in points:  # the zone a gathering is attributed to: one that contains the point
        containing = {zid for zid, p in (("z", poly), ("yard", yard)) if p.contains(Point(x, y))}
        found = engine.location._zone_at(x, y)
        assert found in containing if containing else found is None


# -- site metres: distance to the perimeter ------------------------------------------------------


@st.composite
def perimeters_and_points(draw: st.DrawFn) -> tuple[list[Polygon], list[tuple[float, float]]]:
    fences = draw(st.lists(polygons, min_size=1, max_size=3))
    points = draw(st.lists(st.one_of(*(points_for(f) for f in fences)), min_size=1, max_size=10))
    return fences, points


@FAST
@given(perimeters_and_points())
def test_tag_lost_perimeter_distance_equals_shapely_distance(
    case: tuple[list[Polygon], list[tuple[float, float]]],
) -> None:
    fences, points = case
    zones = [{"id": f"fence-{k}", "kind": "perimeter", "polygon": _ring(f)} for k, f in enumerate(fences)]
    grid = Polygon([(-2000, -2000), (2000, -2000), (2000, 2000), (-2000, 2000)])
    engine = RuleEngine(_site(zones, grid, len(points), "never"), "e1")
    engine.on_readings([_positions(points)], T0)
    lost = {t.subject.id: t for t in of(engine.on_tick(T0 + timedelta(seconds=30)), "location.tag_lost", "active")}
    assert set(lost) == {f"p{i}" for i in range(len(points))}
    near = 10.0  # RULES default location.tag_lost perimeter_distance_m
    for i, (x, y) in enumerate(points):
        t = lost[f"p{i}"]
        oracle = min(f.distance(Point(x, y)) for f in fences)
        assert math.isclose(t.detail["perimeter_distance_m"], oracle, abs_tol=0.05 + 1e-9)
        assert (t.level == "high") == (oracle <= near)
        if any(f.boundary.intersects(Point(x, y)) or f.contains(Point(x, y)) for f in fences):
            assert t.detail["perimeter_distance_m"] == 0


# -- GPS: spherical helpers (the oracle) ---------------------------------------------------------


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * R * math.asin(min(1.0, math.sqrt(h)))


def destination(lat: float, lon: float, bearing: float, dist_m: float) -> tuple[float, float]:
    """The point dist_m along the great circle from (lat, lon) at `bearing` radians from north."""
    p1, l1, d = math.radians(lat), math.radians(lon), dist_m / R
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), (math.degrees(l2) + 180) % 360 - 180


def gnomonic(ring: list[tuple[float, float]], lat0: float, lon0: float) -> list[tuple[float, float]]:
    """[lat, lon] points in the gnomonic projection centred on (lat0, lon0), metres."""
    p0, l0 = math.radians(lat0), math.radians(lon0)
    out = []
    for lat, lon in ring:
        p, dl = math.radians(lat), math.radians(lon) - l0
        cos_c = math.sin(p0) * math.sin(p) + math.cos(p0) * math.cos(p) * math.cos(dl)
        x = R * math.cos(p) * math.sin(dl) / cos_c
        y = R * (math.cos(p0) * math.sin(p) - math.sin(p0) * math.cos(p) * math.cos(dl)) / cos_c
        out.append((x, y))
    return out


def spherical_signed_distance(ring: list[tuple[float, float]], lat: float, lon: float) -> float:
    """Metres along the sphere from the fix to the great-circle-edged zone: negative inside."""
    poly = Polygon(gnomonic(ring, lat, lon))
    origin = Point(0.0, 0.0)
    arc = R * math.atan(poly.exterior.distance(origin) / R)
    return -arc if poly.contains(origin) else arc


# -- GPS strategies ------------------------------------------------------------------------------

LAT_MAX = 75.0
"""Every prison is well inside ±75° (the equirectangular scale error grows with tan(lat))."""


@st.composite
def gps_zones(draw: st.DrawFn) -> tuple[list[tuple[float, float]], tuple[float, float], float]:
    """(a [lat, lon] ring under 5 km across, its centre, its radius): a star polygon of geodesic
    polar coordinates around a centre anywhere on Earth (the antimeridian included)."""
    lat_c = draw(st.floats(-LAT_MAX, LAT_MAX))
    lon_c = draw(st.one_of(st.floats(-180, 180), st.floats(179.9, 180), st.floats(-180, -179.9)))
    radius = draw(st.floats(50, 2_490))
    n = draw(st.integers(3, 12))
    bearings = sorted(draw(st.lists(st.floats(0, 2 * math.pi, exclude_max=True), min_size=n, max_size=n, unique=True)))
    radii = draw(st.lists(st.floats(radius / 10, radius), min_size=n, max_size=n))
    ring = [destination(lat_c, lon_c, b, r) for b, r in zip(bearings, radii, strict=True)]
    assume(Polygon(gnomonic(ring, lat_c, lon_c)).is_valid)
    zone = GpsPolygon.from_ring(ring)
    assume(zone.polygon.is_valid and zone.polygon.area > 100.0)
    return ring, (lat_c, lon_c), radius


@st.composite
def gps_fixes(draw: st.DrawFn, centre: tuple[float, float], radius: float) -> tuple[float, float]:
    """A fix within 1.5 zone radii of the centre: so anywhere in or around the zone."""
    return destination(*centre, draw(st.floats(0, 2 * math.pi)), draw(st.floats(0, 1.5 * radius)))


def tolerance(dist_m: float, lat: float, radius_m: float) -> float:
    """How far the code's signed distance may be from the oracle's: 0.5 % of the distance (scale
    error of the projection), plus how far a chart-straight edge parts from the great circle
    through the same vertices (at most L²·tan|lat|/8R for an edge of length L ≤ 2·radius: 1.8 m
    for 5 km at 75°), plus half a metre. Measured worst excess over the 0.5 % term: about 0.4 m."""
    chord = 2 * radius_m
    return 0.005 * abs(dist_m) + chord**2 * math.tan(math.radians(abs(lat))) / (8 * R) + 0.5


# -- GPS: projection -----------------------------------------------------------------------------


@FAST
@given(st.data())
def test_equirectangular_projection_within_half_a_percent_of_haversine(data: st.DataObject) -> None:
    ring, centre, radius = data.draw(gps_zones())
    zone = GpsPolygon.from_ring(ring)
    a = data.draw(st.sampled_from(ring) | gps_fixes(centre, radius / 1.5))
    b = data.draw(st.sampled_from(ring) | gps_fixes(centre, radius / 1.5))
    true = haversine(*a, *b)
    assume(true > 1.0)
    projected = zone.local(*a).distance(zone.local(*b))
    assert abs(projected / true - 1) < 0.005, (a, b, projected, true)


# -- GPS: signed distance and the accuracy-aware decisions ---------------------------------------


@FAST
@given(st.data())
def test_gps_signed_distance_matches_the_spherical_oracle(data: st.DataObject) -> None:
    ring, centre, radius = data.draw(gps_zones())
    zone = GpsPolygon.from_ring(ring)
    lat, lon = data.draw(gps_fixes(centre, radius))
    oracle = spherical_signed_distance(ring, lat, lon)
    code = zone.signed_distance(lat, lon)
    tol = tolerance(oracle, centre[0], radius)
    assert abs(code - oracle) <= tol, (ring, lat, lon, code, oracle)
    if abs(oracle) > tol:
        assert (code < 0) == (oracle < 0)


@FAST
@given(st.data())
def test_accuracy_aware_inclusion_and_exclusion_match_the_oracle(data: st.DataObject) -> None:
    ring, centre, radius = data.draw(gps_zones())
    zone = GpsPolygon.from_ring(ring)
    lat, lon = data.draw(gps_fixes(centre, radius))
    acc = data.draw(st.floats(0, 100))
    oracle = spherical_signed_distance(ring, lat, lon)
    tol = tolerance(oracle, centre[0], radius)
    if oracle < -acc - tol:
        assert inside_exclusion(zone, lat, lon, acc)
    elif oracle > -acc + tol:
        assert not inside_exclusion(zone, lat, lon, acc)
    if oracle > acc + tol:
        assert outside_inclusion([zone], lat, lon, acc)
    elif oracle < acc - tol:
        assert not outside_inclusion([zone], lat, lon, acc)
    # several inclusion zones: outside only if outside every one of them
    other = GpsPolygon.from_ring([(la + 0.01, lo) for la, lo in ring])  # about 1.1 km further north
    far_from_both = all(z.signed_distance(lat, lon) > acc for z in (zone, other))
    assert outside_inclusion([zone, other], lat, lon, acc) == far_from_both
    assert not outside_inclusion([], lat, lon, acc)  # no inclusion zone: nobody is outside


@FAST
@given(st.data())
def test_gps_fix_on_the_boundary_is_neither_inside_nor_outside(data: st.DataObject) -> None:
    ring, _centre, _radius = data.draw(gps_zones())
    zone = GpsPolygon.from_ring(ring)
    i = data.draw(st.integers(0, len(ring) - 1))
    (lat_a, lon_a), (lat_b, lon_b) = ring[i], ring[(i + 1) % len(ring)]
    acc = data.draw(st.floats(0, 100))
    # a vertex projects to exactly the polygon's vertex: distance 0, not contained
    assert zone.signed_distance(lat_a, lon_a) == 0.0
    assert not inside_exclusion(zone, lat_a, lon_a, acc)
    assert not outside_inclusion([zone], lat_a, lon_a, acc)
    # the projection is affine in (lat, lon), so a point between two vertices lands on the edge
    t = data.draw(st.floats(0, 1))
    dlon = (lon_b - lon_a + 180) % 360 - 180
    lat, lon = lat_a + t * (lat_b - lat_a), (lon_a + t * dlon + 180) % 360 - 180
    assert abs(zone.signed_distance(lat, lon)) < 1e-6
    assert not inside_exclusion(zone, lat, lon, max(acc, 1e-6))
    assert not outside_inclusion([zone], lat, lon, max(acc, 1e-6))
