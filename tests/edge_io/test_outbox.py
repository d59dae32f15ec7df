"""The durable outbox: lane order, ack, reopen, bounds and survival of a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import edge.outbox
from edge.outbox import Lane, Outbox


def test_peek_orders_by_lane_then_age_and_does_not_remove(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    t1 = box.put(Lane.TELEMETRY, "telemetry", b"t1")
    e1 = box.put(Lane.EVENTS, "events", b"e1")
    a1 = box.put(Lane.ALERTS, "alerts", b"a1")
    s1 = box.put(Lane.SNAPSHOTS, "snapshots/" + "0" * 64, b"\xff\xd8jpeg")
    a2 = box.put(Lane.ALERTS, "alerts", b"a2")
    d1 = box.put(Lane.DEVICES, "devices", b"d1")
    c1 = box.put(Lane.CMD_RESULTS, "cmd_result", b"c1")
    items = box.peek(10)
    assert [i.id for i in items] == [a1, a2, c1, s1, e1, d1, t1]
    assert items[0].lane is Lane.ALERTS and items[0].payload == b"a1" and items[0].topic_suffix == "alerts"
    assert [i.id for i in box.peek(2)] == [a1, a2]
    assert [i.id for i in box.peek(3, exclude={a1, c1})] == [a2, s1, e1]
    assert len(box.peek(10)) == 7
    assert box.depth() == {"alerts": 2, "cmd_results": 1, "snapshots": 1, "events": 1, "devices": 1, "telemetry": 1}
    box.close()


def test_ack_removes_only_the_acknowledged_items(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    ids = box.put_many([(Lane.ALERTS, "alerts", f"a{i}".encode()) for i in range(5)])
    used = box.bytes_used()
    box.ack([*ids[:3], 999_999])
    assert [i.id for i in box.peek(10)] == ids[3:]
    assert box.depth()["alerts"] == 2
    assert box.bytes_used() == used * 2 // 5
    box.ack(ids[3:])
    assert box.peek(10) == []
    assert box.bytes_used() == 0
    box.close()


def test_reopen_keeps_unacknowledged_items_and_counters(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    ids = box.put_many([(Lane.ALERTS, "alerts", b"x" * 10), (Lane.EVENTS, "events", b"y" * 20)])
    box.ack(ids[:1])
    used = box.bytes_used()
    box.close()
    again = Outbox(tmp_path / "o.db")
    items = again.peek(10)
    assert [(i.id, i.lane, i.payload) for i in items] == [(ids[1], Lane.EVENTS, b"y" * 20)]
    assert again.depth()["events"] == 1 and again.depth()["alerts"] == 0
    assert again.bytes_used() == used
    # ids keep growing after a reopen (AUTOINCREMENT), so an old in-flight id never names a new item
    assert again.put(Lane.ALERTS, "alerts", b"z") > ids[1]
    again.close()


def test_telemetry_beyond_its_share_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=100_000, telemetry_share=0.1)  # 10,000 bytes of telemetry
    alert = box.put(Lane.ALERTS, "alerts", b"a" * 50_000)
    ids = [box.put(Lane.TELEMETRY, "telemetry", b"t" * 991) for _ in range(30)]  # 1,000 bytes each
    assert box.telemetry_dropped == 20
    remaining = [i.id for i in box.peek(100) if i.lane is Lane.TELEMETRY]
    assert remaining == ids[20:]
    assert box.depth()["telemetry"] == 10
    assert box.depth()["alerts"] == 1 and box.peek(1)[0].id == alert
    box.close()


def test_snapshots_are_bounded_to_a_quarter(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=40_000)
    ids = [box.put(Lane.SNAPSHOTS, f"snapshots/{i:064x}", b"j" * 926) for i in range(20)]  # 74 + 926 bytes each
    assert box.snapshots_dropped == 10
    assert [i.id for i in box.peek(100)] == ids[10:]
    box.close()


def test_a_full_outbox_never_drops_alerts_but_sheds_telemetry(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=10_000, telemetry_share=0.5)
    for _ in range(4):
        box.put(Lane.TELEMETRY, "telemetry", b"t" * 991)
    alert_ids = [box.put(Lane.ALERTS, "alerts", b"a" * 994) for _ in range(30)]  # 3x the whole size
    assert box.telemetry_dropped == 4
    assert [i.id for i in box.peek(100)] == alert_ids
    assert box.bytes_used() == 30_000
    box.close()


def test_put_from_many_threads_keeps_every_item(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    got: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(100):
            item_id = box.put(Lane.EVENTS, "events", f"{n}-{i}".encode())
            with lock:
                got.append(item_id)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 400
    assert sorted(i.id for i in box.peek(1000)) == sorted(got)
    box.close()


_PUTTER = """
import sys
from pathlib import Path
from edge.outbox import Lane, Outbox
box = Outbox(Path(sys.argv[1]))
i = 0
while True:
    item_id = box.put(Lane.ALERTS, "alerts", b'{"n":%d}' % i)
    if i % 3 == 0:
        box.ack([item_id])          # some are acknowledged, and must stay gone
        print("acked", item_id, flush=True)
    else:
        print("put", item_id, flush=True)
    i += 1
"""


def test_items_survive_sigkill_of_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _PUTTER, str(db)], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    assert proc.stdout is not None
    put: set[int] = set()
    acked: set[int] = set()
    while len(put) + len(acked) < 600:
        line = proc.stdout.readline()
        assert line, "the writer died early"
        kind, item_id = line.split()
        (acked if kind == "acked" else put).add(int(item_id))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    box = Outbox(db)
    stored = {i.id for i in box.peek(1_000_000)}
    assert put <= stored, f"lost {len(put - stored)} acknowledged puts"
    assert not (acked & stored)
    assert all(json.loads(i.payload)["n"] >= 0 for i in box.peek(10))
    box.close()


def test_state_is_written_with_the_items_and_survives_reopening(tmp_path: Path) -> None:
    """The edge keeps its rule state here, in the same transaction as the alerts it raised."""
    box = Outbox(tmp_path / "o.db")
    assert box.get_state("rules") is None
    box.put_many([(Lane.ALERTS, "alerts", b"a1")], state=("rules", b'{"v":1}'))
    box.set_state("rules", b'{"v":2}')
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert again.get_state("rules") == b'{"v":2}'
    assert [i.payload for i in again.peek(10)] == [b"a1"]
    again.close()


def test_only_telemetry_and_deletions_commit_without_waiting_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What must survive a power loss is fsynced; telemetry and deletions (a repeat at worst) are not."""
    monkeypatch.setattr(edge.outbox, "HOT_MAX_ITEMS", 0)  # telemetry on disk (test_outbox_hot.py: in memory)
    box = Outbox(tmp_path / "o.db")

    def synchronous() -> int:  # 2 = FULL (fsync per commit), 1 = NORMAL (WAL synced later)
        return int(box._db.execute("PRAGMA synchronous").fetchone()[0])

    telemetry = box.put(Lane.TELEMETRY, "telemetry", b"t")
    assert synchronous() == 1
    box.put_many([(Lane.TELEMETRY, "telemetry", b"t"), (Lane.EVENTS, "events", b"e")])
    assert synchronous() == 2
    box.ack([telemetry])
    assert synchronous() == 1
    box.put(Lane.ALERTS, "alerts", b"a")
    assert synchronous() == 2
    box.put_many([], state=("rules", b"{}"))
    assert synchronous() == 2
    box.close()
