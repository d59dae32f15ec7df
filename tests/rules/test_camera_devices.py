from __future__ import annotations

from datetime import datetime

from edge.vision_types import CameraObservation
from gridwatch.contract import MaintenanceCmd, StatusReading

from . import at, beam, demo_engine, of, tick_until


def frame(when: datetime, k: int, motion: float = 0.0, ok: bool = True, tamper: str | None = None) -> CameraObservation:
    return CameraObservation(
        ts=when, frame_no=k, video_ok=ok, motion_fraction=motion, motion=motion >= 0.005, tamper=tamper
    )  # type: ignore[arg-type]


def test_camera_motion_needs_three_consecutive_frames() -> None:
    engine = demo_engine()
    out = []
    for k, m in enumerate([0.01, 0.01, 0.0, 0.01, 0.01]):
        out += engine.on_camera("cam-w1-yard", frame(at(k * 0.2), k, m), at(k * 0.2))
    assert of(out, "camera.motion") == []
    [t] = engine.on_camera("cam-w1-yard", frame(at(1), 5, 0.006), at(1))
    assert (t.rule, t.level, t.subject.id, t.zone, t.area) == (
        "camera.motion",
        "medium",
        "cam-w1-yard",
        "w1-yard",
        "ward-1",
    )
    engine.on_camera("cam-w1-yard", frame(at(2), 6, 0.004), at(2))  # below min_area_fraction
    assert [x.state for x in of(tick_until(engine, at(3), at(12)), "camera.motion")] == ["cleared"]


def test_camera_tamper_is_high() -> None:
    [t] = demo_engine().on_camera("cam-n-1", frame(at(0), 1, tamper="covered"), at(0))
    assert (t.rule, t.level, t.detail["tamper"]) == ("camera.tamper", "high", "covered")


def test_video_loss_after_ten_seconds() -> None:
    engine = demo_engine()
    out = []
    for s in range(0, 10):
        out += engine.on_camera("cam-n-1", frame(at(s), s, ok=False), at(s)) + engine.on_tick(at(s))
    assert of(out, "camera.video_loss") == []
    [t] = of(engine.on_camera("cam-n-1", frame(at(10), 10, ok=False), at(10)), "camera.video_loss")
    assert t.level == "medium"
    engine.on_camera("cam-n-1", frame(at(11), 11), at(11))
    assert [x.state for x in of(tick_until(engine, at(12), at(21)), "camera.video_loss")] == ["cleared"]


def test_device_offline_after_three_silent_intervals() -> None:
    engine = demo_engine()
    engine.on_tick(at(0))
    assert of(tick_until(engine, at(1), at(14)), "device.offline") == []
    out = of(engine.on_tick(at(15)), "device.offline")  # rtls gateways: expected every 5 s
    assert [(t.subject.id, t.level) for t in out] == [("rtls-w1", "medium")]
    later = of(tick_until(engine, at(16), at(180)), "device.offline")
    levels = {t.subject.id: t.level for t in later}
    assert levels["ir-n-01"] == "high" and levels["wb-w1"] == "medium"  # perimeter detectors are high
    assert "ir-e-01" not in levels  # served by the other edge


def test_status_offline_is_immediate_and_online_clears() -> None:
    engine = demo_engine()
    offline = StatusReading.model_validate({"device": "acc-w1-cell", "ts": at(0), "online": False})
    [t] = engine.on_readings([offline], at(0))
    assert (t.rule, t.subject.id, t.level) == ("device.offline", "acc-w1-cell", "medium")
    online = StatusReading.model_validate({"device": "acc-w1-cell", "ts": at(5), "online": True})
    engine.on_readings([online], at(5))
    assert [x.state for x in of(tick_until(engine, at(6), at(15)), "device.offline")] == ["cleared"]


def test_out_of_service_device_alerts_are_marked_suppressed() -> None:
    engine = demo_engine()
    result, _ = engine.on_command(
        "maintenance", MaintenanceCmd(request_id="m", device="ir-n-01", until=at(3600), reason="lens swap"), at(0)
    )
    assert result.ok and result.result["out_of_service"] is True
    [t] = engine.on_readings([beam("ir-n-01", at(1), state="tamper")], at(1))
    assert t.suppressed == "out_of_service"
    engine.on_command("maintenance", MaintenanceCmd(request_id="m2", device="ir-n-01", until=None), at(2))
    [t2] = engine.on_readings([beam("ir-n-02", at(3), state="tamper")], at(3))
    assert t2.suppressed is None
