"""The edge's durable outbox: a SQLite (WAL) queue drained by the uplink.

An item leaves the outbox in one of two ways, so a crash, a power loss or a broker outage loses
nothing that `put` returned for:

- telemetry (and anything else without a confirmation key) is deleted by `ack`, which the uplink
  calls after the broker's PUBACK;
- alerts, events, device reports, snapshots and command results carry a confirmation key
  (`gridwatch.contract.confirm_key`). Once central has shown that it confirms (its first
  `cmd/confirm`, remembered in the outbox), `ack` only marks them *sent*, and `confirm` deletes
  them when central says it has committed them. A broker that crashes after its PUBACK (Mosquitto
  saves its queues only every `autosave_interval`) or drops a queue over its limit would otherwise
  lose them silently. `requeue_lost` sends them again (see its doc for when); central drops the
  repeats by `event_id`.

Durability is chosen per transaction. A put that holds anything but telemetry (or the rule state)
is fsynced before it returns (`synchronous=FULL`). Telemetry-only puts, and every deletion or
sent-mark after a PUBACK or a confirmation, commit without waiting for the disk (`NORMAL`, which
in WAL mode keeps the database consistent and makes the commit durable with the next fsync): a
power loss can then lose the last telemetry points, which are best effort anyway, or undo a
deletion, which costs a repeat central drops by `event_id`. Under an RTLS load this halves the
fsyncs per telemetry body.

Telemetry that the uplink is keeping up with never touches the disk. While the outbox holds no
telemetry row, a telemetry-only put keeps its bodies in memory (*hot*, ids below zero) for the
uplink to send, and `ack` forgets them: under an RTLS load, writing each body, reading it back and
deleting it was a fifth of the edge's CPU (bench/edge_pipeline.py). Hot bodies are written to disk
(*spilled*), in order and before anything newer, as soon as they could be waiting on a slow or lost
uplink: when a put would pass HOT_MAX_ITEMS of them, the telemetry share or the outbox's size, or
finds one older than HOT_MAX_AGE_S; when `spill_stale` (the agent's ticker) finds one that old; and
on `close`. So a crash can lose the telemetry of the last HOT_MAX_AGE_S or so, as it can lose the
batcher's pending points, and never an alert or an event. A hot body in flight when it is spilled
is sent again from disk: a repeat, which central's time series takes as the same points.

Lanes drain in priority order (alerts first). Telemetry and snapshots are bounded shares of the
outbox: beyond their share the oldest rows are deleted and counted. Alerts, events, device reports
and command results are never dropped, even when the outbox is over its size (a warning is logged
instead).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from gridwatch.contract import confirm_key

__all__ = ["Lane", "Outbox", "OutboxItem"]

log = logging.getLogger(__name__)

SNAPSHOT_SHARE = 0.25
_CHUNK = 500  # ids per DELETE statement (well under SQLite's variable limit)
_WARN_EVERY_S = 60.0
CONFIRMS_STATE = "central_confirms"  # state key: central has sent a cmd/confirm at least once
PROBE_BACKOFF_MAX = 5  # the wait before an item is resent doubles with each attempt, up to 2**5 times
HOT_MAX_ITEMS = 256  # telemetry bodies kept in memory at most (module doc)
HOT_MAX_AGE_S = 2.0  # a hot body older than this goes to disk

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
# Columns added by 0.2.0's confirmations; an older outbox gains them when it is opened.
_CONFIRM_COLUMNS = (
    ("confirm", "ALTER TABLE items ADD COLUMN confirm TEXT"),  # the key central confirms, or NULL
    ("sent_seq", "ALTER TABLE items ADD COLUMN sent_seq INTEGER"),  # order of PUBACKs; NULL = not sent
    ("sent_at", "ALTER TABLE items ADD COLUMN sent_at REAL"),
    ("overtaken", "ALTER TABLE items ADD COLUMN overtaken REAL"),  # when a later-sent item was confirmed
    ("attempts", "ALTER TABLE items ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0"),
)
_DELETE_WHERE = {
    ("id", False): "id IN",
    ("id", True): "confirm IS NULL AND id IN",
    ("confirm", False): "confirm IN",
}
_REQUEUE = "UPDATE items SET sent_seq = NULL, sent_at = NULL, overtaken = NULL, attempts = attempts + 1 WHERE "
# overtaken for `grace` × 2^attempts (at most 32×): an item central keeps refusing is not resent every few seconds
_REQUEUE_OVERTAKEN = (
    _REQUEUE
    + f"overtaken IS NOT NULL AND overtaken <= ? - ? * (1 << MIN(attempts, {PROBE_BACKOFF_MAX})) RETURNING lane"
)
_REQUEUE_ONE = _REQUEUE + "id = ? RETURNING lane"
_CONFIRM_INDEXES = """
CREATE INDEX IF NOT EXISTS items_unsent ON items (lane, id) WHERE sent_seq IS NULL;
CREATE INDEX IF NOT EXISTS items_confirm ON items (confirm) WHERE confirm IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_sent ON items (sent_seq) WHERE sent_seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_overtaken ON items (overtaken) WHERE overtaken IS NOT NULL;
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
class Requeued:
    """What `requeue_lost` put back in line to be sent again."""

    overtaken: int  # later-sent items were confirmed, these were not: lost between broker and central
    probed: int  # the newest sent item waited too long with nothing after it: sent again to ask

    def __bool__(self) -> bool:
        return bool(self.overtaken or self.probed)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    lane: Lane
    topic_suffix: str
    payload: bytes
    created: float


