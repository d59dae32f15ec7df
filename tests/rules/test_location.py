from __future__ import annotations

import random
from datetime import datetime

import shapely

from edge.rules import RuleEngine
from gridwatch.contract import PositionsReading, RollcallCmd

from . import at, demo_engine, of, small_site, tick_until


def pos(when: datetime, *tags: tuple[str, float, float], device: str = "rtls-w1") -> PositionsReading:
    return PositionsReading.model_validate(
        {"device": device, "ts": when, "positions": [{"tag": t, "ts": when, "x": x, "y": y} for t, x, y in tags]}
    )


def test_inmate_in_staff_only_zone_is_high_and_staff_is_not() -> None:
    engine = demo_engine()
    out = engine.on_readings([pos(at(0), ("T-0001", 80, 50), ("T-S001", 80, 51))], at(0))
    [t] = of(out, "location.restricted_zone")
    assert (t.level, t.subject.id, t.zone, t.grid, t.area) == ("high", "P-0001", "w1-staff", "w1-g1", "ward-1")
    engine.on_readings([pos(at(1), ("T-0001", 30, 80))], at(1))  # back in the cell block
    assert of(tick_until(engine, at(2), at(10.5), step=0.5), "location.restricted_zone") == []
    [cleared] = of(engine.on_tick(at(11)), "location.restricted_zone")
    assert cleared.state == "cleared" and cleared.alert_id == t.alert_id


def test_out_of_grid_only_during_lock_in() -> None:
    engine = demo_engine()
    engine.on_readings([pos(at(0), ("T-0001", 30, 110))], at(0))  # yard, 10:00: no lock-in
    assert of(engine.on_tick(at(1)), "location.out_of_grid") == []
    noon = at(0).replace(hour=12, minute=30)
    engine.on_readings([pos(noon, ("T-0001", 30, 110), ("T-0002", 30, 80))], noon)
    [t] = of(engine.on_tick(noon), "location.out_of_grid")
    assert (t.level, t.subject.id, t.grid, t.zone) == ("medium", "P-0001", "w1-g1", "w1-yard")
    after = noon.replace(hour=13, minute=31)  # lock-in over: the condition is false, clears after 10 s
    engine.on_readings([pos(after, ("T-0001", 30, 110))], after)
    assert of(tick_until(engine, after, at(9, after)), "location.out_of_grid") == []
    assert [x.state for x in of(engine.on_tick(at(10, after)), "location.out_of_grid")] == ["cleared"]


def _crowd(n: int, when: datetime) -> PositionsReading:
    return pos(when, *[(f"T-{i:04d}", 30 + 0.3 * i, 110 + 0.2 * (i % 2)) for i in range(1, n + 1)])


def test_gathering_of_six_for_thirty_seconds() -> None:
    engine = demo_engine()
    out = []
    for s in range(0, 31):
        engine.on_readings([_crowd(6, at(s))], at(s))
        step = of(engine.on_tick(at(s)), "location.gathering")
        if s < 30:
            assert step == []
        out += step
    [t] = out
    assert (t.level, t.subject.kind, t.subject.id, t.detail["count"]) == ("medium", "zone", "w1-yard", 6)
    assert "Ward 1 yard" in t.title


def test_five_inmates_do_not_make_a_gathering() -> None:
    engine = demo_engine()
    for s in range(0, 40, 5):
        engine.on_readings([_crowd(5, at(s))], at(s))
        assert of(tick_until(engine, at(s), at(s + 4)), "location.gathering") == []


def test_stationary_outside_a_cell_for_twenty_minutes() -> None:
    engine = demo_engine()
    fired: list[float] = []
    for s in range(0, 1201, 10):
        engine.on_readings([pos(at(s), ("T-0001", 30, 110 + (0.1 if s % 20 else 0)), ("T-0002", 30, 80))], at(s))
        fired += [s for _ in of(engine.on_tick(at(s)), "location.stationary")]
    assert fired == [1200]  # T-0002 stands in the cell block: not flagged
    [alert] = [a for a in engine.active_alerts() if a.rule == "location.stationary"]
    assert alert.subject.id == "P-0001"


