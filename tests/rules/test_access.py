from __future__ import annotations

from datetime import datetime
from typing import Any

from gridwatch.contract import AccessReading

from . import at, demo_engine, of, tick_until


def acc(event: str, when: datetime, door: str = "D-W1-STAFF", device: str = "acc-w1-staff", **kw: Any) -> AccessReading:
    return AccessReading.model_validate({"device": device, "ts": when, "door": door, "event": event, **kw})


def test_door_open_without_grant_is_forced_high() -> None:
    engine = demo_engine()
    [t] = engine.on_readings([acc("door_open", at(0))], at(0))
    assert (t.rule, t.level, t.subject.kind, t.subject.id, t.zone, t.area) == (
        "access.door_forced",
        "high",
        "door",
        "D-W1-STAFF",
        "w1-staff",
        "ward-1",
    )


def test_door_open_after_a_grant_is_not_forced_but_after_the_grant_window_is() -> None:
    engine = demo_engine()
    assert engine.on_readings([acc("granted", at(0), card="1001"), acc("door_open", at(10))], at(10)) == []
    engine.on_readings([acc("door_closed", at(12))], at(12))
    engine2 = demo_engine()
    out = engine2.on_readings([acc("granted", at(0), card="1001"), acc("door_open", at(10.5))], at(10.5))
    assert [t.rule for t in out] == ["access.door_forced"]


def test_door_held_after_threshold_and_clears_when_door_closes() -> None:
    engine = demo_engine()
    engine.on_readings([acc("granted", at(0), card="1"), acc("door_open", at(1))], at(1))
    assert of(tick_until(engine, at(2), at(30)), "access.door_held") == []  # open 29 s
    [held] = of(engine.on_tick(at(31)), "access.door_held")
    assert (held.rule, held.level, held.state) == ("access.door_held", "medium", "active")
    assert of(tick_until(engine, at(32), at(60)), "access.door_held") == []
    [cleared] = of(engine.on_readings([acc("door_closed", at(61))], at(61)), "access.door_held")
    assert (cleared.rule, cleared.state, cleared.alert_id) == ("access.door_held", "cleared", held.alert_id)


def test_door_config_overrides_held_after() -> None:
    engine = demo_engine("edge-w2")
    engine.on_readings(
        [
            acc("granted", at(0), door="D-CTRL", device="acc-ctrl", card="1"),
            acc("door_open", at(0), door="D-CTRL", device="acc-ctrl"),
        ],
        at(0),
    )
    assert of(tick_until(engine, at(1), at(14)), "access.door_held") == []
    assert [t.level for t in of(engine.on_tick(at(15)), "access.door_held")] == ["medium"]


def test_denied_burst_needs_three_denials_within_a_minute() -> None:
    engine = demo_engine()
    assert engine.on_readings([acc("denied", at(0), card="9"), acc("denied", at(30), card="9")], at(30)) == []
    assert engine.on_readings([acc("denied", at(61), card="9")], at(61)) == []  # the first fell out of the window
    [t] = engine.on_readings([acc("denied", at(62), card="9")], at(62))
    assert (t.rule, t.level, t.detail["denials"]) == ("access.denied_burst", "medium", 3)


def test_grant_outside_the_door_schedule_is_after_hours() -> None:
    engine = demo_engine()
    inside = at(0)  # Monday 10:00: the workshop gate is mon-fri 07:30-17:30
    assert engine.on_readings([acc("granted", inside, door="D-W1-WORK", device="acc-w1-work", card="5")], inside) == []
    night = inside.replace(hour=22)
    [t] = engine.on_readings([acc("granted", night, door="D-W1-WORK", device="acc-w1-work", card="5")], night)
    assert (t.rule, t.level, t.subject.id) == ("access.after_hours", "low", "D-W1-WORK")
    assert "22:00" in t.title


def test_anti_passback_same_card_in_twice_in_a_door_group() -> None:
    engine = demo_engine()
    door = {"door": "D-W1-CELL", "device": "acc-w1-cell"}
    assert (
        engine.on_readings(
            [
                acc("granted", at(0), card="77", direction="in", **door),
                acc("granted", at(5), card="77", direction="out", **door),
                acc("granted", at(9), card="77", direction="in", **door),
            ],
            at(9),
        )
        == []
    )
    [t] = engine.on_readings([acc("granted", at(20), card="77", direction="in", **door)], at(20))
    assert (t.rule, t.level, t.detail["card"]) == ("access.anti_passback", "medium", "77")


def test_doors_of_the_other_edge_are_ignored() -> None:
    engine = demo_engine()
    assert engine.on_readings([acc("door_open", at(0), door="D-CTRL", device="acc-ctrl")], at(0)) == []
