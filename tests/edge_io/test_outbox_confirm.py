"""End-to-end confirmation in the outbox: sent items wait for central's `cmd/confirm`, lost ones go again.

Times are passed in (`now=`), so nothing here sleeps.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edge.outbox import Lane, Outbox
from gridwatch.clock import FakeClock
from gridwatch.contract import ConfirmCmd, confirm_key
from gridwatch.contract.uplink import key_of_body
from tests.central_core.conftest import transition

SHA = "ab" * 32


def alert(event_id: str) -> bytes:
    return json.dumps({"event_id": event_id, "rule": "x.y"}, separators=(",", ":")).encode()


def learnt(path: Path) -> Outbox:
    """An outbox whose central has confirmed once (nothing in it yet)."""
    box = Outbox(path)
    box.confirm([])
    assert box.confirms
    return box


def test_before_central_confirms_anything_a_puback_deletes_as_in_v1(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    ids = box.put_many([(Lane.ALERTS, "alerts", alert("e1")), (Lane.EVENTS, "events", alert("e2"))])
    box.ack(ids)
    assert len(box) == 0 and not box.confirms
    assert box.awaiting_confirmation()["alerts"] == 0


def test_sent_items_wait_for_confirmation_and_are_not_sent_twice(tmp_path: Path) -> None:
    box = learnt(tmp_path / "o.db")
    a = box.put(Lane.ALERTS, "alerts", alert("e1"))
    t = box.put(Lane.TELEMETRY, "telemetry", alert("t1"))
    s = box.put(Lane.SNAPSHOTS, f"snapshots/{SHA}", b"\xff\xd8jpeg")
    c = box.put(Lane.CMD_RESULTS, "cmd_result", b'{"request_id":"r-1","ok":true}')
    box.ack([a, t, s, c])
    assert box.peek(10) == []  # nothing left to send ...
    assert len(box) == 3  # ... telemetry is gone on PUBACK, the rest waits for central
    assert box.depth() == dict.fromkeys(box.depth(), 0)
    assert box.awaiting_confirmation() == {
        "alerts": 1, "cmd_results": 1, "snapshots": 1, "events": 0, "devices": 0, "telemetry": 0,
    }  # fmt: skip
    body = ConfirmCmd(alerts=["e1"], snapshots=[SHA], cmd_result=["r-1"], events=["unknown"])
    assert box.confirm(body.keys()) == 3
    assert len(box) == 0 and box.bytes_used() == 0 and box.confirmed == 3


def test_a_confirmation_for_an_item_not_yet_sent_deletes_it_too(tmp_path: Path) -> None:
    """A resent item's first copy may be confirmed while the second waits in line."""
    box = learnt(tmp_path / "o.db")
    box.put(Lane.ALERTS, "alerts", alert("e1"))
    assert box.confirm(["alerts:e1"]) == 1
    assert box.peek(10) == []


def test_items_overtaken_by_a_later_confirmation_are_sent_again_after_the_grace(tmp_path: Path) -> None:
    box = learnt(tmp_path / "o.db")
    ids = box.put_many([(Lane.ALERTS, "alerts", alert(f"e{i}")) for i in range(4)])
    box.ack(ids)  # sent in this order: e0, e1, e2, e3
    box.confirm(["alerts:e2"], now=100.0)  # central has e2: e0 and e1 were sent before it
    assert box.requeue_lost(grace_s=10, probe_s=1e9, now=105.0).overtaken == 0  # maybe merely late
    requeued = box.requeue_lost(grace_s=10, probe_s=1e9, now=110.0)
    assert requeued.overtaken == 2 and requeued.probed == 0
    assert [i.id for i in box.peek(10)] == ids[:2]  # e3 was sent after e2: not overtaken
    assert box.awaiting_confirmation()["alerts"] == 1 and box.requeued_overtaken == 2
    # sent again: e3, sent before the resends, does not overtake them when confirmed ...
    box.ack(ids[:2], now=120.0)
    box.confirm(["alerts:e3"], now=130.0)
    assert box.requeue_lost(grace_s=10, probe_s=1e9, now=200.0).overtaken == 0
    # ... e4, sent after them, does; the second resend waits twice as long
    box.ack([box.put(Lane.ALERTS, "alerts", alert("e4"))], now=210.0)
    box.confirm(["alerts:e4"], now=220.0)
    assert box.requeue_lost(grace_s=10, probe_s=1e9, now=235.0).overtaken == 0
    assert box.requeue_lost(grace_s=10, probe_s=1e9, now=240.0).overtaken == 2


