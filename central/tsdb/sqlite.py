"""The embedded time-series store: one SQLite table, subject columns indexed, pruned by age."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .points import SUBJECT_TAGS, Batch, QueuedWriter, TsPoint, batch_points, ts_ns

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    ts INTEGER NOT NULL,                 -- nanoseconds since the epoch
    tags TEXT NOT NULL,                  -- JSON object
    fields TEXT NOT NULL,                -- JSON object
    s_tag TEXT, s_person TEXT, s_band TEXT, s_device TEXT, s_alert_id TEXT
);
CREATE INDEX IF NOT EXISTS points_m_ts ON points (measurement, ts);
CREATE INDEX IF NOT EXISTS points_tag ON points (s_tag, ts) WHERE s_tag IS NOT NULL;
CREATE INDEX IF NOT EXISTS points_person ON points (s_person, ts) WHERE s_person IS NOT NULL;
CREATE INDEX IF NOT EXISTS points_band ON points (s_band, ts) WHERE s_band IS NOT NULL;
CREATE INDEX IF NOT EXISTS points_device ON points (s_device, ts) WHERE s_device IS NOT NULL;
CREATE INDEX IF NOT EXISTS points_alert_id ON points (s_alert_id, ts) WHERE s_alert_id IS NOT NULL;
"""
_SUBJECT_COLUMNS = tuple(f"s_{tag}" for tag in SUBJECT_TAGS)


def _subjects(p: TsPoint) -> list[str | None]:
    """Subject column values; `alert_id` may be a tag or (contract §4) a field."""
    out: list[str | None] = []
    for tag in SUBJECT_TAGS:
        value = p.tags.get(tag)
        if value is None and tag == "alert_id" and isinstance(p.fields.get("alert_id"), str):
            value = str(p.fields["alert_id"])
        out.append(value)
    return out


def _row(p: TsPoint) -> tuple[Any, ...]:
    return (p.measurement, ts_ns(p.ts), json.dumps(p.tags), json.dumps(p.fields), *_subjects(p))


class SqliteStore(QueuedWriter[list[tuple[Any, ...]]]):
    """Points in one SQLite file; rows older than `retention_s` are pruned as new ones arrive."""

    def __init__(self, path: Path, *, retention_s: float = 30 * 86400) -> None:
        super().__init__()
        self.path = Path(path)
        self.retention_s = retention_s
        self._lock = threading.Lock()
        self._last_prune = 0.0
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def _prepare(self, batch: Batch) -> tuple[list[tuple[Any, ...]], list[TsPoint] | None]:
        try:
            return [_row(p) for p in batch_points(batch)], None
        except (TypeError, ValueError):  # a point JSON cannot hold: find it, keep the rest
            rows, kept = [], []
            for p in batch_points(batch):
                try:
                    rows.append(_row(p))
                except (TypeError, ValueError) as exc:
                    log.error("time-series point %r %s dropped: %s", p.measurement, p.tags, exc)
                    continue
                kept.append(p)
            return rows, kept

    def _send(self, rows: list[tuple[Any, ...]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO points (measurement, ts, tags, fields, s_tag, s_person, s_band, s_device, s_alert_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                now = time.monotonic()
                if now - self._last_prune >= PRUNE_EVERY_S:
                    self._last_prune = now
                    self._prune_locked()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _prune_locked(self) -> int:
        cutoff = int((time.time() - self.retention_s) * 1e9)
        return self._db.execute("DELETE FROM points WHERE ts < ?", (cutoff,)).rowcount

    def prune(self) -> int:
        """Delete points older than the retention now; returns how many."""
        with self._lock:
            return self._prune_locked()

    async def ping(self) -> bool:
        def check() -> bool:
            with self._lock:
                row = self._db.execute("SELECT 1").fetchone()
                return bool(row == (1,))

        try:
            return await asyncio.to_thread(check)
        except sqlite3.Error:
            return False

    async def query(
        self, measurement: str, subject: str | None, start: datetime, end: datetime, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """The newest `limit` points of `measurement` in [start, end], oldest first."""
        return await asyncio.to_thread(self._select, measurement, subject, start, end, limit)

    def _select(
        self, measurement: str, subject: str | None, start: datetime, end: datetime, limit: int
    ) -> list[dict[str, Any]]:
        where = "measurement = ? AND ts >= ? AND ts <= ?"
        # nanoseconds since 1970 overflow SQLite's int64 after 2262: clamp the query bounds
        lo, hi = (max(-(2**63), min(2**63 - 1, ts_ns(t))) for t in (start, end))
        args: list[Any] = [measurement, lo, hi]
        if subject is not None:
            where += " AND (" + " OR ".join(f"{c} = ?" for c in _SUBJECT_COLUMNS) + ")"
            args += [subject] * len(_SUBJECT_COLUMNS)
        # only fixed column names go into the SQL; every value is a placeholder
        sql = f"SELECT ts, tags, fields FROM points WHERE {where} ORDER BY ts DESC, id DESC LIMIT ?"  # noqa: S608
        with self._lock:
            rows = self._db.execute(sql, [*args, max(limit, 0)]).fetchall()
        return [
            {
                "ts": datetime.fromtimestamp(ts // 1000 / 1e6, tz=UTC),
                "tags": json.loads(tags),
                "fields": json.loads(fields),
            }
            for ts, tags, fields in reversed(rows)
        ]

    async def close(self) -> None:
        try:
            await self._stop_writer(10.0)
        finally:
            with self._lock:
                self._db.close()
