"""Batch device events and telemetry into uplink bodies (contract §3 `events`, `telemetry`).

Events (door opens, card reads, beam alarms and restores, band and camera events, status
changes) are never thinned. Telemetry is downsampled before it reaches the outbox: positions
at most one point per tag per second, vitals and GPS one point per band per 10 s (by device
time). A batch is flushed every `flush_s` seconds or as soon as it holds `max_items` items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from gridwatch.config.models import SiteConfig
from gridwatch.contract import (
    AccessReading,
    CameraEventReading,
    DeviceEvent,
    EventsBody,
    PerimeterReading,
    PositionsReading,
    Reading,
    StatusReading,
    TelemetryBody,
    TelemetryPoint,
    VitalsReading,
    WristbandEventReading,
    new_event_id,
)

BodyKind = Literal["events", "telemetry"]
Ring = list[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class BatchingParams:
    max_items: int = 500
    flush_s: float = 1.0
    position_interval_s: float = 1.0
    vitals_interval_s: float = 10.0
    gps_interval_s: float = 10.0
    max_pending_telemetry: int = 20_000  # beyond this (outbox stalled, clock stuck) points are shed and counted


@dataclass(slots=True)
class BatchStats:
    events: int = 0
    points: int = 0
    downsampled: int = 0
    shed: int = 0
    bodies: int = 0
    by_measurement: dict[str, int] = field(default_factory=dict)


def _in_ring(x: float, y: float, ring: Ring) -> bool:
    """Ray casting: is (x, y) inside the polygon `ring` (closed implicitly)?"""
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def _ring_box(ring: Ring) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1): `_in_ring` is False unless y0 <= y < y1 and x0 <= x <= x1.

    y: an edge is crossed only if min(yi, yj) <= y < max(yi, yj), exactly. x: right of every vertex
    no crossing lies right of the point; left of every vertex all crossings do, an even number on a
    closed ring. The x margin covers the rounding of the crossing abscissa (a few ulps).
    """
    if not ring:
        return (0.0, -1.0, 0.0, -1.0)  # empty: nothing is inside
    xs = [px for px, _ in ring]
    ys = [py for _, py in ring]
    margin = 1e-9 * (1.0 + max(abs(v) for v in (*xs, *ys)))
    return (min(xs) - margin, max(xs) + margin, min(ys), max(ys))


def _rect(ring: Ring) -> tuple[float, float, float, float] | None:
    """(x0, x1, y0, y1) of a ring that is an axis-aligned rectangle (4 distinct corners), else None.

    Ray casting on such a ring crosses only its two vertical edges, for y0 <= y < y1, at exactly
    x0 and x1 ((xj - xi) is 0, so the crossing abscissa is the edge's x with no rounding): inside
    is then x0 <= x < x1.
    """
    if len(ring) != 4:
        return None
    xs, ys = sorted({px for px, _ in ring}), sorted({py for _, py in ring})
    if len(xs) != 2 or len(ys) != 2 or len(set(ring)) != 4:  # four distinct corners
        return None
    for (ax, ay), (bx, by) in zip(ring, ring[1:] + ring[:1], strict=True):
        if ax != bx and ay != by:  # a diagonal edge: not a rectangle's outline
            return None
    return (xs[0], xs[1], ys[0], ys[1])


def _point_unchecked(
    m: str, tags: dict[str, str], fields: dict[str, float | int | bool | str], ts: datetime
) -> TelemetryPoint:
    """What `TelemetryPoint(m=..., tags=..., fields=..., ts=...)` builds, for values of the right
    types already (fresh dicts of str / float values and a reading's aware time), without validation."""
    point = _new_point(TelemetryPoint)
    _set_attr(point, "__dict__", {"m": m, "tags": tags, "fields": fields, "ts": ts})
    _set_attr(point, "__pydantic_fields_set__", set(_POINT_FIELDS))
    _set_attr(point, "__pydantic_extra__", None)
    _set_attr(point, "__pydantic_private__", None)
    return point


def _point_checked(
    m: str, tags: dict[str, str], fields: dict[str, float | int | bool | str], ts: datetime
) -> TelemetryPoint:
    return TelemetryPoint(m=m, tags=tags, fields=fields, ts=ts)


_POINT_FIELDS = frozenset(TelemetryPoint.model_fields)
_new_point = TelemetryPoint.__new__
_set_attr = object.__setattr__


