from __future__ import annotations

from datetime import datetime
from typing import Any

from edge.rules import RuleEngine
from gridwatch.contract import VitalsReading, WristbandEventReading

from . import at, demo_engine, of, small_site, tick_until


def vitals(when: datetime, band: str = "W-0001", device: str = "wb-w1", **kw: Any) -> VitalsReading:
    return VitalsReading.model_validate({"device": device, "ts": when, "band": band, **kw})


def event(when: datetime, name: str, band: str = "W-0001") -> WristbandEventReading:
    return WristbandEventReading.model_validate({"device": "wb-w1", "ts": when, "band": band, "event": name})


def test_sos_and_fall_are_high_and_clear_after_quiet_period() -> None:
    engine = demo_engine()
    out = engine.on_readings([event(at(0), "sos"), event(at(0), "fall")], at(0))
    assert [(t.rule, t.level, t.subject.id, t.grid) for t in out] == [
        ("wristband.sos", "high", "P-0001", "w1-g1"),
        ("wristband.fall", "high", "P-0001", "w1-g1"),
    ]
    assert of(engine.on_tick(at(9)), "wristband.sos") == []
    assert [t.state for t in of(engine.on_tick(at(10)), "wristband.sos")] == ["cleared"]


def test_strap_open_stays_active_until_closed() -> None:
    engine = demo_engine()
    [t] = engine.on_readings([event(at(0), "strap_open")], at(0))
    assert (t.rule, t.level) == ("wristband.strap_open", "high")
    assert of(tick_until(engine, at(1), at(60)), "wristband.strap_open") == []  # still open: no clear
    engine.on_readings([vitals(at(61), strap="closed")], at(61))
    assert of(engine.on_tick(at(70)), "wristband.strap_open") == []
    assert [x.state for x in of(engine.on_tick(at(71)), "wristband.strap_open")] == ["cleared"]


def _hr_for(engine: RuleEngine, hr: float, seconds: int) -> list[Any]:
    out = []
    for s in range(seconds + 1):
        out += engine.on_readings([vitals(at(s), hr=hr)], at(s)) + engine.on_tick(at(s))
    return of(out, "wristband.heart_rate")


def test_heart_rate_out_of_range_for_thirty_seconds_is_medium() -> None:
    assert _hr_for(demo_engine(), 155, 29) == []
    [t] = _hr_for(demo_engine(), 155, 30)
    assert t.level == "medium" and "155" in t.title
    assert _hr_for(demo_engine(), 150, 60) == []  # 150 is still in range


def test_heart_rate_critical_is_high_and_levels_only_go_up() -> None:
    engine = demo_engine()
    [medium] = _hr_for(engine, 160, 30)
    out = []
    for s in range(31, 35):
        out += engine.on_readings([vitals(at(s), hr=185)], at(s)) + engine.on_tick(at(s))
    [high] = of(out, "wristband.heart_rate")
    assert (high.level, high.alert_id) == ("high", medium.alert_id)
    out = []
    for s in range(35, 40):
        out += engine.on_readings([vitals(at(s), hr=160)], at(s)) + engine.on_tick(at(s))
    assert of(out, "wristband.heart_rate") == []  # back to "medium" values: no downgrade


def test_temperature_for_sixty_seconds_is_low() -> None:
    engine = demo_engine()
    out = []
    for s in range(0, 61):
        out += engine.on_readings([vitals(at(s), temp=38.6)], at(s)) + engine.on_tick(at(s))
        if s == 59:
            assert of(out, "wristband.temperature") == []
    [t] = of(out, "wristband.temperature")
    assert t.level == "low"
    engine.on_readings([vitals(at(61), temp=38.4)], at(61))
    assert [x.state for x in of(tick_until(engine, at(62), at(71)), "wristband.temperature")] == ["cleared"]


def test_battery_low_from_band() -> None:
    engine = demo_engine()
    [t] = engine.on_readings([vitals(at(0), bat=15)], at(0))
    assert (t.rule, t.level, t.subject.id) == ("device.low_battery", "low", "W-0001")
    assert demo_engine().on_readings([vitals(at(0), bat=16)], at(0)) == []


# about 111 m per 0.001 degree of latitude near 31 N
HOME = [[31.000, 121.000], [31.000, 121.002], [31.002, 121.002], [31.002, 121.000]]
NO_GO = [[31.010, 121.010], [31.010, 121.012], [31.012, 121.012], [31.012, 121.010]]
COUNTY = [[30.990, 120.990], [30.990, 121.020], [31.020, 121.020], [31.020, 120.990]]


def gps_site() -> RuleEngine:
    site = small_site(
        zones=[
            {"id": "home", "kind": "inclusion", "gps_polygon": COUNTY},
            {"id": "flat", "kind": "yard", "gps_polygon": HOME},
            {"id": "school", "name": "School", "kind": "exclusion", "gps_polygon": NO_GO},
        ],
        devices=[{"id": "gw", "family": "wristband"}],
        people=[{"id": "C1", "role": "supervisee", "band": "B1", "home_zone": "flat", "curfew": "22:00-06:00"}],
    )
    return RuleEngine(site, "e1")


def fix(when: datetime, lat: float, lon: float, acc: float = 5) -> VitalsReading:
    return vitals(when, band="B1", device="gw", gps={"lat": lat, "lon": lon, "acc_m": acc})


def test_geofence_exclusion_and_inclusion_are_accuracy_aware() -> None:
    engine = gps_site()
    [t] = engine.on_readings([fix(at(0), 31.011, 121.011)], at(0))  # middle of the school
    assert (t.rule, t.level, t.subject.id) == ("wristband.geofence", "high", "C1") and "School" in t.title
    engine2 = gps_site()
    assert engine2.on_readings([fix(at(0), 31.011, 121.011, acc=500)], at(0)) == []  # could be outside
    # 0.0005 deg (~55 m) outside the county line: fires with 10 m accuracy, not with 100 m
    assert [x.rule for x in gps_site().on_readings([fix(at(0), 31.0205, 121.0)], at(0))] == ["wristband.geofence"]
    assert gps_site().on_readings([fix(at(0), 31.0205, 121.0, acc=100)], at(0)) == []


def test_curfew_outside_home_zone_during_curfew_hours() -> None:
    engine = gps_site()
    assert engine.on_readings([fix(at(0), 31.005, 121.005)], at(0)) == []  # 10:00, no curfew
    night = at(0).replace(hour=23)
    [t] = engine.on_readings([fix(night, 31.005, 121.005)], night)
    assert (t.rule, t.level) == ("wristband.curfew", "medium")
    assert engine.on_readings([fix(at(1, night), 31.001, 121.001)], at(1, night)) == []  # home
    assert [x.state for x in of(engine.on_tick(at(11, night)), "wristband.curfew")] == ["cleared"]
