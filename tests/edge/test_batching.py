"""Batching: events are never thinned, telemetry is downsampled per subject, bodies are valid uplink JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge.batching import Batcher, BatchingParams, event_of
from gridwatch.config import load_site
from gridwatch.config.models import SiteConfig
from gridwatch.contract import (
    AccessReading,
    EventsBody,
    GpsFix,
    PerimeterReading,
    Position,
    PositionsReading,
    Reading,
    TelemetryBody,
    VitalsReading,
    parse_uplink,
)
from tests.conftest import DEMO_SITE

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def _site() -> SiteConfig:
    return load_site(DEMO_SITE)


def _positions(tag: str, start: datetime, n: int, step_s: float) -> list[Reading]:
    return [
        PositionsReading(
            device="rtls-w1",
            ts=start + timedelta(seconds=i * step_s),
            positions=(Position(tag=tag, ts=start + timedelta(seconds=i * step_s), x=30.0, y=80.0, q=0.9),),
        )
        for i in range(n)
    ]


def _bodies(batcher: Batcher, kind: str) -> list[bytes]:
    return [body for k, body in batcher.flush(0.0) if k == kind]


def test_positions_downsampled_to_one_per_tag_per_second() -> None:
    batcher = Batcher(_site())
    batcher.add(_positions("T-0001", T0, 50, 0.1))  # 5 s of 10 Hz
    batcher.add(_positions("T-0002", T0, 5, 1.0))  # already 1 Hz: all kept
    bodies = [parse_uplink("telemetry", b) for b in _bodies(batcher, "telemetry")]
    assert len(bodies) == 1
    body = bodies[0]
    assert isinstance(body, TelemetryBody)
    per_tag: dict[str, int] = {}
    for point in body.batch:
        per_tag[point.tags["tag"]] = per_tag.get(point.tags["tag"], 0) + 1
    assert per_tag == {"T-0001": 5, "T-0002": 5}
    assert batcher.stats.downsampled == 45
    first = body.batch[0]
    assert first.m == "position"
    assert first.tags == {"site": "demo-prison", "tag": "T-0001", "person": "P-0001", "grid": "w1-g1"}
    assert first.fields == {"x": 30.0, "y": 80.0, "z": 0.0, "q": 0.9}


def test_vitals_and_gps_one_point_per_band_per_ten_seconds() -> None:
    batcher = Batcher(_site())
    readings: list[Reading] = [
        VitalsReading(
            device="wb-w1",
            ts=T0 + timedelta(seconds=i),
            band="W-0001",
            hr=70 + i,
            temp=36.5,
            gps=GpsFix(lat=31.2, lon=121.4, acc_m=5),
        )
        for i in range(30)
    ]
    batcher.add(readings)
    [raw] = _bodies(batcher, "telemetry")
    body = parse_uplink("telemetry", raw)
    assert isinstance(body, TelemetryBody)
    vitals = [p for p in body.batch if p.m == "vitals"]
    gps = [p for p in body.batch if p.m == "gps"]
    assert [p.fields["hr"] for p in vitals] == [70, 80, 90]
    assert len(gps) == 3
    assert vitals[0].tags == {"site": "demo-prison", "band": "W-0001", "person": "P-0001"}
    assert gps[0].fields == {"lat": 31.2, "lon": 121.4, "acc_m": 5}


def test_device_clock_jumping_back_is_not_silenced() -> None:
    batcher = Batcher(_site())
    batcher.add(_positions("T-0001", T0, 1, 1.0))
    batcher.add(_positions("T-0001", T0 - timedelta(hours=1), 1, 1.0))
    assert batcher.pending() == (0, 2)


def test_events_kept_in_full_and_split_at_max_items() -> None:
    batcher = Batcher(_site(), BatchingParams(max_items=4))
    readings: list[Reading] = [
        AccessReading(device="acc-w1-cell", ts=T0, door="D-W1-CELL", event="granted", card="1001", direction="in")
        for _ in range(3)
    ]
    assert batcher.add(readings) is False
    assert batcher.add([PerimeterReading(device="ir-n-01", ts=T0, detector="ir-n-01", beam=2, state="normal")])
    assert batcher.due(0.0)
    out = batcher.flush(0.0)
    assert [k for k, _ in out] == ["events"]
    body = parse_uplink("events", out[0][1])
    assert isinstance(body, EventsBody)
    assert [e.kind for e in body.batch] == ["access.granted"] * 3 + ["perimeter.normal"]
    assert body.batch[0].data == {"door": "D-W1-CELL", "card": "1001", "direction": "in"}
    assert body.batch[3].data == {"detector": "ir-n-01", "beam": 2}


def test_due_after_flush_interval_only_when_something_waits() -> None:
    batcher = Batcher(_site(), BatchingParams(flush_s=1.0))
    assert not batcher.due(10.0)
    batcher.add(_positions("T-0001", T0, 1, 1.0))
    assert batcher.due(10.0)  # never flushed yet
    batcher.flush(10.0)
    batcher.add(_positions("T-0001", T0 + timedelta(seconds=5), 1, 1.0))
    assert not batcher.due(10.5)
    assert batcher.due(11.0)


def test_pending_telemetry_is_bounded_and_shed_points_reported() -> None:
    batcher = Batcher(_site(), BatchingParams(max_items=1000, max_pending_telemetry=10))
    for i in range(15):
        batcher.add(_positions(f"T-{i:04d}", T0, 1, 1.0))
    assert batcher.stats.shed == 5
    [raw] = _bodies(batcher, "telemetry")
    body = parse_uplink("telemetry", raw)
    assert isinstance(body, TelemetryBody)
    assert len(body.batch) == 10 and body.dropped == 5


def test_event_of_marks_clock_skew_and_skips_telemetry() -> None:
    skewed = PerimeterReading(device="ir-n-01", ts=T0, detector="ir-n-01", beam=1, state="alarm", clock_skew=True)
    event = event_of(skewed)
    assert event is not None and event.kind == "perimeter.alarm" and event.data["clock_skew"] is True
    assert event_of(_positions("T-0001", T0, 1, 1.0)[0]) is None