def _unchecked_point_matches() -> bool:
    """The unchecked constructor builds exactly what validation builds (checked once, at import)."""
    from datetime import UTC

    ts = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        fast = _point_unchecked("position", {"site": "s", "tag": "t"}, {"x": 1.5, "y": 2.0, "z": 0.0}, ts)
        slow = _point_checked("position", {"site": "s", "tag": "t"}, {"x": 1.5, "y": 2.0, "z": 0.0}, ts)
        return (
            fast == slow
            and fast.model_fields_set == slow.model_fields_set
            and fast.model_dump_json() == slow.model_dump_json()
            and {k: getattr(fast, k, None) for k in TelemetryPoint.__slots__}
            == {k: getattr(slow, k, None) for k in TelemetryPoint.__slots__}
        )
    except Exception:
        return False


_make_point = _point_unchecked if _unchecked_point_matches() else _point_checked


def event_of(reading: Reading) -> DeviceEvent | None:
    """The DeviceEvent a reading becomes, or None for telemetry readings."""
    data: dict[str, Any]
    if isinstance(reading, PerimeterReading):
        kind = f"perimeter.{reading.state}"
        data = {"detector": reading.detector, "beam": reading.beam}
    elif isinstance(reading, AccessReading):
        kind = f"access.{reading.event}"
        data = {"door": reading.door}
        if reading.reader is not None:
            data["reader"] = reading.reader
        if reading.card is not None:
            data["card"] = reading.card
        if reading.direction is not None:
            data["direction"] = str(reading.direction)
    elif isinstance(reading, WristbandEventReading):
        kind = f"wristband.{reading.event}"
        data = {"band": reading.band}
    elif isinstance(reading, CameraEventReading):
        kind = f"camera.{reading.event}"
        data = {"camera": reading.camera, "active": reading.active}
    elif isinstance(reading, StatusReading):
        kind = "device.online" if reading.online else "device.offline"
        data = {}
    else:
        return None
    if reading.clock_skew:
        data["clock_skew"] = True
    return DeviceEvent(ts=reading.ts, device=reading.device, kind=kind, data=data)


