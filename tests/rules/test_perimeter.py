from __future__ import annotations

from edge.rules import RuleEngine
from edge.vision_types import CameraObservation
from gridwatch.contract import ArmCmd, WalkTestCmd

from . import at, beam, demo_engine, demo_site, of, small_site, tick_until


def test_single_beam_break_raises_medium_intrusion_with_zone_name() -> None:
    engine = demo_engine()
    out = engine.on_readings([beam("ir-n-02", at(0))], at(0))
    [t] = of(out, "perimeter.intrusion")
    assert (t.level, t.state, t.zone, t.area) == ("medium", "active", "perim-north", None)
    assert t.subject.kind == "zone" and t.subject.id == "perim-north"
    assert "North fence" in t.title and "1 beam" in t.title
    assert t.site == "demo-prison" and t.edge == "edge-w1" and "ir-n-02" in t.devices


def test_second_beam_within_correlation_raises_same_alert_to_high() -> None:
    engine = demo_engine()
    first = of(engine.on_readings([beam("ir-n-02", at(0))], at(0)), "perimeter.intrusion")[0]
    out = of(engine.on_readings([beam("ir-n-03", at(4.9))], at(4.9)), "perimeter.intrusion")
    assert [(t.level, t.alert_id) for t in out] == [("high", first.alert_id)]
    assert "2 beams" in out[0].title and out[0].event_id != first.event_id


def test_second_beam_just_outside_correlation_stays_medium() -> None:
    engine = demo_engine()
    engine.on_readings([beam("ir-n-02", at(0))], at(0))
    out = engine.on_readings([beam("ir-n-03", at(5.1))], at(5.1))
    assert of(out, "perimeter.intrusion") == []  # still the same medium alert, no transition
    assert [a.level for a in engine.active_alerts() if a.rule == "perimeter.intrusion"] == ["medium"]


def test_beam_in_neighbouring_zone_correlates() -> None:
    engine = demo_engine()
    assert engine.on_readings([beam("ir-w-01", at(0))], at(0)) == []  # west fence disarmed by day
    out = engine.on_readings([beam("ir-n-01", at(2))], at(2))
    assert [t.level for t in of(out, "perimeter.intrusion")] == ["high"]


def test_disarmed_zone_raises_nothing_and_armed_schedule_fires() -> None:
    engine = demo_engine()
    assert engine.on_readings([beam("ir-w-02", at(0))], at(0)) == []  # 10:00, armed 18:00-07:00
    night = at(0).replace(hour=20)
    assert [t.zone for t in engine.on_readings([beam("ir-w-02", night)], night)] == ["perim-west"]


def test_zone_threshold_overrides_correlation_window() -> None:
    engine = demo_engine()
    night = at(0).replace(hour=20)
    engine.on_readings([beam("ir-w-01", night)], night)
    out = engine.on_readings([beam("ir-w-02", at(7, night))], at(7, night))  # west fence: correlation_s 8
    assert [t.level for t in of(out, "perimeter.intrusion")] == ["high"]


def test_intrusion_clears_after_quiet_period_and_then_starts_a_new_alert() -> None:
    engine = demo_engine()
    first = engine.on_readings([beam("ir-n-01", at(0))], at(0))[0]
    assert tick_until(engine, at(1), at(9.5), step=0.5) == []
    [cleared] = engine.on_tick(at(10))
    assert (cleared.state, cleared.alert_id) == ("cleared", first.alert_id)
    again = engine.on_readings([beam("ir-n-01", at(20))], at(20))[0]
    assert again.state == "active" and again.alert_id != first.alert_id


def test_levels_only_go_up() -> None:
    engine = demo_engine()
    engine.on_readings([beam("ir-n-01", at(0)), beam("ir-n-02", at(1))], at(1))
    out = engine.on_readings([beam("ir-n-03", at(8))], at(8))  # a lone break later: would be medium
    assert of(out, "perimeter.intrusion") == []
    assert [a.level for a in engine.active_alerts() if a.rule == "perimeter.intrusion"] == ["high"]


