"""The batcher's grid lookup short-cuts axis-aligned rectangles; it must answer as ray casting does.

Most grids are drawn as rectangles. For such a ring, `_in_ring`'s ray casting crosses only the
two vertical edges, exactly at their x (no rounding), so inside is x0 <= x < x1 and y0 <= y < y1;
`Batcher.grid_at` uses that and keeps ray casting for every other ring.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.batching import _in_ring, _rect

coord = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)


@st.composite
def rectangles(draw: st.DrawFn) -> list[tuple[float, float]]:
    """A rectangle's four corners, starting at any corner, either way round."""
    x0, x1 = sorted(draw(st.lists(coord, min_size=2, max_size=2, unique=True)))
    y0, y1 = sorted(draw(st.lists(coord, min_size=2, max_size=2, unique=True)))
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    if draw(st.booleans()):
        ring.reverse()
    k = draw(st.integers(0, 3))
    return ring[k:] + ring[:k]


@st.composite
def points_near(draw: st.DrawFn, ring: list[tuple[float, float]]) -> tuple[float, float]:
    xs = sorted({x for x, _ in ring})
    ys = sorted({y for _, y in ring})
    edge = st.sampled_from([*xs, *(math.nextafter(v, d) for v in xs for d in (-math.inf, math.inf))])
    edge_y = st.sampled_from([*ys, *(math.nextafter(v, d) for v in ys for d in (-math.inf, math.inf))])
    special = st.sampled_from([math.nan, math.inf, -math.inf])
    return draw(st.one_of(coord, edge, special)), draw(st.one_of(coord, edge_y, special))


@settings(max_examples=500)
@given(st.data())
def test_rectangle_shortcut_equals_ray_casting(data: st.DataObject) -> None:
    ring = data.draw(rectangles())
    rect = _rect(ring)
    assert rect is not None
    x0, x1, y0, y1 = rect
    for _ in range(20):
        x, y = data.draw(points_near(ring))
        assert (x0 <= x < x1 and y0 <= y < y1) == _in_ring(x, y, ring), (ring, x, y)


@given(st.lists(st.tuples(coord, coord), min_size=3, max_size=8))
def test_only_true_rectangles_take_the_shortcut(ring: list[tuple[float, float]]) -> None:
    rect = _rect(ring)
    if rect is None:
        return
    x0, x1, y0, y1 = rect
    assert len(ring) == 4 and set(ring) == {(x0, y0), (x1, y0), (x1, y1), (x0, y1)}
    for (ax, ay), (bx, by) in zip(ring, ring[1:] + ring[:1], strict=True):
        assert ax == bx or ay == by  # every edge axis-aligned: no bow-tie


def test_a_bow_tie_of_rectangle_corners_is_not_a_rectangle() -> None:
    assert _rect([(0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0)]) is None
    assert _rect([(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)]) is None
    assert _rect([(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]) is None
