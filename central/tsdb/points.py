"""Time-series points (contract §4 measurements), line protocol, and the bounded queued writer both stores share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import chain
from typing import Generic, NamedTuple, TypeVar, overload

from gridwatch.contract import AlertTransition, Condition, DevicesBody, TelemetryBody, TelemetryPoint

from .lineproto import LineFormatter, ts_ns

__all__ = [
    "SUBJECT_TAGS",
    "Batch",
    "QueuedWriter",
    "TelemetryPoints",
    "TsPoint",
    "batch_points",
    "point_from_alert",
    "points_from_devices",
    "points_from_telemetry",
    "to_line",
    "ts_ns",
]

log = logging.getLogger(__name__)

FieldValue = float | int | bool | str

# tags whose value names a subject: `query(subject=…)` matches any of them
SUBJECT_TAGS = ("tag", "person", "band", "device", "alert_id")

QUEUE_MAX = 100_000
BATCH_MAX = 5_000
RETRY_START_S = 0.5
RETRY_MAX_S = 10.0
PayloadT = TypeVar("PayloadT")


class TsPoint(NamedTuple):
    """One point of a measurement. A NamedTuple, not a frozen dataclass: telemetry makes hundreds of
    thousands a second, and a frozen dataclass's `__init__` (one `object.__setattr__` per field) cost
    more than formatting the point's line."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    ts: datetime


class TelemetryPoints(Sequence[TsPoint]):
    """The points of one telemetry body with tag `site` added, each `TsPoint` made only when asked for.

    Telemetry is almost all of central's time-series volume. The stores take this sequence as it
    is: `InfluxStore` formats lines straight from the body's entries (`LineFormatter.telemetry_lines`),
    so the hot path makes no `TsPoint` and no merged tags dict per point (together about as much
    CPU as formatting the line). Immutable, like the frozen body it reads: a slice is another view.
    """

    __slots__ = ("entries", "site")

    def __init__(self, site: str, entries: Sequence[TelemetryPoint]) -> None:
        self.site = site
        self.entries = tuple(entries)  # the body's own tuple: no copy

    def __len__(self) -> int:
        return len(self.entries)

    @overload
    def __getitem__(self, index: int) -> TsPoint: ...

    @overload
    def __getitem__(self, index: slice) -> TelemetryPoints: ...

    def __getitem__(self, index: int | slice) -> TsPoint | TelemetryPoints:
        if isinstance(index, slice):
            return TelemetryPoints(self.site, self.entries[index])
        return self._point(self.entries[index])

    def __iter__(self) -> Iterator[TsPoint]:
        return map(self._point, self.entries)

    def _point(self, p: TelemetryPoint) -> TsPoint:
        return TsPoint(p.m, {**p.tags, "site": self.site}, p.fields, p.ts)

    def __repr__(self) -> str:
        return f"TelemetryPoints(site={self.site!r}, {len(self.entries)} points)"


# -- from uplink bodies -------------------------------------------------------------------
def points_from_telemetry(site: str, body: TelemetryBody) -> TelemetryPoints:
    """One point per telemetry entry; `site` is added to the tags.

    A view of the body, not a list: see `TelemetryPoints`. A point's fields dict is the (frozen)
    body's own, not a copy: neither store changes a point's dicts.
    """
    return TelemetryPoints(site, body.batch)


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
_FORMATTER = LineFormatter()


def to_line(p: TsPoint) -> str | None:
    """One line of InfluxDB line protocol (ns precision), or None if the point has no valid field."""
    return _FORMATTER.line(p)


# -- the bounded queue and its background writer -----------------------------------------------
Batch = list[Sequence[TsPoint]]
"""Up to `batch_max` points as the runs they were written in (a `TelemetryPoints` stays one)."""


def batch_points(batch: Batch) -> Iterator[TsPoint]:
    """Every point of a batch, in order."""
    return chain.from_iterable(batch)


def _count(batch: Batch) -> int:
    return sum(map(len, batch))