def test_tamper_and_fault_from_detector_state() -> None:
    engine = demo_engine()
    readings = [beam("ir-n-01", at(0), state="tamper"), beam("ir-n-02", at(0), state="low_battery")]
    out = engine.on_readings(readings, at(0))
    assert [(t.rule, t.level, t.subject.id) for t in out] == [
        ("perimeter.tamper", "high", "ir-n-01"),
        ("perimeter.fault", "medium", "ir-n-02"),
    ]
    assert engine.on_readings([beam("ir-n-01", at(1), state="normal")], at(1)) == []
    assert tick_until(engine, at(2), at(9)) == []
    assert {(t.rule, t.state) for t in engine.on_tick(at(10))} == {
        ("perimeter.tamper", "cleared"),
        ("perimeter.fault", "cleared"),
    }


def test_manual_disarm_and_arm_override() -> None:
    engine = demo_engine()
    result, _ = engine.on_command("arm", ArmCmd(request_id="r1", zone="perim-north", armed=False), at(0))
    assert result.ok and result.result == {"zone": "perim-north", "armed": False}
    assert engine.on_readings([beam("ir-n-01", at(1))], at(1)) == []
    engine.on_command("arm", ArmCmd(request_id="r2", zone="perim-west", armed=True), at(2))
    assert [t.zone for t in engine.on_readings([beam("ir-w-01", at(3))], at(3))] == ["perim-west"]
    refused, _ = engine.on_command("arm", ArmCmd(request_id="r3", zone="perim-east", armed=True), at(4))
    assert not refused.ok  # served by the other edge


def test_manual_arm_override_ends_when_the_schedule_changes() -> None:
    engine = demo_engine()
    engine.on_command("arm", ArmCmd(request_id="r", zone="perim-west", armed=True), at(0))
    evening = at(0).replace(hour=18, minute=30)  # the schedule arms it itself now
    engine.on_tick(evening)
    morning = at(24 * 3600).replace(hour=8)  # next day: the schedule disarmed it, the override is gone
    assert engine.on_readings([beam("ir-w-01", morning)], morning) == []


def test_walk_test_marks_transitions_suppressed() -> None:
    engine = demo_engine()
    cmd = WalkTestCmd(request_id="w", zone="perim-north", until=at(600))
    assert engine.on_command("walk_test", cmd, at(0))[0].ok
    [t] = engine.on_readings([beam("ir-n-01", at(1))], at(1))
    assert t.suppressed == "walk_test" and t.detail["walk_test"] is True
    engine.on_tick(at(700))
    [later] = engine.on_readings([beam("ir-n-01", at(701))], at(701))
    assert later.suppressed is None


def test_camera_motion_raises_intrusion_to_high_and_takes_a_snapshot() -> None:
    snaps: list[str] = []

    def snapshotter(camera: str) -> str:
        snaps.append(camera)
        return "a" * 64

    engine = RuleEngine(demo_site(), "edge-w1", snapshotter=snapshotter)
    first = engine.on_readings([beam("ir-n-01", at(0))], at(0))[0]
    assert first.snapshot == "a" * 64 and snaps == ["cam-n-1"]
    out = []
    for k in range(3):
        when = at(1 + k * 0.2)
        obs = CameraObservation(ts=when, frame_no=k, video_ok=True, motion_fraction=0.02, motion=True, tamper=None)
        out += engine.on_camera("cam-n-1", obs, when)
    intrusion = of(out, "perimeter.intrusion")
    assert [(t.level, t.alert_id) for t in intrusion] == [("high", first.alert_id)]
    assert "cam-n-1" in intrusion[0].devices
    assert [t.rule for t in of(out, "camera.motion")] == ["camera.motion"]


def test_disabled_rule_and_level_override() -> None:
    site = small_site(
        zones=[{"id": "p1", "name": "Fence", "kind": "perimeter", "polygon": [[0, 0], [10, 0], [10, 1]]}],
        devices=[{"id": "ir1", "family": "perimeter_ir", "zone": "p1"}],
        rules={"perimeter.intrusion": {"level": "high"}, "perimeter.tamper": {"enabled": False}},
    )
    engine = RuleEngine(site, "e1")
    out = engine.on_readings([beam("ir1", at(0)), beam("ir1", at(0), state="tamper")], at(0))
    assert [(t.rule, t.level) for t in out] == [("perimeter.intrusion", "high")]
