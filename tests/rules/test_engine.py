from __future__ import annotations

import json
from pathlib import Path

from edge.rules import RuleEngine
from gridwatch.contract import ArmCmd, MaintenanceCmd, RollcallCmd, WalkTestCmd

from . import at, beam, demo_engine, demo_site, of, small_site, tick_until


def test_state_round_trip_keeps_alert_ids_and_controls(tmp_path: Path) -> None:
    path = tmp_path / "rules" / "state.json"
    engine = demo_engine(state_path=path)
    [first] = engine.on_readings([beam("ir-n-01", at(0), state="tamper")], at(0))
    engine.on_command("arm", ArmCmd(request_id="a", zone="perim-north", armed=False), at(0))
    engine.on_command("maintenance", MaintenanceCmd(request_id="m", device="ir-n-02", until=at(600)), at(0))
    engine.on_command("walk_test", WalkTestCmd(request_id="w", zone="perim-west", until=at(600)), at(0))
    engine.save()
    assert json.loads(path.read_text())["version"] == 1 and not path.with_name("state.json.tmp").exists()

    again = RuleEngine(demo_site(), "edge-w1", state_path=path)
    assert [(a.alert_id, a.rule, a.level) for a in again.active_alerts()] == [
        (first.alert_id, "perimeter.tamper", "high")
    ]
    assert again.on_readings([beam("ir-n-01", at(1))], at(1)) == []  # still manually disarmed
    [t] = again.on_readings([beam("ir-n-02", at(2), state="tamper")], at(2))
    assert t.suppressed == "out_of_service"
    [w] = again.on_readings([beam("ir-w-01", at(3))], at(3))  # disarmed by day, but in walk test
    assert w.suppressed == "walk_test"
    # the same condition again keeps the alert id; silence clears it a quiet period after the first tick
    assert again.on_readings([beam("ir-n-01", at(4), state="tamper")], at(4)) == []
    cleared = of(tick_until(again, at(5), at(15)), "perimeter.tamper", "cleared")
    assert [c.alert_id for c in cleared if c.subject.id == "ir-n-01"] == [first.alert_id]


def test_unreadable_state_starts_clean(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    assert demo_engine(state_path=path).active_alerts() == []


def test_flood_groups_transitions_and_releases_them_after_the_minute() -> None:
    site = small_site(
        zones=[{"id": "p1", "name": "Fence", "kind": "perimeter", "polygon": [[0, 0], [10, 0], [10, 1]]}],
        devices=[{"id": f"ir{i}", "family": "perimeter_ir", "zone": "p1"} for i in range(14)],
    )
    engine = RuleEngine(site, "e1")
    out = []
    for i in range(14):
        out += engine.on_readings([beam(f"ir{i}", at(i), state="tamper")], at(i))
    assert len(of(out, "perimeter.tamper")) == 10
    [flood] = of(out, "system.flood")
    assert (flood.zone, flood.subject.id, flood.detail["rule"]) == ("p1", "p1", "perimeter.tamper")
    assert "Fence" in flood.title
    held = of(tick_until(engine, at(14), at(69)), "perimeter.tamper", "active")
    assert held == []
    released = engine.on_tick(at(70))
    assert [t.subject.id for t in of(released, "perimeter.tamper", "active")] == [f"ir{i}" for i in range(10, 14)]
    [end] = of(released, "system.flood")
    # held: the 4 activations over the limit plus the 14 quiet-period clears that fell in the minute
    assert end.alert_id == flood.alert_id and end.detail["held"] == 18
    assert len(of(released, "perimeter.tamper", "cleared")) == 14


def test_ten_transitions_a_minute_are_not_a_flood() -> None:
    site = small_site(
        zones=[{"id": "p1", "name": "Fence", "kind": "perimeter", "polygon": [[0, 0], [10, 0], [10, 1]]}],
        devices=[{"id": f"ir{i}", "family": "perimeter_ir", "zone": "p1"} for i in range(10)],
    )
    engine = RuleEngine(site, "e1")
    out = engine.on_readings([beam(f"ir{i}", at(0), state="tamper") for i in range(10)], at(0))
    assert len(out) == 10 and of(out, "system.flood") == []


def test_unknown_command_and_foreign_grid_are_refused() -> None:
    engine = demo_engine()
    result, out = engine.on_command("reboot", ArmCmd(request_id="x", zone="perim-north", armed=True), at(0))
    assert not result.ok and out == []
    result, _ = engine.on_command("rollcall", RollcallCmd(request_id="y", grid="w2-g1"), at(0))
    assert not result.ok and result.request_id == "y"