class QueuedWriter(ABC, Generic[PayloadT]):
    """`write()` only enqueues (bounded; overflow is dropped and counted); a task writes batches.

    The queue holds the sequences `write()` was given, not single points: a telemetry body's
    `TelemetryPoints` goes in and out as one object (split only at a batch boundary), so a store
    can format it straight from the body; a list is copied, so a caller may reuse its own.

    A batch is written in two steps, each in a worker thread: `_prepare` turns points into what the
    server takes (CPU only: line protocol, row tuples) and `_send` hands it over (I/O). Batch k+1 is
    prepared while batch k is being sent, so our formatting overlaps the server's own work instead
    of alternating with it (on two cores that is most of the difference to the raw client).

    A failed batch, and the one prepared behind it, go back to the head of the queue in order and
    are retried with backoff, so a down server neither blocks nor crashes the caller: points wait
    until the queue is full, then new ones are shed. A point `_prepare` cannot encode is dropped and
    counted (it would fail every retry and hold up every point behind it). Memory stays bounded:
    at most `queue_max` points queued plus the two batches in flight.
    """

    def __init__(self, *, queue_max: int = QUEUE_MAX, batch_max: int = BATCH_MAX) -> None:
        self.queue_max = queue_max
        self.batch_max = batch_max
        self._queue: deque[Sequence[TsPoint]] = deque()
        self._queued = 0  # points in `_queue`
        self._written = 0
        self._dropped = 0
        self._errors = 0
        self.last_error: str | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False

    @abstractmethod
    def _prepare(self, batch: Batch) -> tuple[PayloadT, list[TsPoint] | None]:
        """(What `_send` writes, None, or the points kept if some could not be encoded and were left out).

        Runs in a worker thread.
        """

    @abstractmethod
    def _send(self, payload: PayloadT) -> None:
        """Write one prepared batch durably or raise; in a worker thread."""

    @property
    def stats(self) -> dict[str, int]:
        return {"written": self._written, "dropped": self._dropped, "errors": self._errors, "queued": self._queued}

    async def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name=f"{type(self).__name__}-writer")

    async def write(self, points: Sequence[TsPoint]) -> None:
        room = self.queue_max - self._queued
        if room < len(points):
            shed = len(points) - max(room, 0)
            self._dropped += shed
            log.warning("time-series queue full (%d points): dropped %d points", self.queue_max, shed)
            points = points[: max(room, 0)]
        if not points:
            return
        run = points if type(points) is TelemetryPoints else list(points)
        self._queue.append(run)
        self._queued += len(run)
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
            if await self._drain():
                delay = RETRY_START_S
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _take(self) -> Batch:
        """Up to `batch_max` points from the head of the queue; a run that does not fit is split."""
        batch: Batch = []
        room = self.batch_max
        while self._queue and room > 0:
            run = self._queue.popleft()
            if len(run) > room:
                self._queue.appendleft(run[room:])
                run = run[:room]
            batch.append(run)
            room -= len(run)
        self._queued -= self.batch_max - room
        return batch

    def _put_back(self, batch: Batch) -> None:
        """A taken batch back to the head of the queue, in its order."""
        self._queue.extendleft(reversed(batch))
        self._queued += _count(batch)

    async def _prepared(self, batch: Batch) -> PayloadT:
        """`_prepare` in a thread; points it rejects leave `batch` (so a retry does not count them twice)."""
        payload, kept = await asyncio.to_thread(self._prepare, batch)
        if kept is not None:
            rejected = _count(batch) - len(kept)
            batch[:] = [kept] if kept else []
            self._dropped += rejected
            log.error("time-series writer dropped %d points it cannot encode (see the error above)", rejected)
        return payload

    async def _drain(self) -> bool:
        """Write batches until the queue is empty; False after a failure (unwritten batches are back in the queue)."""
        taken: deque[Batch] = deque()  # out of the queue, oldest first, not yet written
        self._busy = True
        try:
            taken.append(self._take())
            payload = await self._prepared(taken[0])
            while True:
                if not self._queue:
                    await asyncio.to_thread(self._send, payload)
                    self._written += _count(taken.popleft())
                    return True
                taken.append(self._take())
                sent, following = await asyncio.gather(
                    asyncio.to_thread(self._send, payload), self._prepared(taken[1]), return_exceptions=True
                )
                if isinstance(sent, BaseException):
                    raise sent
                self._written += _count(taken.popleft())
                if isinstance(following, BaseException):
                    raise following
                payload = following
        except Exception as exc:
            self._errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            unwritten = sum(map(_count, taken))
            log.warning("time-series write of %d points failed (%s); will retry", unwritten, self.last_error)
            return False
        finally:
            while taken:  # on failure or cancellation: back to the head, in their order
                self._put_back(taken.pop())
            self._busy = False

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued point is written; False if that did not happen within `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._queue or self._busy:
            if loop.time() >= deadline:
                return False
            if self._task is None:  # never started: write inline
                if not await self._drain():
                    await asyncio.sleep(RETRY_START_S)
            else:
                await asyncio.sleep(0.02)
        return True

    async def _stop_writer(self, timeout: float) -> None:
        flushed = await self.flush(timeout)
        if not flushed:
            log.warning("time-series store closed with %d points unwritten", self._queued)
            self._dropped += self._queued
            self._queue.clear()
            self._queued = 0
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