def test_the_newest_unconfirmed_item_is_probed_alone_with_backoff(tmp_path: Path) -> None:
    """Lost just before a quiet spell: nothing later is confirmed, so the newest item asks again."""
    box = learnt(tmp_path / "o.db")
    ids = box.put_many([(Lane.ALERTS, "alerts", alert(f"e{i}")) for i in range(3)])
    box.ack(ids, now=0.0)
    assert box.oldest_unconfirmed_age(now=5.0) == 5.0
    assert not box.requeue_lost(grace_s=10, probe_s=15, now=14.0)
    requeued = box.requeue_lost(grace_s=10, probe_s=15, now=16.0)
    assert requeued.probed == 1 and requeued.overtaken == 0
    assert [i.id for i in box.peek(10)] == [ids[2]]  # only the newest, not the backlog
    box.ack([ids[2]], now=20.0)  # sent again: its next probe waits 30 s, and no other item is probed
    assert not box.requeue_lost(grace_s=10, probe_s=15, now=49.0)
    assert box.requeue_lost(grace_s=10, probe_s=15, now=51.0).probed == 1
    box.ack([ids[2]], now=51.0)
    # central answers the probe: everything sent before it is overtaken, then sent again
    box.confirm(["alerts:e2"], now=60.0)
    assert box.requeue_lost(grace_s=10, probe_s=15, now=70.0).overtaken == 2
    assert [i.id for i in box.peek(10)] == ids[:2]
    assert box.requeued_probes == 2 and box.requeued_overtaken == 2


def test_waiting_items_the_mode_and_the_send_order_survive_reopening(tmp_path: Path) -> None:
    box = learnt(tmp_path / "o.db")
    ids = box.put_many([(Lane.ALERTS, "alerts", alert(f"e{i}")) for i in range(3)])
    box.ack(ids)
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert again.confirms and again.awaiting_confirmation()["alerts"] == 3 and again.peek(10) == []
    new = again.put(Lane.ALERTS, "alerts", alert("e3"))
    again.ack([new])  # numbered after the three sent before the restart
    again.confirm(["alerts:e3"], now=0.0)
    assert again.requeue_lost(grace_s=0, probe_s=1e9, now=1.0).overtaken == 3


def test_an_outbox_from_before_confirmations_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, lane INTEGER NOT NULL, topic TEXT NOT NULL,
                            payload BLOB NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL);
        CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB NOT NULL);
        """
    )
    db.execute(
        "INSERT INTO items (lane, topic, payload, size, created) VALUES (0, 'alerts', ?, 24, 0)",
        (b'{"event_id":"old"}',),
    )
    db.commit()
    db.close()
    box = Outbox(path)
    (item,) = box.peek(10)
    assert item.payload == b'{"event_id":"old"}' and not box.confirms
    box.confirm([])
    box.ack([item.id])  # an item stored before the upgrade has no key: deleted on PUBACK, as it was sent
    assert len(box) == 0


def test_a_full_outbox_sheds_telemetry_not_waiting_alerts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=4000, telemetry_share=0.5)
    box.confirm([])
    ids = box.put_many([(Lane.ALERTS, "alerts", alert(f"e{i:03d}") + b" " * 100) for i in range(40)])
    box.ack(ids)
    box.put_many([(Lane.TELEMETRY, "telemetry", b"t" * 100) for _ in range(5)])
    assert box.awaiting_confirmation()["alerts"] == 40 and box.depth()["telemetry"] == 0
    assert box.telemetry_dropped == 5


# -- the key both ends agree on ------------------------------------------------------------------
@given(st.text(min_size=1, max_size=40))
def test_the_fast_key_equals_the_parsed_key_for_any_id(event_id: str) -> None:
    for kind in ("alerts", "events", "devices"):
        for payload in (
            json.dumps({"event_id": event_id, "x": 1}, separators=(",", ":"), ensure_ascii=False).encode(),
            json.dumps({"event_id": event_id}, ensure_ascii=True).encode(),
            json.dumps({"x": [1, {"event_id": "inner"}], "event_id": event_id}).encode(),
        ):
            assert confirm_key(kind, payload) == key_of_body(kind, payload) == f"{kind}:{event_id}"
    result = json.dumps({"request_id": event_id, "ok": True}, separators=(",", ":"), ensure_ascii=False).encode()
    assert confirm_key("cmd_result", result) == f"cmd_result:{event_id}"


def test_what_has_no_key_is_not_confirmed() -> None:
    assert confirm_key("telemetry", alert("e1")) is None
    assert confirm_key("heartbeat", b"{}") is None
    assert confirm_key("alerts", b"not json") is None
    assert confirm_key("alerts", b'{"event_id": 5}') is None
    assert confirm_key("alerts/extra", alert("e1")) is None
    assert confirm_key("snapshots", b"") is None
    assert confirm_key(f"snapshots/{SHA}", b"jpeg") == f"snapshots:{SHA}"


def test_the_key_of_a_real_alert_body_is_its_event_id() -> None:
    body = transition(FakeClock())
    assert confirm_key("alerts", body.model_dump_json().encode()) == f"alerts:{body.event_id}"
    assert ConfirmCmd(alerts=[body.event_id]).keys() == [f"alerts:{body.event_id}"]
