"""The location rules' whole-batch paths give the answers of their position-by-position versions.

`LocationRules._zones` decides the zone, cell flag and restricted-zone condition of a batch of
distinct tags over whole arrays; `_zones_each` (kept for batches that name a tag twice) does it hit
by hit. On overlapping zones of every kind, people of every role and tags nobody carries, both must
leave the same tag table and raise and clear the same alerts. `_clusters` (gathering) must group
points exactly as the union-find it replaced.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from edge.rules import RuleEngine
from edge.rules.location import _clusters
from gridwatch.contract import AlertTransition, PositionsReading

from . import T0, small_site

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ROLES = ["inmate", "inmate", "staff", "supervisee"]
N_PEOPLE = 24


def _site() -> Any:
    square = [[0, 0], [60, 0], [60, 60], [0, 60]]
    zones = [
        {"id": "cells", "kind": "cell", "area": "a1", "polygon": [[0, 0], [40, 0], [40, 40], [0, 40]]},
        {"id": "yard", "kind": "yard", "area": "a1", "polygon": [[20, 20], [60, 20], [60, 60], [20, 60]]},
        {"id": "armoury", "kind": "restricted", "area": "a1", "polygon": [[10, 10], [30, 10], [30, 30], [10, 30]]},
        {"id": "corridor", "kind": "staff_only", "area": "a1", "polygon": [[25, 0], [35, 0], [35, 60], [25, 60]]},
        {"id": "fence", "kind": "perimeter", "polygon": [[0, 50], [60, 50], [60, 60], [0, 60]]},
        {"id": "shop", "kind": "workshop", "area": "a1", "polygon": [[40, 0], [60, 0], [60, 20], [40, 20]]},
    ]
    people = [{"id": f"P{i}", "role": ROLES[i % len(ROLES)], "grid": "g1", "tag": f"T{i}"} for i in range(N_PEOPLE)]
    return small_site(
        areas=[
            {
                "id": "a1",
                "supervisor": "sup",
                "grids": [{"id": "g1", "officer": "off", "polygon": square, "expected_headcount": N_PEOPLE}],
            }
        ],
        zones=zones,
        devices=[{"id": "gw", "family": "rtls", "zone": "yard"}],
        people=people,
    )


SITE = _site()

# a batch: distinct tags (some carried by nobody), on a 2.5 m lattice so that positions fall on zone
# edges and corners too, or anywhere
coord = st.one_of(st.integers(-4, 26).map(lambda k: k * 2.5), st.floats(-10, 70, allow_nan=False))
position = st.tuples(st.integers(0, N_PEOPLE + 3), coord, coord)
batch = st.lists(position, min_size=1, max_size=20, unique_by=lambda p: p[0])


def _reading(when: datetime, items: list[tuple[int, float, float]]) -> PositionsReading:
    return PositionsReading.model_validate(
        {
            "device": "gw",
            "ts": when,
            "positions": [{"tag": f"T{t}", "ts": when, "x": x, "y": y} for t, x, y in items],
        }
    )


def _one_by_one(engine: RuleEngine) -> RuleEngine:
    rules = engine.location
    rules._zones = lambda idx, _slots, x, y, now: rules._zones_each(idx, x, y, now)  # type: ignore[method-assign,assignment]
    return engine


def _seen(transitions: list[AlertTransition]) -> list[tuple[Any, ...]]:
    """A transition without its random ids."""
    return [
        (t.rule, t.state, t.level, t.subject.id, t.zone, t.grid, t.title, sorted(t.detail.items()), t.devices)
        for t in transitions
    ]


def _table(engine: RuleEngine) -> tuple[Any, ...]:
    t = engine.location.tags
    n = len(t)
    return (dict(t.slot), t.zone[:n].tolist(), t.in_cell[:n].tolist(), t.x[:n].tolist(), t.y[:n].tolist())


@FAST
@given(st.lists(batch, min_size=1, max_size=6))
def test_batch_zones_match_position_by_position(batches: list[list[tuple[int, float, float]]]) -> None:
    fast, slow = RuleEngine(SITE, "e1"), _one_by_one(RuleEngine(SITE, "e1"))
    for k, items in enumerate(batches):
        now = T0 + timedelta(seconds=4 * k)
        reading = _reading(now, items)
        assert _seen(fast.on_readings([reading], now)) == _seen(slow.on_readings([reading], now))
        assert _table(fast) == _table(slow)
        # the quiet period clears what the batch released; ticks read the zones the batch stored
        assert _seen(fast.on_tick(now + timedelta(seconds=3))) == _seen(slow.on_tick(now + timedelta(seconds=3)))
    later = T0 + timedelta(seconds=4 * len(batches) + 60)
    assert _seen(fast.on_tick(later)) == _seen(slow.on_tick(later))


def test_a_tag_twice_in_a_batch_takes_the_position_by_position_path() -> None:
    engine = RuleEngine(SITE, "e1")
    calls: list[str] = []
    rules = engine.location
    each = rules._zones_each

    def counted(*args: Any) -> None:
        calls.append("each")
        each(*args)

    rules._zones_each = counted  # type: ignore[method-assign,assignment]
    engine.on_readings([_reading(T0, [(0, 15, 15), (0, 50, 40)])], T0)  # inmate in the armoury, then the yard
    assert calls == ["each"]
    engine.on_readings([_reading(T0, [(0, 15, 15), (1, 50, 40)])], T0)
    assert calls == ["each"]


def _clusters_union_find(points: np.ndarray, radius: float) -> list[list[int]]:
    """The union-find `_clusters` replaced (the oracle)."""
    if not len(points):
        return []
    parent = list(range(len(points)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in cKDTree(points).query_pairs(2 * radius):
        parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for k in range(len(points)):
        groups.setdefault(find(k), []).append(k)
    return list(groups.values())


@FAST
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=80),
    st.sampled_from([0.5, 1.0, 2.0, 2.5]),
)
def test_clusters_match_union_find(cells: list[tuple[int, int]], radius: float) -> None:
    points = np.array(cells, dtype=np.float64).reshape(-1, 2)  # integer metres: distances exactly 2·radius too
    assert [g.tolist() for g in _clusters(points, radius)] == _clusters_union_find(points, radius)


@FAST
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=80))
def test_gathering_groups_match_one_query_per_centre(cells: list[tuple[int, int]]) -> None:
    pts = np.array(cells, dtype=np.float64)
    tree = cKDTree(pts)
    core = np.arange(len(pts))
    near = tree.query_ball_point(pts[core], 2.0)
    for cluster in _clusters(pts[core], 2.0):
        old = sorted({int(j) for c in core[cluster].tolist() for j in tree.query_ball_point(pts[c], 2.0)})
        assert sorted(set().union(*near[cluster].tolist())) == old
