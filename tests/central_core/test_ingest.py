"""Idempotent ingest by event_id, alert updates, filters and cursor pagination, queries."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta

import pytest

from central.service import CentralService, WorkflowError
from gridwatch.clock import FakeClock
from gridwatch.contract.base import new_event_id
from gridwatch.contract.enums import Condition, Level
from gridwatch.contract.uplink import CmdResult, DeviceEvent, DevicesBody, EventsBody, TelemetryBody, TelemetryPoint

from .conftest import OPERATOR, transition


def test_alert_ingest_is_idempotent_by_event_id(service: CentralService, clock: FakeClock) -> None:
    t = transition(clock)
    assert service.ingest_alert("edge-a", t) is True
    assert service.ingest_alert("edge-a", t) is False
    assert len(service.get_alert("a1")["transitions"]) == 1


def test_concurrent_duplicate_ingest_stores_once(service: CentralService, clock: FakeClock) -> None:
    t = transition(clock)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(service.ingest_alert("edge-a", t))) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == [False] * 5 + [True]


def test_later_transition_raises_level_never_lowers_and_updates(service: CentralService, clock: FakeClock) -> None:
    first = clock.now()
    service.ingest_alert("edge-a", transition(clock, level=Level.MEDIUM))
    service.ingest_alert(
        "edge-a",
        transition(
            clock, level=Level.HIGH, ts=clock.advance(2), first_seen=first, detail={"beams": 2}, snapshot="a" * 64
        ),
    )
    item = service.ingest_alert(
        "edge-a", transition(clock, level=Level.LOW, state=Condition.CLEARED, ts=clock.advance(10), first_seen=first)
    )
    assert item
    got = service.get_alert("a1")
    assert got["level"] == "high" and got["condition"] == "cleared" and got["snapshot"] == "a" * 64
    assert got["first_seen"] == first.isoformat() and got["last_change"] == clock.now().isoformat()
    # an older transition arriving late does not re-activate it
    service.ingest_alert("edge-a", transition(clock, ts=first + timedelta(seconds=1), first_seen=first))
    assert service.get_alert("a1")["condition"] == "cleared"
    assert len(service.get_alert("a1")["transitions"]) == 4


def test_filters_and_cursor_pagination(service: CentralService, clock: FakeClock) -> None:
    for i in range(7):
        level = Level.HIGH if i % 2 else Level.LOW
        service.ingest_alert(
            "edge-a", transition(clock, f"a{i}", level=level, rule="access.door_held", zone="yard", subject=f"d{i}")
        )
        if i == 3:
            # two alerts with the same last_change: the id breaks the tie
            service.ingest_alert("edge-a", transition(clock, "a3b", level=level, zone="yard", subject="dx"))
        clock.advance(1)
    seen: list[str] = []
    cursor = None
    while True:
        items, cursor = service.list_alerts(limit=3, cursor=cursor)
        seen += [i["id"] for i in items]
        if cursor is None:
            break
    assert seen == ["a6", "a5", "a4", "a3b", "a3", "a2", "a1", "a0"]
    highs, _ = service.list_alerts(level="high")
    assert [i["id"] for i in highs] == ["a5", "a3b", "a3", "a1"]
    window, _ = service.list_alerts(since=clock.now() - timedelta(seconds=3), until=clock.now() - timedelta(seconds=1))
    assert [i["id"] for i in window] == ["a5", "a4"]
    service.ack("a5", OPERATOR)
    acked, _ = service.list_alerts(state="acknowledged")
    assert [i["id"] for i in acked] == ["a5"]
    assert [i["id"] for i in service.list_alerts(rule="perimeter.intrusion")[0]] == ["a3b"]
    assert service.list_alerts(area="nowhere")[0] == []
    assert len(service.list_alerts(condition="active")[0]) == 8
    keys = {
        "id",
        "rule",
        "level",
        "condition",
        "workflow",
        "site",
        "area",
        "grid",
        "zone",
        "subject",
        "devices",
        "title",
        "first_seen",
        "last_change",
        "snapshot",
        "escalated_to",
        "detail",
        "suppressed",
    }
    assert keys <= set(highs[0])
    for bad in ({"level": "huge"}, {"limit": 0}, {"cursor": "!!notacursor"}, {"state": "gone"}):
        with pytest.raises(WorkflowError) as err:
            service.list_alerts(**bad)  # type: ignore[arg-type]
        assert err.value.status == 422


def test_events_devices_snapshots_and_evidence(service: CentralService, clock: FakeClock) -> None:
    body = EventsBody(
        event_id=new_event_id(),
        batch=(
            DeviceEvent(ts=clock.now() - timedelta(seconds=30), device="ir-n-1", kind="beam_break", data={"beam": 1}),
            DeviceEvent(ts=clock.now() - timedelta(seconds=300), device="ir-n-1", kind="beam_break", data={"beam": 2}),
        ),
    )
    assert service.ingest_events("edge-a", body) and not service.ingest_events("edge-a", body)
    jpeg = b"\xff\xd8fake-jpeg\xff\xd9"
    sha = hashlib.sha256(jpeg).hexdigest()
    assert not service.ingest_snapshot("edge-a", "0" * 64, jpeg)
    assert service.ingest_snapshot("edge-a", sha, jpeg) and not service.ingest_snapshot("edge-a", sha, jpeg)
    assert service.snapshot(sha) == jpeg and service.snapshot("1" * 64) is None
    service.ingest_alert("edge-a", transition(clock, snapshot=sha))
    evidence = service.get_alert("a1")["evidence"]
    assert [e["data"]["beam"] for e in evidence["events"]] == [1]
    assert evidence["snapshots"] == [{"sha256": sha, "ts": clock.now().isoformat(), "stored": True}]
    devices = DevicesBody(
        event_id=new_event_id(),
        ts=clock.now(),
        devices=(
            {"id": "ir-n-1", "family": "perimeter_ir", "online": True, "battery": 80.0, "dead_letters": 2},  # type: ignore[arg-type]
        ),
    )
    assert service.ingest_devices("edge-a", devices) and not service.ingest_devices("edge-a", devices)
    (dev,) = service.devices()
    assert dev["online"] is True and dev["battery"] == 80.0 and dev["dead_letters"] == 2 and dev["edge"] == "edge-a"


def test_positions_location_and_headcount(service: CentralService, clock: FakeClock) -> None:
    def pos(tag: str, x: float, y: float, seconds_ago: float) -> TelemetryPoint:
        return TelemetryPoint(
            m="position", tags={"tag": tag}, fields={"x": x, "y": y}, ts=clock.now() - timedelta(seconds=seconds_ago)
        )

    service.record_positions(
        "edge-a",
        TelemetryBody(
            event_id=new_event_id(),
            batch=(
                pos("t1", 5, 5, 2),
                pos("t1", 50, 50, 20),
                pos("t2", 60, 60, 1),
                TelemetryPoint(
                    m="gps", tags={"band": "b3"}, fields={"lat": 31.2, "lon": 121.4, "acc_m": 5}, ts=clock.now()
                ),
            ),
        ),
    )
    loc = service.person_location("p1")
    assert (loc["x"], loc["y"], loc["grid"], loc["tag"]) == (5.0, 5.0, "g1", "t1")
    assert service.person_location("p3")["lat"] == 31.2
    with pytest.raises(WorkflowError) as err:
        service.person_location("nobody")
    assert err.value.status == 404
    # an older batch does not move anyone back
    service.record_positions("edge-a", TelemetryBody(event_id=new_event_id(), batch=(pos("t1", 90, 90, 30),)))
    assert service.person_location("p1")["x"] == 5.0
    assert {p["person"] for p in service.positions()} == {"p1", "p2", "p3"}
    count = service.headcount("g1")
    assert (count["source"], count["present"], count["missing"], count["expected"]) == ("positions", 1, ["p2"], 2)
    service.register_command("rc-1", "rollcall", {"request_id": "rc-1", "grid": "g1"}, OPERATOR, edge="edge-a")
    service.ingest_cmd_result("edge-a", CmdResult(request_id="rc-1", ok=True, result={"present": ["p1", "p2"]}))
    count = service.headcount("g1")
    assert (count["source"], count["present"], count["missing"]) == ("rollcall", 2, [])
    with pytest.raises(WorkflowError) as err:
        service.headcount("g9")
    assert err.value.status == 404