class Batcher:
    """Accumulates events and downsampled telemetry; `flush` turns them into uplink bodies."""

    def __init__(self, site: SiteConfig, params: BatchingParams | None = None) -> None:
        self.params = params or BatchingParams()
        self._site_id = site.site.id
        self._person_by_tag = {p.tag: p.id for p in site.people if p.tag}
        self._person_by_band = {p.band: p.id for p in site.people if p.band}
        self._grids: list[tuple[str, Ring]] = [
            (g.id, [(float(px), float(py)) for px, py in g.polygon]) for a in site.areas for g in a.grids
        ]
        self._grid_boxes = [(grid_id, ring, *_ring_box(ring)) for grid_id, ring in self._grids]
        # axis-aligned rectangles (most grids): `_in_ring` is exactly x0 <= x < x1 and y0 <= y < y1
        self._grid_rects = [_rect(ring) for _grid_id, ring in self._grids]
        self._events: list[DeviceEvent] = []
        self._points: list[TelemetryPoint] = []
        self._last_point: dict[tuple[str, str], datetime] = {}
        self._shed_since_body = 0
        self._last_flush: float | None = None
        self.stats = BatchStats()

    # -- input -------------------------------------------------------------------------------
    def add(self, readings: list[Reading]) -> bool:
        """Take readings; True when a batch is full and should be flushed now."""
        for reading in readings:
            event = event_of(reading)
            if event is not None:
                self._events.append(event)
                self.stats.events += 1
            elif isinstance(reading, PositionsReading):
                self._add_positions(reading)
            elif isinstance(reading, VitalsReading):
                self._add_vitals(reading)
        return self.full()

    def full(self) -> bool:
        return len(self._events) >= self.params.max_items or len(self._points) >= self.params.max_items

    def pending(self) -> tuple[int, int]:
        """(events, telemetry points) waiting for the next flush."""
        return len(self._events), len(self._points)

    def due(self, monotonic_now: float) -> bool:
        """Something is waiting and either the batch is full or `flush_s` passed since the last flush."""
        if not self._events and not self._points:
            return False
        if self.full() or self._last_flush is None:
            return True
        return monotonic_now - self._last_flush >= self.params.flush_s

    def _keep(self, measurement: str, subject: str, ts: datetime, interval_s: float) -> bool:
        """Downsampling: one point per (measurement, subject) per `interval_s` of device time."""
        key = (measurement, subject)
        last = self._last_point.get(key)
        # a device clock that jumps back (reset) starts over rather than going silent
        if last is not None and 0 <= (ts - last).total_seconds() < interval_s:
            self.stats.downsampled += 1
            return False
        self._last_point[key] = ts
        return True

    def _append(self, point: TelemetryPoint) -> None:
        if len(self._points) >= self.params.max_pending_telemetry:
            self.stats.shed += 1
            self._shed_since_body += 1
            return
        self._points.append(point)
        self.stats.points += 1
        self.stats.by_measurement[point.m] = self.stats.by_measurement.get(point.m, 0) + 1

    def grid_at(self, x: float, y: float) -> str | None:
        for (grid_id, ring, x0, x1, y0, y1), rect in zip(self._grid_boxes, self._grid_rects, strict=True):
            if rect is not None:
                if rect[0] <= x < rect[1] and rect[2] <= y < rect[3]:
                    return grid_id
                continue
            # outside the ring's box no edge can be crossed an odd number of times: skip the ray casting
            if y0 <= y < y1 and x0 <= x <= x1 and _in_ring(x, y, ring):
                return grid_id
        return None

    def _add_positions(self, reading: PositionsReading) -> None:
        # `_keep` and `_append` inlined (same checks, same counters): this runs once per tag position
        interval = self.params.position_interval_s
        max_pending = self.params.max_pending_telemetry
        last_point, points, stats = self._last_point, self._points, self.stats
        person_by_tag, site_id, grid_at = self._person_by_tag, self._site_id, self.grid_at
        kept = 0
        for pos in reading.positions:
            tag, ts = pos.tag, pos.ts
            key = ("position", tag)
            last = last_point.get(key)
            # a device clock that jumps back (reset) starts over rather than going silent
            if last is not None and 0 <= (ts - last).total_seconds() < interval:
                stats.downsampled += 1
                continue
            last_point[key] = ts
            if len(points) >= max_pending:
                stats.shed += 1
                self._shed_since_body += 1
                continue
            tags = {"site": site_id, "tag": tag}
            person = person_by_tag.get(tag)
            if person is not None:
                tags["person"] = person
            grid = grid_at(pos.x, pos.y)
            if grid is not None:
                tags["grid"] = grid
            fields: dict[str, float | int | bool | str] = {"x": pos.x, "y": pos.y, "z": pos.z}
            if pos.q is not None:
                fields["q"] = pos.q
            points.append(_make_point("position", tags, fields, ts))
            kept += 1
        if kept:
            stats.points += kept
            stats.by_measurement["position"] = stats.by_measurement.get("position", 0) + kept

    def _add_vitals(self, reading: VitalsReading) -> None:
        tags = {"site": self._site_id, "band": reading.band}
        person = self._person_by_band.get(reading.band)
        if person is not None:
            tags["person"] = person
        fields: dict[str, float | int | bool | str] = {
            name: value
            for name, value in (("hr", reading.hr), ("temp", reading.temp), ("bat", reading.bat))
            if value is not None
        }
        if fields and self._keep("vitals", reading.band, reading.ts, self.params.vitals_interval_s):
            self._append(TelemetryPoint(m="vitals", tags=dict(tags), fields=fields, ts=reading.ts))
        if reading.gps is not None and self._keep("gps", reading.band, reading.ts, self.params.gps_interval_s):
            gps: dict[str, float | int | bool | str] = {
                "lat": reading.gps.lat,
                "lon": reading.gps.lon,
                "acc_m": reading.gps.acc_m,
            }
            self._append(TelemetryPoint(m="gps", tags=dict(tags), fields=gps, ts=reading.ts))

    # -- output ------------------------------------------------------------------------------
    def flush_events(self) -> list[tuple[BodyKind, bytes]]:
        """Only the pending events as bodies (telemetry keeps batching): the edge stores device
        events before it acknowledges their messages to the device broker."""
        out: list[tuple[BodyKind, bytes]] = []
        step = self.params.max_items
        for start in range(0, len(self._events), step):
            body = EventsBody(event_id=new_event_id(), batch=tuple(self._events[start : start + step]))
            out.append(("events", body.model_dump_json().encode()))
        self._events.clear()
        self.stats.bodies += len(out)
        return out

    def flush(self, monotonic_now: float) -> list[tuple[BodyKind, bytes]]:
        """Everything pending as (kind, JSON body) pairs, at most `max_items` per body."""
        self._last_flush = monotonic_now
        out: list[tuple[BodyKind, bytes]] = []
        step = self.params.max_items
        for start in range(0, len(self._events), step):
            body = EventsBody(event_id=new_event_id(), batch=tuple(self._events[start : start + step]))
            out.append(("events", body.model_dump_json().encode()))
        for start in range(0, len(self._points), step):
            tbody = TelemetryBody(
                event_id=new_event_id(),
                batch=tuple(self._points[start : start + step]),
                dropped=self._shed_since_body,
            )
            self._shed_since_body = 0
            out.append(("telemetry", tbody.model_dump_json().encode()))
        self._events.clear()
        self._points.clear()
        self.stats.bodies += len(out)
        return out
