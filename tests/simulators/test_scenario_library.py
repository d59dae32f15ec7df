"""The shipped scenario library (configs/scenarios) and the generated load site.

Every scenario loads against its site, names real rules, asks for perimeter alarms within 2 s
and passes `gridwatch sim check`; the geometry the stories rely on (a tag lost near the fence,
a gathering, an inmate walking into a staff corridor) really is what the site says; and
scripts/gen_load_site.py reproduces configs/load-site.yaml byte for byte, which validates.
"""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from shapely.geometry import LineString, Point, Polygon
from typer.testing import CliRunner

from gridwatch.cli import app
from gridwatch.config import SiteConfig, load_site
from gridwatch.config.schedule import Schedule
from gridwatch.contract.enums import Family, Level, PersonRole, ZoneKind
from gridwatch.rules import RULES
from simulators.scenario import MoveAction, Scenario, TagSilentAction, load_scenario
from tests.conftest import DEMO_SITE, REPO

SCENARIOS = REPO / "configs" / "scenarios"
LOAD_SITE = REPO / "configs" / "load-site.yaml"
GENERATOR = REPO / "scripts" / "gen_load_site.py"
FILES = sorted(SCENARIOS.glob("*.yaml"))

# what the brief promised the library holds (demo-storyline.yaml predates it)
LIBRARY = {
    "single-beam", "two-beam-intrusion", "beam-and-camera", "door-forced", "door-held", "denied-burst",
    "staff-only-intrusion", "gathering", "tag-lost-near-perimeter", "strap-cut", "sos", "fall", "heart-rate",
    "camera-covered", "device-offline", "escape-attempt", "quiet-night", "faults", "load-profile",
}  # fmt: skip


LIBRARY_FILES = [p for p in FILES if p.stem in LIBRARY]


def _site_path(scenario: Path) -> Path:
    return LOAD_SITE if scenario.stem == "load-profile" else DEMO_SITE


@cache
def _site(path: Path) -> SiteConfig:
    return load_site(path)


@cache
def _scenario(path: Path) -> Scenario:
    return load_scenario(path, _site(_site_path(path)))


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_the_library_is_complete() -> None:
    assert {p.stem for p in FILES} >= LIBRARY


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_scenario_loads_against_its_site(path: Path) -> None:
    scenario = _scenario(path)
    assert scenario.name and scenario.description.strip(), "a scenario says what it is and what it proves"
    assert scenario.steps


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_every_expectation_names_a_known_rule_and_a_level(path: Path) -> None:
    scenario = _scenario(path)
    expects = [e for s in scenario.steps for e in s.expect]
    assert expects, "every scenario checks at least one alert"
    for e in expects:
        assert e.rule in RULES
        if path.stem in LIBRARY:
            assert e.level is not None, f"{e.rule}: say which level the alert must have"
    for e in (e for s in scenario.steps for e in s.expect_none):
        assert e.rule in RULES or e.level is not None, "an expect_none names a rule, a level or both"


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_perimeter_alarms_are_expected_within_two_seconds(path: Path) -> None:
    for step in _scenario(path).steps:
        for e in step.expect:
            if e.rule is not None and e.rule.startswith("perimeter."):
                assert e.within_s <= 2, f"step at {step.at:g}s: {e.rule} within {e.within_s:g} s"


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=_ids(LIBRARY_FILES))
def test_library_steps_with_expectations_say_what_happens(path: Path) -> None:
    for step in _scenario(path).steps:
        if step.expect or step.expect_none:
            assert step.note.strip(), f"step at {step.at:g}s has expectations but no note"


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_every_step_happens_within_the_scenario(path: Path) -> None:
    scenario = _scenario(path)
    for step in scenario.steps:
        assert step.at <= scenario.length_s
        for e in step.expect_none:  # a quiet window that outlives the play is never checked to its end
            assert step.at + e.within_s <= scenario.length_s + 1e-9


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_sim_check_accepts_it(path: Path) -> None:
    result = CliRunner().invoke(app, ["sim", "check", str(path), "--config", str(_site_path(path))])
    assert result.exit_code == 0, result.output
    assert ": ok" in result.output