class Outbox:
    """A thread-safe durable queue; `put` returns once the items are on disk (telemetry: on disk
    or hot, see the module doc)."""

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
        self.confirmed = 0  # items central confirmed (deleted by `confirm`)
        self.requeued_overtaken = 0
        self.requeued_probes = 0
        self.spilled = 0  # hot telemetry bodies written to disk because the uplink did not take them soon
        self._hot: dict[int, OutboxItem] = {}  # in put order
        self._hot_bytes = 0
        self._spilling: dict[int, OutboxItem] = {}  # hot bodies written in the open transaction
        self._hot_next = -1
        self._lock = threading.Lock()
        self._last_full_warning = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is fsynced before put() returns, so an acknowledged put survives power loss;
        # `_durable` lowers it to NORMAL for the transactions that may be lost (module doc)
        self._db.execute("PRAGMA synchronous=FULL")
        self._full = True
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(items)")}
        for column, ddl in _CONFIRM_COLUMNS:
            if column not in have:
                self._db.execute(ddl)
        self._db.executescript(_CONFIRM_INDEXES)
        self.confirms = self._get_state(CONFIRMS_STATE) is not None
        row = self._db.execute("SELECT COALESCE(MAX(sent_seq), 0) FROM items").fetchone()
        self._seq = int(row[0])
        self._count: dict[Lane, int] = {}
        self._bytes: dict[Lane, int] = {}
        self._sent: dict[Lane, int] = {}
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
        telemetry_only = state is None and all(lane == Lane.TELEMETRY for lane, _, _ in rows)
        with self._lock:
            size = sum(len(payload) + len(topic) for _, topic, payload in rows)
            if telemetry_only and self._count[Lane.TELEMETRY] == 0 and self._hot_fits(len(rows), size, now):
                return [self._keep_hot(lane, topic, payload, now) for lane, topic, payload in rows]
            ids: list[int] = []
            with self._transaction(durable=not telemetry_only):
                if telemetry_only:
                    self._write_hot()  # older telemetry first, in order
                for lane, topic, payload in rows:
                    size = len(payload) + len(topic)
                    key = None if lane == Lane.TELEMETRY else confirm_key(topic, payload)
                    cur = self._db.execute(
                        "INSERT INTO items (lane, topic, payload, size, created, confirm) VALUES (?, ?, ?, ?, ?, ?)",
                        (int(lane), topic, payload, size, now, key),
                    )
                    assert cur.lastrowid is not None
                    ids.append(cur.lastrowid)
                    self._count[lane] += 1
                    self._bytes[lane] += size
                self._enforce_bounds({lane for lane, _, _ in rows})
                if state is not None:
                    self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", state)
            self._spill_committed()
            return ids

    # -- hot telemetry (module doc) -------------------------------------------------------
    def _hot_fits(self, n: int, size: int, now: float) -> bool:
        """May `n` more bodies of `size` bytes stay hot? Within the count, the telemetry share, the
        outbox's size and the age (beyond them the disk path sheds and counts)."""
        if len(self._hot) + n > HOT_MAX_ITEMS or self._hot_bytes + size > self.telemetry_limit:
            return False
        if self._held_bytes() + size > self.max_bytes:
            return False
        return not self._hot or now - next(iter(self._hot.values())).created < HOT_MAX_AGE_S

    def _keep_hot(self, lane: Lane, topic: str, payload: bytes, now: float) -> int:
        item = OutboxItem(self._hot_next, lane, topic, payload, now)
        self._hot_next -= 1
        self._hot[item.id] = item
        self._hot_bytes += len(payload) + len(topic)
        return item.id

    def _write_hot(self) -> None:
        """Write the hot bodies as rows, in order, inside the caller's transaction. They are rows
        from then on (counted once, shed as rows); `_spill_committed` after the commit, and a
        rollback makes them hot again."""
        for item in self._hot.values():
            size = len(item.payload) + len(item.topic_suffix)
            self._db.execute(
                "INSERT INTO items (lane, topic, payload, size, created, confirm) VALUES (?, ?, ?, ?, ?, NULL)",
                (int(item.lane), item.topic_suffix, item.payload, size, item.created),
            )
            self._count[item.lane] += 1
            self._bytes[item.lane] += size
        self._spilling, self._hot = self._hot, {}
        self._hot_bytes = 0

    def _spill_committed(self) -> None:
        self.spilled += len(self._spilling)
        self._spilling = {}

    def spill_stale(self, *, now: float | None = None) -> int:
        """Write the hot bodies to disk if one is older than HOT_MAX_AGE_S; returns how many."""
        at = time.time() if now is None else now
        with self._lock:
            if not self._hot or at - next(iter(self._hot.values())).created < HOT_MAX_AGE_S:
                return 0
            return self._spill(durable=False)

    def _spill(self, *, durable: bool) -> int:
        n = len(self._hot)
        with self._transaction(durable=durable):
            self._write_hot()
            self._enforce_bounds({Lane.TELEMETRY})
        self._spill_committed()
        return n

    def set_state(self, key: str, value: bytes) -> None:
        """Save a small state blob durably (one transaction)."""
        with self._lock:
            self._durable(True)
            self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))

    def get_state(self, key: str) -> bytes | None:
        with self._lock:
            return self._get_state(key)

    @contextlib.contextmanager
    def _transaction(self, *, durable: bool) -> Iterator[None]:
        """One write transaction (the caller holds the lock), fsynced at commit when `durable`
        (module doc); any error rolls it back and recounts."""
        self._durable(durable)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _durable(self, full: bool) -> None:
        """Whether the next commit must be on disk before it returns (FULL) or may wait (NORMAL)."""
        if full != self._full:
            self._db.execute("PRAGMA synchronous=FULL" if full else "PRAGMA synchronous=NORMAL")
            self._full = full

    def _get_state(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _enforce_bounds(self, lanes: set[Lane]) -> None:
        """Shed the oldest telemetry/snapshots beyond their shares, then beyond the total size."""
        if Lane.TELEMETRY in lanes:
            self.telemetry_dropped += self._shed(Lane.TELEMETRY, self._bytes[Lane.TELEMETRY] - self.telemetry_limit)
        if Lane.SNAPSHOTS in lanes:
            self.snapshots_dropped += self._shed(Lane.SNAPSHOTS, self._bytes[Lane.SNAPSHOTS] - self.snapshot_limit)
        excess = self._held_bytes() - self.max_bytes
        if excess > 0:
            self.telemetry_dropped += self._shed(Lane.TELEMETRY, excess)
            excess = self._held_bytes() - self.max_bytes
        if excess > 0 and self._hot:
            self.telemetry_dropped += self._shed_hot(excess)
            excess = self._held_bytes() - self.max_bytes
        if excess > 0:
            self.snapshots_dropped += self._shed(Lane.SNAPSHOTS, excess)
            excess = self._held_bytes() - self.max_bytes
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

    def _held_bytes(self) -> int:
        return sum(self._bytes.values()) + self._hot_bytes

    def _shed_hot(self, excess: int) -> int:
        """Forget the oldest hot bodies until `excess` bytes are freed; returns how many."""
        shed = 0
        while self._hot and excess > 0:
            item = self._hot.pop(next(iter(self._hot)))
            size = len(item.payload) + len(item.topic_suffix)
            self._hot_bytes -= size
            excess -= size
            shed += 1
        return shed

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
        self._delete("id", victims)
        return len(victims)

    def _delete(self, column: str, values: list[int] | list[str], *, unconfirmed_only: bool = False) -> int | None:
        """Delete the rows whose `column` ("id" or "confirm") is in `values` (with `unconfirmed_only`,
        only those without a confirmation key); returns the highest `sent_seq` among them (None if
        none of them had been sent)."""
        where = _DELETE_WHERE[column, unconfirmed_only]
        highest: int | None = None
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            # only fixed SQL and placeholders go into the statement; the values are bound
            query = f"DELETE FROM items WHERE {where} ({marks}) RETURNING lane, size, sent_seq"  # noqa: S608
            for lane, size, seq in self._db.execute(query, chunk).fetchall():
                self._count[Lane(lane)] -= 1
                self._bytes[Lane(lane)] -= size
                if seq is not None:
                    self._sent[Lane(lane)] -= 1
                    highest = seq if highest is None else max(highest, seq)
        return highest

    # -- reading ---------------------------------------------------------------------------
    def peek(self, n: int, exclude: Collection[int] = ()) -> list[OutboxItem]:
        """Up to `n` unsent items by lane priority then age, skipping ids in `exclude`; nothing is removed."""
        if n <= 0:
            return []
        skip = set(exclude)
        with self._lock:
            cur = self._db.execute(
                "SELECT id, lane, topic, payload, created FROM items WHERE sent_seq IS NULL ORDER BY lane, id LIMIT ?",
                (n + len(skip),),
            )
            out: list[OutboxItem] = []
            for row_id, lane, topic, payload, created in cur:
                if row_id in skip:
                    continue
                out.append(OutboxItem(row_id, Lane(lane), topic, bytes(payload), created))
                if len(out) >= n:
                    break
            # hot bodies are telemetry, the last lane, and exist only while no telemetry row does
            for item in self._hot.values():
                if len(out) >= n:
                    break
                if item.id not in skip:
                    out.append(item)
            return out

    def ack(self, ids: Iterable[int], *, now: float | None = None) -> None:
        """The broker acknowledged these items (PUBACK). Unknown ids are ignored.

        Items without a confirmation key, and every item until central has shown that it confirms,
        are deleted. The others are marked sent, numbered in the order given (PUBACK order): that
        order is what `confirm` uses to tell a lost item from one that is merely on its way.
        """
        wanted = [int(i) for i in ids]
        at = time.time() if now is None else now
        with self._lock:
            if self._hot:
                for item_id in wanted:
                    hot = self._hot.pop(item_id, None)
                    if hot is not None:
                        self._hot_bytes -= len(hot.payload) + len(hot.topic_suffix)
            wanted = [i for i in wanted if i > 0]  # a hot id not held any more was spilled: its row is sent again
            if not wanted:
                return
            with self._transaction(durable=False):  # a lost deletion or sent-mark costs a repeat, not an alert
                if not self.confirms:
                    self._delete("id", wanted)
                else:
                    self._delete("id", wanted, unconfirmed_only=True)
                    for item_id in wanted:
                        row = self._db.execute(
                            "UPDATE items SET sent_seq = ?, sent_at = ?, overtaken = NULL "
                            "WHERE id = ? AND sent_seq IS NULL RETURNING lane",
                            (self._seq + 1, at, item_id),
                        ).fetchone()
                        if row is not None:
                            self._seq += 1
                            self._sent[Lane(row[0])] += 1

    def confirm(self, keys: Iterable[str], *, now: float | None = None) -> int:
        """Central has committed the items with these confirmation keys: delete them.

        Every sent item that is still waiting and was sent *before* the latest of them is marked
        overtaken: central has seen what came after it, so unless it is merely a little behind
        (another ingest worker, a slow commit) it was lost between the broker and central.
        The first confirmation ever switches the outbox to keeping sent items (`confirms`).
        Returns how many items were deleted; keys of items already gone are ignored.
        """
        wanted = [str(k) for k in keys]
        at = time.time() if now is None else now
        with self._lock:
            with self._transaction(durable=False):  # a lost deletion costs a repeat, which central confirms again
                before = sum(self._count.values())
                highest = self._delete("confirm", wanted) if wanted else None
                deleted = before - sum(self._count.values())
                if highest is not None:
                    self._db.execute(
                        "UPDATE items SET overtaken = ? "
                        "WHERE sent_seq IS NOT NULL AND sent_seq < ? AND overtaken IS NULL",
                        (at, highest),
                    )
                if not self.confirms:
                    self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (CONFIRMS_STATE, b"1"))
            if not self.confirms:
                log.info("central confirms what it commits: the outbox now keeps sent items until confirmed")
            self.confirms = True
            self.confirmed += deleted
            return deleted

    def requeue_lost(self, *, grace_s: float, probe_s: float, now: float | None = None) -> Requeued:
        """Put sent-but-unconfirmed items back in line to be sent again, where they look lost.

        - *Overtaken* for longer than `grace_s` (doubling with each attempt, up to 32×): central
          confirmed something sent after them and still has not confirmed them. (Central confirms
          nothing it rejected: a body an older central cannot read waits here, resent now and
          then, rather than being lost.)
        - *Probe*: when the newest sent item has waited `probe_s` (doubling with each attempt,
          up to 32×) and nothing was sent after it, that one item is sent again. A crash can lose
          the last messages before a quiet spell, with nothing after them to be confirmed; the
          probe's confirmation then overtakes every older item still waiting. While central is
          down this costs one repeat per interval, not the whole backlog.
        """
        at = time.time() if now is None else now
        with self._lock, self._transaction(durable=False):
            overtaken = self._requeue(_REQUEUE_OVERTAKEN, (at, grace_s))
            probed = 0
            newest = self._db.execute(
                "SELECT id, sent_at, attempts FROM items WHERE sent_seq IS NOT NULL ORDER BY sent_seq DESC LIMIT 1"
            ).fetchone()
            if newest is not None:
                item_id, sent_at, attempts = newest
                if sent_at <= at - probe_s * 2 ** min(attempts, PROBE_BACKOFF_MAX):
                    probed = self._requeue(_REQUEUE_ONE, (item_id,))
        self.requeued_overtaken += overtaken
        self.requeued_probes += probed
        return Requeued(overtaken, probed)

    def _requeue(self, query: str, params: tuple[float | int, ...]) -> int:
        rows = self._db.execute(query, params).fetchall()
        for (lane,) in rows:
            self._sent[Lane(lane)] -= 1
        return len(rows)

    def depth(self) -> dict[str, int]:
        """Items waiting to be sent per lane, keyed by the lane's lower-case name."""
        with self._lock:
            depth = {lane.name.lower(): self._count[lane] - self._sent[lane] for lane in Lane}
            depth["telemetry"] += len(self._hot)
            return depth

    def awaiting_confirmation(self) -> dict[str, int]:
        """Items sent and kept until central confirms them, per lane (lower-case name)."""
        with self._lock:
            return {lane.name.lower(): self._sent[lane] for lane in Lane}

    def oldest_unconfirmed_age(self, now: float | None = None) -> float | None:
        """Seconds since the oldest item still awaiting confirmation was sent (None: none waits)."""
        with self._lock:
            row = self._db.execute("SELECT MIN(sent_at) FROM items WHERE sent_seq IS NOT NULL").fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, (time.time() if now is None else now) - float(row[0]))

    def bytes_used(self) -> int:
        """Bytes of payload and topic held in the outbox, sent or not (not the file size)."""
        with self._lock:
            return self._held_bytes()

    def __len__(self) -> int:
        """Items held, waiting to be sent or awaiting confirmation."""
        with self._lock:
            return sum(self._count.values()) + len(self._hot)

    def close(self) -> None:
        """Write the hot bodies to disk and close the database."""
        with self._lock:
            if self._hot:
                self._spill(durable=True)
            self._db.close()

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        if self._spilling:  # not written after all: hot again, before anything put since
            self._hot = {**self._spilling, **self._hot}
            self._spilling = {}
            self._hot_bytes = sum(len(i.payload) + len(i.topic_suffix) for i in self._hot.values())
        self._recount()
        self._seq = int(self._db.execute("SELECT COALESCE(MAX(sent_seq), 0) FROM items").fetchone()[0])

    def _recount(self) -> None:
        self._count = dict.fromkeys(Lane, 0)
        self._bytes = dict.fromkeys(Lane, 0)
        self._sent = dict.fromkeys(Lane, 0)
        query = "SELECT lane, COUNT(*), COALESCE(SUM(size), 0), COUNT(sent_seq) FROM items GROUP BY lane"
        for lane, count, size, sent in self._db.execute(query):
            self._count[Lane(lane)] = count
            self._bytes[Lane(lane)] = size
            self._sent[Lane(lane)] = sent