def test_tag_lost_after_thirty_seconds_and_high_near_the_perimeter() -> None:
    engine = demo_engine()
    engine.on_readings([pos(at(0), ("T-0001", 30, 110), ("T-0002", 30, 125))], at(0))
    assert of(engine.on_tick(at(29.9)), "location.tag_lost") == []
    out = of(engine.on_tick(at(30)), "location.tag_lost")
    assert {(t.subject.id, t.level) for t in out} == {("P-0001", "medium"), ("P-0002", "high")}
    engine.on_readings([pos(at(40), ("T-0001", 30, 110))], at(40))
    assert of(engine.on_tick(at(49)), "location.tag_lost") == []
    [cleared] = of(engine.on_tick(at(50)), "location.tag_lost")
    assert (cleared.subject.id, cleared.state) == ("P-0001", "cleared")


def test_rollcall_reports_missing_and_raises_a_mismatch() -> None:
    engine = demo_engine()
    inside = [(f"T-{i:04d}", 21 + i, 80) for i in range(1, 14)]
    engine.on_readings([pos(at(0), *inside, ("T-0014", 30, 110))], at(0))
    result, out = engine.on_command("rollcall", RollcallCmd(request_id="rc1", grid="w1-g1"), at(5))
    assert result.ok and result.request_id == "rc1"
    assert {k: result.result[k] for k in ("grid", "present", "expected", "missing")} == {
        "grid": "w1-g1",
        "present": 13,
        "expected": 14,
        "missing": ["P-0014"],
    }
    [t] = of(out, "location.headcount_mismatch")
    assert (t.level, t.grid, t.area) == ("high", "w1-g1", "ward-1")
    engine.on_readings([pos(at(10), ("T-0014", 30, 80))], at(10))
    result, out = engine.on_command("rollcall", RollcallCmd(request_id="rc2", grid="w1-g1"), at(11))
    assert result.result["present"] == 14 and result.result["missing"] == []
    assert [x.state for x in of(out, "location.headcount_mismatch")] == ["cleared"]
    stale, _ = engine.on_command("rollcall", RollcallCmd(request_id="rc3", grid="w1-g1"), at(80))
    assert stale.result["present"] == 0  # nobody seen in the last 60 s


def test_ten_thousand_tag_batch() -> None:
    n = 10_000
    people = [{"id": f"P{i}", "role": "inmate", "grid": "g1", "tag": f"T{i}"} for i in range(n)]
    site = small_site(
        areas=[
            {
                "id": "a1",
                "supervisor": "sup",
                "grids": [
                    {
                        "id": "g1",
                        "officer": "off",
                        "polygon": [[0, 0], [500, 0], [500, 500], [0, 500]],
                        "expected_headcount": n,
                    }
                ],
            }
        ],
        zones=[
            {
                "id": "r1",
                "name": "Armoury",
                "kind": "restricted",
                "area": "a1",
                "polygon": [[100, 100], [150, 100], [150, 150], [100, 150]],
            }
        ],
        devices=[{"id": "gw", "family": "rtls", "zone": "r1"}],
        people=people,
    )
    engine = RuleEngine(site, "e1")
    rng = random.Random(7)
    coords = [(f"T{i}", rng.uniform(0, 500), rng.uniform(0, 500)) for i in range(n)]
    out = engine.on_readings([pos(at(0), *coords, device="gw")], at(0))
    poly = shapely.Polygon([(100, 100), (150, 100), (150, 150), (100, 150)])
    expected = {f"P{i}" for i, (_, x, y) in enumerate(coords) if poly.contains(shapely.Point(x, y))}
    assert len(expected) > 10
    # that many transitions of one rule in one zone make a flood: one system.flood alert, the rest held back
    [flood] = of(out, "system.flood")
    assert (flood.zone, flood.detail["rule"]) == ("r1", "location.restricted_zone")
    result, _ = engine.on_command("rollcall", RollcallCmd(request_id="big", grid="g1"), at(2))
    assert result.result["present"] == n and result.result["missing"] == []
    released = engine.on_tick(at(60))
    raised = of(out, "location.restricted_zone") + of(released, "location.restricted_zone", "active")
    assert {t.subject.id for t in raised} == expected and len(raised) == len(expected)
