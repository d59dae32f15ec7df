"""Batch device events and telemetry into uplink bodies (contract §3 `events`, `telemetry`).

Events (door opens, card reads, beam alarms and restores, band and camera events, status
changes) are never thinned. Telemetry is downsampled before it reaches the outbox: positions
at most one point per tag per second, vitals and GPS one point per band per 10 s (by device
time). A batch is flushed every `flush_s` seconds or as soon as it holds `max_items` items.

RTLS positions stay columns from the reading to the body: downsampling compares a batch's times
with a per-tag array at once, the grid of every position is one array test per rectangle grid,
and their JSON is written from the columns when a body is made (`_PositionRun`), byte for byte
what TelemetryBody's own serialiser writes for the same points (tests/edge/test_batching_columns.py).
Building a TelemetryPoint per position, then serialising it, cost about 5 µs a position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pydantic_core
from numpy.typing import NDArray

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
    TelemetryPoint,
    VitalsReading,
    WristbandEventReading,
    new_event_id,
)
from gridwatch.contract.readings import PositionColumns, columns_of

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


def _json(value: object) -> str:
    """`value` as pydantic writes it inside a body (strings escaped, floats and times formatted)."""
    return pydantic_core.to_json(value).decode()


def _uniform_text(values: NDArray[np.float64]) -> str | None:
    """The text of every float of a column that holds one value (z, q mostly), else None."""
    first = values[0]
    if (values == first).all() and (np.signbit(values) == np.signbit(first)).all():
        return _json(float(first))
    return None


def _float_texts(values: NDArray[np.float64]) -> list[str]:
    """Each float as pydantic writes it: one serialiser call for the whole column, split at the
    commas (no float's text holds one); a column of one value is formatted once."""
    if not len(values):
        return []
    same = _uniform_text(values)
    if same is not None:
        return [same] * len(values)
    return pydantic_core.to_json(values.tolist()).decode()[1:-1].split(",")


def _interleave(columns: list[str | list[str]], n: int) -> str:
    """Point i's text is the i-th item of every column (a str: the same for every point), in
    order; the points' texts follow each other. Adjacent constant columns are joined first."""
    merged: list[str | list[str]] = []
    for column in columns:
        if isinstance(column, str) and merged and isinstance(merged[-1], str):
            merged[-1] += column
        else:
            merged.append(column)
    k = len(merged)
    parts: list[str] = [""] * (k * n)
    for j, column in enumerate(merged):
        parts[j::k] = [column] * n if isinstance(column, str) else column
    return "".join(parts)


@dataclass(slots=True)
class _PositionRun:
    """Position points waiting for a body, as columns: one per kept position of a reading.

    `slot` is each point's tag slot in the batcher, `grid` the index of its grid (len(grids): none),
    `q` NaN where the point has no `q` field.
    """

    slot: list[int]
    grid: list[int]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    z: NDArray[np.float64]
    q: NDArray[np.float64]
    ts: list[datetime]

    def __len__(self) -> int:
        return len(self.slot)


def _telemetry_body(event_id: str, points: list[str], dropped: int) -> bytes:
    """What `TelemetryBody(event_id=..., batch=..., dropped=...).model_dump_json()` writes, from
    the points' JSON (the event id is a UUID: nothing to escape)."""
    return f'{{"event_id":"{event_id}","batch":[{",".join(points)}],"dropped":{dropped}}}'.encode()


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
        self._points: list[TelemetryPoint | _PositionRun] = []  # in arrival order
        self._n_points = 0
        self._last_point: dict[tuple[str, str], datetime] = {}  # vitals and gps
        # positions: per tag slot, the time (epoch µs) of its last point, whether it has one, and the
        # JSON head of its points' tags
        self._tag_slot: dict[str, int] = {}
        self._last_us = np.zeros(256, dtype=np.int64)
        self._has_last = np.zeros(256, dtype=bool)
        self._tags_of_slot: list[dict[str, str]] = []
        self._heads: list[str] = []
        # grids in config order: rectangle bounds as arrays (NaN bounds for other rings, tested apart)
        rects = [r if r is not None else (np.nan,) * 4 for r in self._grid_rects]
        self._rect_bounds = np.array(rects, dtype=np.float64).reshape(len(rects), 4).T
        # a point's JSON from its grid (by index; the last: none) to its first field's value
        grid_json = [f',"grid":{_json(grid_id)}}}' for grid_id, _ring in self._grids] + ["}"]
        self._grid_json = [text + ',"fields":{"x":' for text in grid_json]
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
        return len(self._events) >= self.params.max_items or self._n_points >= self.params.max_items

    def pending(self) -> tuple[int, int]:
        """(events, telemetry points) waiting for the next flush."""
        return len(self._events), self._n_points

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
        if self._n_points >= self.params.max_pending_telemetry:
            self.stats.shed += 1
            self._shed_since_body += 1
            return
        self._points.append(point)
        self._n_points += 1
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

    def _slots(self, tags: list[str]) -> list[int]:
        """The tags' slots, making one (and its JSON head) for a tag seen for the first time."""
        slot = self._tag_slot
        slots = [slot.get(tag, -1) for tag in tags]
        if -1 not in slots:
            return slots
        for tag in tags:
            if tag in slot:
                continue
            slot[tag] = len(self._heads)
            point_tags = {"site": self._site_id, "tag": tag}
            person = self._person_by_tag.get(tag)
            if person is not None:
                point_tags["person"] = person
            self._tags_of_slot.append(point_tags)
            # the point's JSON up to its tags' last member: `_run_json` adds the grid and the fields
            self._heads.append('{"m":"position","tags":' + _json(point_tags)[:-1])
        if len(self._heads) > len(self._last_us):
            size = 2 * len(self._heads)
            self._last_us = np.concatenate([self._last_us, np.zeros(size - len(self._last_us), np.int64)])
            self._has_last = np.concatenate([self._has_last, np.zeros(size - len(self._has_last), bool)])
        return [slot[tag] for tag in tags]

    def _grids_of(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.int64]:
        """Per position, the index of the first grid (config order) holding it, len(grids) for none:
        `grid_at` over whole arrays (rectangles as one bounds test, other rings by ray casting)."""
        n_grids = len(self._grids)
        if not n_grids or not len(x):
            return np.full(len(x), n_grids, dtype=np.int64)
        x0, x1, y0, y1 = (b[None, :] for b in self._rect_bounds)
        xc, yc = x[:, None], y[:, None]
        inside = (x0 <= xc) & (xc < x1) & (y0 <= yc) & (yc < y1)  # NaN bounds (not a rectangle): False
        for g, rect in enumerate(self._grid_rects):
            if rect is None:
                _gid, ring, bx0, bx1, by0, by1 = self._grid_boxes[g]
                near = np.flatnonzero((by0 <= y) & (y < by1) & (bx0 <= x) & (x <= bx1))
                for i in near.tolist():
                    inside[i, g] = _in_ring(float(x[i]), float(y[i]), ring)
        first = inside.argmax(axis=1)
        return np.where(inside[np.arange(len(x)), first], first, n_grids)

    def _add_positions(self, reading: PositionsReading) -> None:
        columns = columns_of(reading.positions)
        n = len(columns)
        if not n:
            return
        slots = self._slots(columns.tag)
        if len(set(slots)) != n:
            self._add_positions_each(columns, slots)  # a tag twice in one batch: in order, one by one
            return
        idx = np.array(slots, dtype=np.int64)
        # downsampling: `_keep` for every position at once (each tag is once in the batch)
        delta = columns.ts_us - self._last_us[idx]
        # a device clock that jumps back (reset) starts over rather than going silent
        dropped = self._has_last[idx] & (delta >= 0) & (delta / 1e6 < self.params.position_interval_s)
        room = max(self.params.max_pending_telemetry - self._n_points, 0)
        if not dropped.any() and n <= room:  # every position kept (the usual batch): no selection
            self._last_us[idx] = columns.ts_us
            self._has_last[idx] = True
            self._append_run(columns, slots, None)
            return
        kept = np.flatnonzero(~dropped)
        self.stats.downsampled += n - len(kept)
        if not len(kept):
            return
        self._last_us[idx[kept]] = columns.ts_us[kept]
        self._has_last[idx[kept]] = True
        if len(kept) > room:  # the outbox stalled: shed what does not fit, and count it
            shed = len(kept) - room
            self.stats.shed += shed
            self._shed_since_body += shed
            kept = kept[:room]
            if not len(kept):
                return
        self._append_run(columns, [slots[i] for i in kept.tolist()], kept)

    def _append_run(self, columns: PositionColumns, slots: list[int], kept: NDArray[np.int64] | None) -> None:
        """A run of the positions at `kept` (all when None), whose tag slots are `slots`."""
        if kept is None:
            x, y, z, q, ts = columns.x, columns.y, columns.z, columns.q, columns.ts
        else:
            x, y, z, q = columns.x[kept], columns.y[kept], columns.z[kept], columns.q[kept]
            ts = [columns.ts[i] for i in kept.tolist()]
        run = _PositionRun(
            slot=slots,
            grid=self._grids_of(x, y).tolist(),
            x=x,
            y=y,
            z=z,
            q=q,
            ts=ts,
        )
        self._points.append(run)
        self._n_points += len(run)
        self.stats.points += len(run)
        self.stats.by_measurement["position"] = self.stats.by_measurement.get("position", 0) + len(run)

    def _add_positions_each(self, columns: PositionColumns, slots: list[int]) -> None:
        """`_add_positions` position by position: `_keep` and `_append` for each, in order."""
        interval = self.params.position_interval_s
        last_us, has_last = self._last_us, self._has_last
        for i, (slot, us) in enumerate(zip(slots, columns.ts_us.tolist(), strict=True)):
            # a device clock that jumps back (reset) starts over rather than going silent
            if has_last[slot] and 0 <= (us - int(last_us[slot])) / 1e6 < interval:
                self.stats.downsampled += 1
                continue
            last_us[slot], has_last[slot] = us, True
            if self._n_points >= self.params.max_pending_telemetry:
                self.stats.shed += 1
                self._shed_since_body += 1
                continue
            self._append_run(columns, [slot], np.array([i], dtype=np.int64))

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
        for points in self._telemetry_chunks(step):
            out.append(("telemetry", _telemetry_body(new_event_id(), points, self._shed_since_body)))
            self._shed_since_body = 0
        self._events.clear()
        self._points.clear()
        self._n_points = 0
        self.stats.bodies += len(out)
        return out

    def _telemetry_chunks(self, step: int) -> list[list[str]]:
        """The pending points' JSON, `step` points per body at most: each list one body's points (a
        TelemetryPoint's JSON, or a run's points joined by commas)."""
        bodies: list[list[str]] = []
        current: list[str] = []
        room = step
        for item in self._points:
            if isinstance(item, TelemetryPoint):
                current.append(item.model_dump_json())
                room -= 1
            else:
                start = 0
                while start < len(item):
                    stop = min(len(item), start + room)
                    current.append(self._run_json(item, start, stop))
                    room -= stop - start
                    start = stop
                    if not room:
                        bodies.append(current)
                        current, room = [], step
                continue
            if not room:
                bodies.append(current)
                current, room = [], step
        if current:
            bodies.append(current)
        return bodies

    def _run_json(self, run: _PositionRun, start: int, stop: int) -> str:
        """Points [start, stop) of a run as JSON objects separated by commas, as TelemetryBody
        writes the TelemetryPoints `_run_points` makes of them."""
        n = stop - start
        z_col, q_col = run.z[start:stop], run.q[start:stop]
        z: str | list[str] = _uniform_text(z_col) or _float_texts(z_col)
        has_q = ~np.isnan(q_col)
        q: str | list[str]
        if has_q.all():
            same = _uniform_text(q_col)
            q = ',"q":' + same if same is not None else [',"q":' + text for text in _float_texts(q_col)]
        elif not has_q.any():
            q = ""
        else:
            texts = iter(_float_texts(q_col[has_q]))
            q = [',"q":' + next(texts) if present else "" for present in has_q.tolist()]
        run_ts = run.ts[start:stop]
        ts: str | list[str]
        if run_ts.count(run_ts[0]) == n:  # a reading's positions mostly share its time
            ts = _json(run_ts[0])
        else:
            times: dict[datetime, str] = {}
            ts = [times.get(t) or times.setdefault(t, _json(t)) for t in run_ts]
        heads = [self._heads[s] for s in run.slot[start:stop]]
        grids = [self._grid_json[g] for g in run.grid[start:stop]]
        x, y = _float_texts(run.x[start:stop]), _float_texts(run.y[start:stop])
        return _interleave([heads, grids, x, ',"y":', y, ',"z":', z, q, '},"ts":', ts, "},"], n)[:-1]

    def _run_points(self, run: _PositionRun) -> list[TelemetryPoint]:
        """The run's points as validated TelemetryPoints: what `_run_json` must write (the checked way)."""
        points = []
        rows = zip(
            run.slot, run.grid, run.x.tolist(), run.y.tolist(), run.z.tolist(), run.q.tolist(), run.ts, strict=True
        )
        for slot, grid, x, y, z, q, ts in rows:
            tags = dict(self._tags_of_slot[slot])
            if grid < len(self._grids):
                tags["grid"] = self._grids[grid][0]
            fields: dict[str, float | int | bool | str] = {"x": x, "y": y, "z": z}
            if q == q:  # NaN: no q
                fields["q"] = q
            points.append(TelemetryPoint(m="position", tags=tags, fields=fields, ts=ts))
        return points

    def telemetry_checked(self) -> list[TelemetryPoint]:
        """Every pending telemetry point as a TelemetryPoint, in order (tests hold `flush` to this)."""
        out: list[TelemetryPoint] = []
        for item in self._points:
            out.extend([item] if isinstance(item, TelemetryPoint) else self._run_points(item))
        return out
