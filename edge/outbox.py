"""The edge's durable outbox: a SQLite (WAL, synchronous=FULL) queue drained by the uplink.

An item is removed only by `ack`, which the uplink calls after the broker's PUBACK, so a crash,
a power loss or a broker outage loses nothing that `put` returned for. Lanes drain in priority
order (alerts first). Telemetry and snapshots are bounded shares of the outbox: beyond their
share the oldest rows are deleted and counted. Alerts, events, device reports and command
results are never dropped, even when the outbox is over its size (a warning is logged instead).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

__all__ = ["Lane", "Outbox", "OutboxItem"]

log = logging.getLogger(__name__)

SNAPSHOT_SHARE = 0.25
_CHUNK = 500  # ids per DELETE statement (well under SQLite's variable limit)
_WARN_EVERY_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lane INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_lane_id ON items (lane, id);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""


class Lane(IntEnum):
    """Outbox lanes; a lower value drains first."""

    ALERTS = 0
    CMD_RESULTS = 1
    SNAPSHOTS = 2
    EVENTS = 3
    DEVICES = 4
    TELEMETRY = 5


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    lane: Lane
    topic_suffix: str
    payload: bytes
    created: float


class Outbox:
    """A thread-safe durable queue; `put` returns only once the item is on disk."""

    def __init__(self, path: Path, *, max_bytes: int = 512 * 1024 * 1024, telemetry_share: float = 0.25) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if not 0.0 < telemetry_share <= 1.0:
            raise ValueError("telemetry_share must be in (0, 1]")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.telemetry_limit = int(max_bytes * telemetry_share)
        self.snapshot_limit = int(max_bytes * SNAPSHOT_SHARE)
        self.telemetry_dropped = 0
        self.snapshots_dropped = 0
        self._lock = threading.Lock()
        self._last_full_warning = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is fsynced before put() returns, so an acknowledged put survives power loss
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._count: dict[Lane, int] = {}
        self._bytes: dict[Lane, int] = {}
        self._recount()

    # -- writing ---------------------------------------------------------------------------
    def put(self, lane: Lane, topic_suffix: str, payload: bytes) -> int:
        """Store one item durably; returns its id."""
        return self.put_many([(lane, topic_suffix, payload)])[0]

    def put_many(
        self, items: Iterable[tuple[Lane, str, bytes]], *, state: tuple[str, bytes] | None = None
    ) -> list[int]:
        """Store several items in one transaction; returns their ids in order.

        `state` (key, bytes) is saved in the same transaction: the edge keeps its rule state here so
        that an alert in the outbox and the rule state that knows it are never out of step.
        """
        rows = [(Lane(lane), str(topic), bytes(payload)) for lane, topic, payload in items]
        if not rows:
            if state is not None:
                self.set_state(*state)
            return []
        now = time.time()
        with self._lock:
            ids: list[int] = []
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for lane, topic, payload in rows:
                    size = len(payload) + len(topic)
                    cur = self._db.execute(
                        "INSERT INTO items (lane, topic, payload, size, created) VALUES (?, ?, ?, ?, ?)",
                        (int(lane), topic, payload, size, now),
                    )
                    assert cur.lastrowid is not None
                    ids.append(cur.lastrowid)
                    self._count[lane] += 1
                    self._bytes[lane] += size
                self._enforce_bounds({lane for lane, _, _ in rows})
                if state is not None:
                    self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", state)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._recount()
                raise
            return ids

    def set_state(self, key: str, value: bytes) -> None:
        """Save a small state blob durably (one transaction)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))

    def get_state(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _enforce_bounds(self, lanes: set[Lane]) -> None:
        """Shed the oldest telemetry/snapshots beyond their shares, then beyond the total size."""
        if Lane.TELEMETRY in lanes:
            self.telemetry_dropped += self._shed(Lane.TELEMETRY, self._bytes[Lane.TELEMETRY] - self.telemetry_limit)
        if Lane.SNAPSHOTS in lanes:
            self.snapshots_dropped += self._shed(Lane.SNAPSHOTS, self._bytes[Lane.SNAPSHOTS] - self.snapshot_limit)
        excess = sum(self._bytes.values()) - self.max_bytes
        if excess > 0:
            self.telemetry_dropped += self._shed(Lane.TELEMETRY, excess)
            excess = sum(self._bytes.values()) - self.max_bytes
        if excess > 0:
            self.snapshots_dropped += self._shed(Lane.SNAPSHOTS, excess)
            excess = sum(self._bytes.values()) - self.max_bytes
        if excess > 0:
            mono = time.monotonic()
            if mono - self._last_full_warning >= _WARN_EVERY_S:
                self._last_full_warning = mono
                log.warning(
                    "outbox %s is over its size (%d > %d bytes) with alerts/events only: keeping them all; "
                    "is the uplink broker reachable?",
                    self.path,
                    self.max_bytes + excess,
                    self.max_bytes,
                )

    def _shed(self, lane: Lane, excess: int) -> int:
        """Delete the oldest rows of `lane` until `excess` bytes are freed; returns rows deleted."""
        if excess <= 0 or self._count[lane] == 0:
            return 0
        victims: list[int] = []
        freed = 0
        for row_id, size in self._db.execute("SELECT id, size FROM items WHERE lane = ? ORDER BY id", (int(lane),)):
            victims.append(row_id)
            freed += size
            if freed >= excess:
                break
        self._delete(victims)
        return len(victims)

    def _delete(self, ids: list[int]) -> None:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            # ids are ints from our own queries or callers' acks; only placeholders go into the SQL
            query = f"DELETE FROM items WHERE id IN ({marks}) RETURNING lane, size"  # noqa: S608
            for lane, size in self._db.execute(query, chunk).fetchall():
                self._count[Lane(lane)] -= 1
                self._bytes[Lane(lane)] -= size

    # -- reading ---------------------------------------------------------------------------
    def peek(self, n: int, exclude: Collection[int] = ()) -> list[OutboxItem]:
        """Up to `n` items by lane priority then age, skipping ids in `exclude`; nothing is removed."""
        if n <= 0:
            return []
        skip = set(exclude)
        with self._lock:
            cur = self._db.execute(
                "SELECT id, lane, topic, payload, created FROM items ORDER BY lane, id LIMIT ?", (n + len(skip),)
            )
            out: list[OutboxItem] = []
            for row_id, lane, topic, payload, created in cur:
                if row_id in skip:
                    continue
                out.append(OutboxItem(row_id, Lane(lane), topic, bytes(payload), created))
                if len(out) >= n:
                    break
            return out

    def ack(self, ids: Iterable[int]) -> None:
        """Remove items (after the broker acknowledged them); unknown ids are ignored."""
        wanted = [int(i) for i in ids]
        if not wanted:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._delete(wanted)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._recount()
                raise

    def depth(self) -> dict[str, int]:
        """Items waiting per lane, keyed by the lane's lower-case name."""
        with self._lock:
            return {lane.name.lower(): self._count[lane] for lane in Lane}

    def bytes_used(self) -> int:
        """Bytes of payload and topic waiting in the outbox (not the file size)."""
        with self._lock:
            return sum(self._bytes.values())

    def __len__(self) -> int:
        with self._lock:
            return sum(self._count.values())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _recount(self) -> None:
        self._count = dict.fromkeys(Lane, 0)
        self._bytes = dict.fromkeys(Lane, 0)
        query = "SELECT lane, COUNT(*), COALESCE(SUM(size), 0) FROM items GROUP BY lane"
        for lane, count, size in self._db.execute(query):
            self._count[Lane(lane)] = count
            self._bytes[Lane(lane)] = size
