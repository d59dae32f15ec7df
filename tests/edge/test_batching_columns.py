"""The batcher's columnar positions give the per-position batcher's bodies, byte for byte.

`Batcher` keeps RTLS positions as columns: downsampling against a per-tag array, grids by array
tests, and the telemetry JSON written from the columns. The reference here is the batcher as it
was, position by position: a dict of last times, `grid_at`, a TelemetryPoint per kept position and
`TelemetryBody.model_dump_json()`. For any run of readings (tags repeated inside a batch, clocks
jumping back, times exactly one interval apart, points on grid edges, q absent, bounded pending
telemetry, vitals in between), both must count the same and write the same bodies.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edge.batching
from edge.batching import Batcher, BatchingParams
from gridwatch.config import load_site
from gridwatch.config.models import SiteConfig
from gridwatch.contract import Position, PositionsReading, Reading, TelemetryBody, TelemetryPoint, VitalsReading
from gridwatch.contract.readings import PositionColumns, Positions
from tests.conftest import DEMO_SITE

SITE: SiteConfig = load_site(DEMO_SITE)
T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
# a hand-drawn non-rectangular grid next to the demo's rectangles, so ray casting is exercised too
SITE_WITH_RING = SITE.model_copy(
    update={
        "areas": [
            SITE.areas[0].model_copy(
                update={
                    "grids": [
                        *SITE.areas[0].grids,
                        SITE.areas[0]
                        .grids[0]
                        .model_copy(update={"id": "ring-1", "polygon": [[0, 0], [30, 5], [25, 40], [-5, 20]]}),
                    ]
                }
            ),
            *SITE.areas[1:],
        ]
    }
)


class Reference:
    """The per-position batcher (positions as TelemetryPoints), for positions and vitals."""

    def __init__(self, batcher: Batcher) -> None:
        self.b = batcher  # its grid_at, person look-ups and vitals code, which did not change
        self.last: dict[str, datetime] = {}
        self.points: list[TelemetryPoint] = []
        self.downsampled = self.shed = self.shed_since_body = 0

    def add(self, readings: list[Reading]) -> None:
        p = self.b.params
        for r in readings:
            if isinstance(r, VitalsReading):
                self.b._points.clear()
                self.b._n_points = len(self.points)
                before, before_ds = self.b.stats.shed, self.b.stats.downsampled
                self.b._add_vitals(r)
                self.downsampled += self.b.stats.downsampled - before_ds
                self.points += [x for x in self.b._points if isinstance(x, TelemetryPoint)]
                self.shed += self.b.stats.shed - before
                self.shed_since_body += self.b.stats.shed - before
                self.b._points.clear()
                continue
            assert isinstance(r, PositionsReading)
            for pos in r.positions:
                last = self.last.get(pos.tag)
                if last is not None and 0 <= (pos.ts - last).total_seconds() < p.position_interval_s:
                    self.downsampled += 1
                    continue
                self.last[pos.tag] = pos.ts
                if len(self.points) >= p.max_pending_telemetry:
                    self.shed += 1
                    self.shed_since_body += 1
                    continue
                tags = {"site": SITE.site.id, "tag": pos.tag}
                person = self.b._person_by_tag.get(pos.tag)
                if person is not None:
                    tags["person"] = person
                grid = self.b.grid_at(pos.x, pos.y)
                if grid is not None:
                    tags["grid"] = grid
                fields: dict[str, float | int | bool | str] = {"x": pos.x, "y": pos.y, "z": pos.z}
                if pos.q is not None:
                    fields["q"] = pos.q
                self.points.append(TelemetryPoint(m="position", tags=tags, fields=fields, ts=pos.ts))

    def flush(self, ids: itertools.count[int]) -> list[bytes]:
        step = self.b.params.max_items
        out = []
        for start in range(0, len(self.points), step):
            body = TelemetryBody(
                event_id=_event_id(next(ids)),
                batch=tuple(self.points[start : start + step]),
                dropped=self.shed_since_body,
            )
            self.shed_since_body = 0
            out.append(body.model_dump_json().encode())
        self.points.clear()
        return out


def _event_id(n: int) -> str:
    return f"01900000-0000-7000-8000-{n:012d}"


tags = st.sampled_from(["T-0001", "T-0002", "T-0003", "T-S001", "T-9999"])  # people's tags and one nobody carries
edges = [20.0, 45.0, 70.0, 30.0, 60.0, 100.0, 0.0, 25.0]
coordinate = st.one_of(
    st.floats(-10, 110, allow_nan=False),
    st.sampled_from(edges),
    st.sampled_from(edges).map(lambda v: v - 1e-9),
    st.sampled_from([-0.0, 1e-5, 1234567.5e-3, 99.99999999999999]),
)
offset_s = st.one_of(st.integers(-3, 6), st.sampled_from([0.5, 0.999999, 1.000001, 0.9999995, -3600.0]))


@st.composite
def position(draw: st.DrawFn, base: datetime) -> Position:
    return Position(
        tag=draw(tags),
        ts=base + timedelta(seconds=draw(offset_s)),
        x=draw(coordinate),
        y=draw(coordinate),
        z=draw(st.sampled_from([0.0, -0.0, 1.5, 1e-7])),
        q=draw(st.one_of(st.none(), st.sampled_from([0.0, 0.9, 1.0, 0.123456789]))),
        bat=draw(st.one_of(st.none(), st.floats(0, 100))),
    )


@st.composite
def readings(draw: st.DrawFn) -> list[list[Reading]]:
    calls: list[list[Reading]] = []
    base = T0
    for _ in range(draw(st.integers(1, 8))):
        base += timedelta(seconds=draw(st.sampled_from([0, 0.5, 1, 2, -10])))
        batch: list[Reading] = []
        for _ in range(draw(st.integers(1, 3))):
            if draw(st.integers(0, 5)) == 0:
                batch.append(VitalsReading(device="wb-w1", ts=base, band="W-0001", hr=70, bat=50))
                continue
            positions = tuple(draw(st.lists(position(base), min_size=0, max_size=6)))
            # as the driver makes it (columns only) or as simulators do (Position objects)
            held = Positions(columns=PositionColumns.of(positions)) if draw(st.booleans()) else positions
            batch.append(PositionsReading(device="rtls-w1", ts=base, positions=held))
        calls.append(batch)
    return calls


@pytest.mark.parametrize("site", [SITE, SITE_WITH_RING], ids=["rectangles", "with-ring"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=readings(), max_items=st.integers(1, 7), max_pending=st.integers(1, 30))
def test_columnar_positions_write_the_per_position_bodies(
    site: SiteConfig, calls: list[list[Reading]], max_items: int, max_pending: int
) -> None:
    params = BatchingParams(max_items=max_items, max_pending_telemetry=max_pending)
    batcher, ref = Batcher(site, params), Reference(Batcher(site, params))
    ids, ref_ids = itertools.count(), itertools.count()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(edge.batching, "new_event_id", lambda: _event_id(next(ids)))
        _run(batcher, ref, calls, ref_ids)


def _run(batcher: Batcher, ref: Reference, calls: list[list[Reading]], ref_ids: itertools.count[int]) -> None:
    for i, call in enumerate(calls):
        batcher.add(call)
        ref.add(call)
        assert batcher.telemetry_checked() == ref.points
        assert batcher.pending()[1] == len(ref.points)
        assert (batcher.stats.downsampled, batcher.stats.shed) == (ref.downsampled, ref.shed)
        if i % 2:
            got = [body for kind, body in batcher.flush(0.0) if kind == "telemetry"]
            assert got == ref.flush(ref_ids)
    got = [body for kind, body in batcher.flush(0.0) if kind == "telemetry"]
    assert got == ref.flush(ref_ids)
