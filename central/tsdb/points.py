"""Time-series points (contract §4 measurements), line protocol, and the bounded queued writer both stores share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gridwatch.contract import AlertTransition, Condition, DevicesBody, TelemetryBody

__all__ = [
    "SUBJECT_TAGS",
    "QueuedWriter",
    "TsPoint",
    "point_from_alert",
    "points_from_devices",
    "points_from_telemetry",
    "to_line",
]

log = logging.getLogger(__name__)

FieldValue = float | int | bool | str

# tags whose value names a subject: `query(subject=…)` matches any of them
SUBJECT_TAGS = ("tag", "person", "band", "device", "alert_id")

QUEUE_MAX = 100_000
BATCH_MAX = 5_000
RETRY_START_S = 0.5
RETRY_MAX_S = 10.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TsPoint:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    ts: datetime


# -- from uplink bodies -------------------------------------------------------------------
def points_from_telemetry(site: str, body: TelemetryBody) -> list[TsPoint]:
    """One point per telemetry entry; `site` is added to the tags."""
    return [TsPoint(p.m, {**p.tags, "site": site}, dict(p.fields), p.ts) for p in body.batch]


def point_from_alert(t: AlertTransition) -> TsPoint:
    """`alert` measurement: tags site, rule, level, zone; fields state, alert_id.

    Additions to the contract: tag `alert_id` (so a store without string fields, such as
    VictoriaMetrics, can still find an alert by id) and field `active` (1/0, numeric state).
    """
    tags = {"site": t.site, "rule": t.rule, "level": str(t.level), "alert_id": t.alert_id}
    if t.zone:
        tags["zone"] = t.zone
    fields: dict[str, FieldValue] = {
        "state": str(t.state),
        "alert_id": t.alert_id,
        "active": 1 if t.state == Condition.ACTIVE else 0,
    }
    return TsPoint("alert", tags, fields, t.ts)


def points_from_devices(site: str, body: DevicesBody) -> list[TsPoint]:
    """`device` measurement: tags site, device, family; fields online, battery (when known), dead_letters."""
    out = []
    for d in body.devices:
        fields: dict[str, FieldValue] = {"online": d.online, "dead_letters": d.dead_letters}
        if d.battery is not None:
            fields["battery"] = float(d.battery)
        out.append(TsPoint("device", {"site": site, "device": d.id, "family": str(d.family)}, fields, body.ts))
    return out


# -- line protocol ------------------------------------------------------------------------
def _escape_key(text: str) -> str:
    """Measurement names, tag keys/values and field keys: escape backslash, comma, equals, space."""
    return (
        text.replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace("=", "\\=")
        .replace(" ", "\\ ")
        .replace("\n", "\\ ")  # line protocol has no escape for a newline: make it a space
    )


def _field_value(value: FieldValue) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None  # NaN/inf are not valid line protocol
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def ts_ns(ts: datetime) -> int:
    """Exact integer nanoseconds since the epoch (no float rounding)."""
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    return ((aware - _EPOCH) // timedelta(microseconds=1)) * 1000


def to_line(p: TsPoint) -> str | None:
    """One line of InfluxDB line protocol (ns precision), or None if the point has no valid field."""
    fields = []
    for key, value in p.fields.items():
        text = _field_value(value)
        if text is not None:
            fields.append(f"{_escape_key(key)}={text}")
    if not fields:
        return None
    tags = "".join(f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(p.tags.items()) if v)
    measurement = p.measurement.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")
    return f"{measurement}{tags} {','.join(fields)} {ts_ns(p.ts)}"


# -- the bounded queue and its background writer -----------------------------------------------
class QueuedWriter(ABC):
    """`write()` only enqueues (bounded; overflow is dropped and counted); a task writes batches.

    A failed batch stays at the head of the queue and is retried with backoff, so a down server
    neither blocks nor crashes the caller: points wait until the queue is full, then new ones are shed.
    Subclasses implement `_write_batch`.
    """

    def __init__(self, *, queue_max: int = QUEUE_MAX, batch_max: int = BATCH_MAX) -> None:
        self.queue_max = queue_max
        self.batch_max = batch_max
        self._queue: deque[TsPoint] = deque()
        self._written = 0
        self._dropped = 0
        self._errors = 0
        self.last_error: str | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False

    @abstractmethod
    async def _write_batch(self, batch: list[TsPoint]) -> None:
        """Write one batch durably or raise."""

    @property
    def stats(self) -> dict[str, int]:
        return {"written": self._written, "dropped": self._dropped, "errors": self._errors, "queued": len(self._queue)}

    async def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name=f"{type(self).__name__}-writer")

    async def write(self, points: Sequence[TsPoint]) -> None:
        room = self.queue_max - len(self._queue)
        if room < len(points):
            shed = len(points) - max(room, 0)
            self._dropped += shed
            log.warning("time-series queue full (%d points): dropped %d points", self.queue_max, shed)
            points = points[: max(room, 0)]
        self._queue.extend(points)
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        delay = RETRY_START_S
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if await self._flush_one():
                delay = RETRY_START_S
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _flush_one(self) -> bool:
        """Write the head batch; on failure (or cancellation) put it back at the head. True on success."""
        n = min(self.batch_max, len(self._queue))
        batch = [self._queue.popleft() for _ in range(n)]
        self._busy = True
        done = False
        try:
            await self._write_batch(batch)
            done = True
        except Exception as exc:
            self._errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("time-series write of %d points failed (%s); will retry", n, self.last_error)
        finally:
            self._busy = False
            if not done:
                self._queue.extendleft(reversed(batch))
        if done:
            self._written += n
        return done

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued point is written; False if that did not happen within `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._queue or self._busy:
            if loop.time() >= deadline:
                return False
            if self._task is None:  # never started: write inline
                if not await self._flush_one():
                    await asyncio.sleep(RETRY_START_S)
            else:
                await asyncio.sleep(0.02)
        return True

    async def _stop_writer(self, timeout: float) -> None:
        flushed = await self.flush(timeout)
        if not flushed:
            log.warning("time-series store closed with %d points unwritten", len(self._queue))
            self._dropped += len(self._queue)
            self._queue.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
