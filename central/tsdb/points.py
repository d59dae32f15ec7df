"""Time-series points (contract §4 measurements), line protocol, and the bounded queued writer both stores share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import Generic, NamedTuple, TypeVar

from gridwatch.contract import AlertTransition, Condition, DevicesBody, TelemetryBody

from .lineproto import LineFormatter, ts_ns

__all__ = [
    "SUBJECT_TAGS",
    "QueuedWriter",
    "TsPoint",
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


# -- from uplink bodies -------------------------------------------------------------------
def points_from_telemetry(site: str, body: TelemetryBody) -> list[TsPoint]:
    """One point per telemetry entry; `site` is added to the tags.

    The fields dict is the (frozen) body's own, not a copy: neither store changes a point's dicts.
    """
    return [TsPoint(p.m, {**p.tags, "site": site}, p.fields, p.ts) for p in body.batch]


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
class QueuedWriter(ABC, Generic[PayloadT]):
    """`write()` only enqueues (bounded; overflow is dropped and counted); a task writes batches.

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
        self._queue: deque[TsPoint] = deque()
        self._written = 0
        self._dropped = 0
        self._errors = 0
        self.last_error: str | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False

    @abstractmethod
    def _prepare(self, batch: list[TsPoint]) -> tuple[PayloadT, list[TsPoint]]:
        """(What `_send` writes, the points that cannot be encoded and were left out); runs in a worker thread."""

    @abstractmethod
    def _send(self, payload: PayloadT) -> None:
        """Write one prepared batch durably or raise; in a worker thread."""

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
            if await self._drain():
                delay = RETRY_START_S
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _take(self) -> list[TsPoint]:
        n = min(self.batch_max, len(self._queue))
        return [self._queue.popleft() for _ in range(n)]

    async def _prepared(self, batch: list[TsPoint]) -> PayloadT:
        """`_prepare` in a thread; points it rejects leave `batch` (so a retry does not count them twice)."""
        payload, rejected = await asyncio.to_thread(self._prepare, batch)
        if rejected:
            gone = {id(p) for p in rejected}
            batch[:] = [p for p in batch if id(p) not in gone]
            self._dropped += len(rejected)
            log.error("time-series writer dropped %d points it cannot encode (see the error above)", len(rejected))
        return payload

    async def _drain(self) -> bool:
        """Write batches until the queue is empty; False after a failure (unwritten batches are back in the queue)."""
        taken: deque[list[TsPoint]] = deque()  # out of the queue, oldest first, not yet written
        self._busy = True
        try:
            taken.append(self._take())
            payload = await self._prepared(taken[0])
            while True:
                if not self._queue:
                    await asyncio.to_thread(self._send, payload)
                    self._written += len(taken.popleft())
                    return True
                taken.append(self._take())
                sent, following = await asyncio.gather(
                    asyncio.to_thread(self._send, payload), self._prepared(taken[1]), return_exceptions=True
                )
                if isinstance(sent, BaseException):
                    raise sent
                self._written += len(taken.popleft())
                if isinstance(following, BaseException):
                    raise following
                payload = following
        except Exception as exc:
            self._errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            unwritten = sum(len(b) for b in taken)
            log.warning("time-series write of %d points failed (%s); will retry", unwritten, self.last_error)
            return False
        finally:
            while taken:  # on failure or cancellation: back to the head, in their order
                self._queue.extendleft(reversed(taken.pop()))
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
            log.warning("time-series store closed with %d points unwritten", len(self._queue))
            self._dropped += len(self._queue)
            self._queue.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
