"""Hot telemetry (edge/outbox.py): bodies the uplink keeps up with stay in memory; anything that
could be waiting on a slow or lost uplink goes to disk, in order, before anything newer."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

import edge.outbox
from edge.outbox import HOT_MAX_AGE_S, HOT_MAX_ITEMS, Lane, Outbox


def _rows(path: Path) -> list[tuple[int, bytes]]:
    """(lane, payload) of every row on disk, in id order, read by a second connection."""
    with sqlite3.connect(path) as db:
        return [(lane, bytes(p)) for lane, p in db.execute("SELECT lane, payload FROM items ORDER BY id")]


def test_telemetry_the_uplink_takes_never_reaches_the_disk(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    ids = box.put_many([(Lane.TELEMETRY, "telemetry", b"t1"), (Lane.TELEMETRY, "telemetry", b"t2")])
    assert all(i < 0 for i in ids)
    assert _rows(tmp_path / "o.db") == []
    assert box.depth()["telemetry"] == 2 and len(box) == 2 and box.bytes_used() == 2 * len(b"t1telemetry")
    assert [i.payload for i in box.peek(10)] == [b"t1", b"t2"]
    box.ack(ids)
    assert box.peek(10) == [] and len(box) == 0 and box.bytes_used() == 0
    assert box.spilled == 0
    box.close()
    assert _rows(tmp_path / "o.db") == []


def test_alerts_still_drain_before_hot_telemetry(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    hot = box.put(Lane.TELEMETRY, "telemetry", b"t")
    alert = box.put(Lane.ALERTS, "alerts", b"a")
    assert [i.id for i in box.peek(10)] == [alert, hot]
    assert [i.id for i in box.peek(10, exclude={alert})] == [hot]
    assert [i.id for i in box.peek(1)] == [alert]
    box.close()


def test_close_writes_hot_telemetry_to_disk_in_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put_many([(Lane.TELEMETRY, "telemetry", b"t1"), (Lane.TELEMETRY, "telemetry", b"t2")])
    box.put(Lane.EVENTS, "events", b"e")
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert [(i.lane, i.payload) for i in again.peek(10)] == [
        (Lane.EVENTS, b"e"),
        (Lane.TELEMETRY, b"t1"),
        (Lane.TELEMETRY, b"t2"),
    ]
    again.close()


def test_telemetry_waiting_too_long_goes_to_disk_before_anything_newer(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    first = box.put(Lane.TELEMETRY, "telemetry", b"t1")
    assert box.spill_stale() == 0
    assert box.spill_stale(now=time.time() + HOT_MAX_AGE_S + 0.1) == 1
    assert _rows(tmp_path / "o.db") == [(Lane.TELEMETRY, b"t1")]
    assert box.spilled == 1 and box.depth()["telemetry"] == 1
    # the uplink had it in flight under its hot id: that PUBACK changes nothing, the row is sent again
    box.ack([first])
    assert [i.payload for i in box.peek(10)] == [b"t1"]
    # with telemetry on disk, newer telemetry queues behind it on disk, not in memory
    second = box.put(Lane.TELEMETRY, "telemetry", b"t2")
    assert second > 0
    assert [i.payload for i in box.peek(10)] == [b"t1", b"t2"]
    box.ack([i.id for i in box.peek(10)])
    # once the disk holds no telemetry, new bodies stay in memory again
    assert box.put(Lane.TELEMETRY, "telemetry", b"t3") < 0
    box.close()


def test_a_put_behind_old_hot_telemetry_writes_both_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge.outbox, "HOT_MAX_AGE_S", 0.0)  # every hot body is old at once
    box = Outbox(tmp_path / "o.db")
    assert box.put(Lane.TELEMETRY, "telemetry", b"old") < 0
    box.put(Lane.TELEMETRY, "telemetry", b"new")
    assert _rows(tmp_path / "o.db") == [(Lane.TELEMETRY, b"old"), (Lane.TELEMETRY, b"new")]
    assert box.spilled == 1
    box.close()


def test_a_full_memory_spills_before_taking_more(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put_many([(Lane.TELEMETRY, "telemetry", b"%d" % i) for i in range(HOT_MAX_ITEMS)])
    assert _rows(tmp_path / "o.db") == []
    box.put(Lane.TELEMETRY, "telemetry", b"one more")
    rows = _rows(tmp_path / "o.db")
    assert len(rows) == HOT_MAX_ITEMS + 1 and rows[0][1] == b"0" and rows[-1][1] == b"one more"
    assert box.spilled == HOT_MAX_ITEMS
    box.close()


def test_hot_telemetry_counts_in_the_size_bounds(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=10_000, telemetry_share=0.5)
    for _ in range(4):
        box.put(Lane.TELEMETRY, "telemetry", b"t" * 991)  # hot: 4,000 bytes within the 5,000 share
    assert _rows(tmp_path / "o.db") == []
    for _ in range(8):
        box.put(Lane.ALERTS, "alerts", b"a" * 994)  # 8,000 bytes: the oldest hot bodies make room
    assert box.telemetry_dropped == 2
    assert box.bytes_used() <= 10_000
    assert [i.lane for i in box.peek(20)].count(Lane.TELEMETRY) == 2
    box.close()


def test_spilling_counts_each_body_once_against_the_size(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=10_000, telemetry_share=1.0)
    for _ in range(4):
        box.put(Lane.TELEMETRY, "telemetry", b"t" * 991)
    for _ in range(5):
        box.put(Lane.ALERTS, "alerts", b"a" * 994)  # 9,000 bytes in all: within the size
    assert box.spill_stale(now=time.time() + HOT_MAX_AGE_S + 1) == 4
    assert box.telemetry_dropped == 0 and box.bytes_used() == 9_000
    assert [i.lane for i in box.peek(20)].count(Lane.TELEMETRY) == 4
    box.close()


def test_a_spill_that_fails_leaves_the_bodies_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put_many([(Lane.TELEMETRY, "telemetry", b"t1"), (Lane.TELEMETRY, "telemetry", b"t2")])

    def disk_full(_lanes: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(box, "_enforce_bounds", disk_full)
    with pytest.raises(sqlite3.OperationalError):
        box.spill_stale(now=time.time() + HOT_MAX_AGE_S + 1)
    assert _rows(tmp_path / "o.db") == []
    assert [i.payload for i in box.peek(10)] == [b"t1", b"t2"]
    assert box.depth()["telemetry"] == 2 and box.bytes_used() == 2 * len(b"t1telemetry") and box.spilled == 0
    monkeypatch.undo()
    box.close()
    assert _rows(tmp_path / "o.db") == [(Lane.TELEMETRY, b"t1"), (Lane.TELEMETRY, b"t2")]