def test_perimeter_scenarios_use_zones_armed_around_the_clock() -> None:
    """perim-west is armed only 18:00-07:00 in the demo site: a story that must pass at any hour
    expects perimeter alarms only from zones armed around the clock."""
    for path in FILES:
        site = _site(_site_path(path))
        zone_of = {d.id: d.zone for d in site.devices if d.family == Family.PERIMETER_IR}
        for step in _scenario(path).steps:
            if step.perimeter is None or not step.expect:
                continue
            zone = site.zone(zone_of[step.perimeter.detector] or "")
            assert zone is not None
            assert zone.armed == Schedule.always(), f"{path.name}: step at {step.at:g}s, {zone.id} is not always armed"


# -- the geometry the location stories rely on ----------------------------------------------------
def _perimeter(site: SiteConfig) -> list[Polygon]:
    return [Polygon(z.polygon) for z in site.zones if z.kind == ZoneKind.PERIMETER and z.polygon]


def _forbidden(site: SiteConfig) -> list[tuple[str, Polygon]]:
    kinds = (ZoneKind.PERIMETER, ZoneKind.RESTRICTED, ZoneKind.STAFF_ONLY)
    return [(z.id, Polygon(z.polygon)) for z in site.zones if z.kind in kinds and z.polygon]


def _grid_polygon(site: SiteConfig, person_id: str) -> Polygon:
    person = next(p for p in site.people if p.id == person_id)
    assert person.grid is not None
    return Polygon(site.grid_index()[person.grid][1].polygon)


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_tag_lost_levels_match_where_the_tag_was_last_seen(path: Path) -> None:
    """High only if the last position is within perimeter_distance_m of a perimeter zone (contract §5)."""
    site = _site(_site_path(path))
    near = float(RULES["location.tag_lost"].params["perimeter_distance_m"])
    fence = _perimeter(site)
    pinned: dict[str, tuple[float, float]] = {}
    for step in _scenario(path).ordered_steps():
        if isinstance(step.move, MoveAction) and not isinstance(step.move.to, str):
            pinned[step.move.person] = step.move.to
        if step.release is not None:
            pinned.pop(step.release.person, None)
        if not isinstance(step.tag_silent, TagSilentAction):
            continue
        person = step.tag_silent.person
        if person in pinned:  # walked to a point and standing there
            dist = min(p.distance(Point(pinned[person])) for p in fence)
        else:  # wandering anywhere in the grid: take the grid's nearest point to a fence
            dist = min(p.distance(_grid_polygon(site, person)) for p in fence)
        for e in step.expect:
            if e.rule == "location.tag_lost" and e.level == Level.HIGH:
                assert person in pinned, f"{path.name}: walk {person} to the fence before silencing the tag"
                assert dist <= near, f"{path.name}: {person} last seen {dist:.1f} m from the fence"
            elif e.rule == "location.tag_lost":
                assert dist > near, f"{path.name}: {person} may be within {near:g} m of the fence"


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_walks_to_a_point_cross_no_forbidden_zone(path: Path) -> None:
    """A walk from anywhere in the person's grid to its target point crosses no perimeter,
    restricted or staff-only zone (which would raise an alert the story does not expect)."""
    site = _site(_site_path(path))
    forbidden = _forbidden(site)
    for step in _scenario(path).steps:
        if not isinstance(step.move, MoveAction) or isinstance(step.move.to, str):
            continue
        grid = _grid_polygon(site, step.move.person)
        for corner in grid.exterior.coords:
            walk = LineString([corner, step.move.to])
            for zone_id, poly in forbidden:
                assert not walk.intersects(poly), f"{path.name}: walk of {step.move.person} crosses {zone_id}"


def test_staff_only_story_moves_an_inmate_and_an_officer() -> None:
    site = _site(DEMO_SITE)
    roles = {p.id: p.role for p in site.people}
    kinds = {z.id: z.kind for z in site.zones}
    steps = _scenario(SCENARIOS / "staff-only-intrusion.yaml").steps
    moves = [s for s in steps if s.move is not None]
    for step in moves:
        assert isinstance(step.move, MoveAction) and isinstance(step.move.to, str)
        assert kinds[step.move.to] == ZoneKind.STAFF_ONLY
        if roles[step.move.person] == PersonRole.INMATE:
            assert [e.rule for e in step.expect] == ["location.restricted_zone"]
        else:
            assert [e.rule for e in step.expect_none] == ["location.restricted_zone"]
    assert {roles[s.move.person] for s in moves if s.move is not None} == {PersonRole.INMATE, PersonRole.STAFF}


def test_gathering_brings_enough_inmates() -> None:
    """The simulator gathers the nearest tagged walkers, staff included: count must leave ≥ 7 inmates."""
    site = _site(DEMO_SITE)
    step = next(s for s in _scenario(SCENARIOS / "gathering.yaml").steps if s.gather is not None)
    assert step.gather is not None
    need = max(int(RULES["location.gathering"].params["count"]), 7)
    # staff roam their grid; those of the grids next to the yard may be among the nearest walkers,
    # those of farther grids are farther than every inmate of the near grids
    yard = Polygon(next(z.polygon for z in site.zones if z.id == step.gather.zone))
    near_grids = {g for g, (_a, grid) in site.grid_index().items() if Polygon(grid.polygon).distance(yard) < 5}
    assert near_grids
    near_staff = [p for p in site.people if p.role == PersonRole.STAFF and p.tag and p.grid in near_grids]
    near_inmates = [p for p in site.people if p.role == PersonRole.INMATE and p.tag and p.grid in near_grids]
    assert step.gather.count - len(near_staff) >= need
    assert len(near_inmates) >= step.gather.count
    duration = float(RULES["location.gathering"].params["duration_s"])
    assert step.gather.seconds >= duration + 30, "time to walk there and then stay 30 s"


# -- the load site ---------------------------------------------------------------------------------
def test_generator_reproduces_the_committed_load_site(tmp_path: Path) -> None:
    out = tmp_path / "load-site.yaml"
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out)], check=True, capture_output=True)
    assert out.read_text(encoding="utf-8") == LOAD_SITE.read_text(encoding="utf-8"), (
        "configs/load-site.yaml is stale: run .venv/bin/python scripts/gen_load_site.py"
    )


def test_load_site_validates() -> None:
    result = CliRunner().invoke(app, ["config", "validate", str(LOAD_SITE)])
    assert result.exit_code == 0, result.output


def test_load_site_has_the_promised_size() -> None:
    site = _site(LOAD_SITE)
    inmates = [p for p in site.people if p.role == PersonRole.INMATE]
    assert len(inmates) == 2000 and all(p.tag and p.grid for p in inmates)
    assert len(site.doors) == 200
    controlled = {d.door for d in site.devices if d.family == Family.ACCESS}
    assert controlled == {d.id for d in site.doors}
    detectors = [d for d in site.devices if d.family == Family.PERIMETER_IR]
    assert len(detectors) == 50
    assert len({d.zone for d in detectors}) == 4
    cameras = [d for d in site.devices if d.family == Family.CAMERA]
    assert len(cameras) == 4
    raw = LOAD_SITE.read_text(encoding="utf-8")
    for c in cameras:
        assert f"url: '${{GRIDWATCH_CAMERA_BASE:-rtsp://127.0.0.1:8554}}/{c.id}'" in raw
    rtls = [d for d in site.devices if d.family == Family.RTLS]
    assert len(rtls) == len(site.areas) and all(d.expected_interval_s == 5 for d in rtls)
    assert 1 <= len([d for d in site.devices if d.family == Family.WRISTBAND]) <= len(site.areas)
    assert len(site.edges) == 2
    users = {u.username for u in site.central.users}
    officers = {g.officer for a in site.areas for g in a.grids} | {a.supervisor for a in site.areas}
    assert officers <= users
    staff = {p.name for p in site.people if p.role == PersonRole.STAFF}
    assert officers <= staff


def test_load_site_secrets_come_from_the_environment() -> None:
    text = LOAD_SITE.read_text(encoding="utf-8")
    site = load_site(LOAD_SITE, env={"GW_OFFICER_PASSWORD": "o-secret", "GW_EDGE_1_PASSWORD": "e-secret"})
    assert "o-secret" not in text and "e-secret" not in text
    assert {u.password for u in site.central.users if u.role == "officer"} == {"o-secret"}
    assert "e-secret" in site.edges[0].device_broker
    assert text.count("password: '${GW_") == len(site.central.users)
