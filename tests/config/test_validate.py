"""Site config loading: the shipped configs validate; every mistake is reported, located, at once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gridwatch.config import ConfigError, load_site, load_text

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo-site.yaml"
OFFICE = REPO / "configs" / "community-office.yaml"
LOCATED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<path>[\w.\[\]-]+: )?(?P<msg>.+)$")


def run_validate(*files: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridwatch.cli", "config", "validate", *map(str, files)],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )


def test_shipped_configs_validate() -> None:
    result = run_validate(DEMO, OFFICE)
    assert result.returncode == 0, result.stderr
    assert "demo-prison" in result.stdout and "riverside-cc" in result.stdout


def test_demo_site_meets_the_issue_sizes() -> None:
    site = load_site(DEMO, env={})
    assert len(site.areas) == 2 and sum(len(a.grids) for a in site.areas) >= 6
    perimeter = {z.id for z in site.zones if z.kind == "perimeter"}
    assert len(perimeter) >= 4
    detectors = [d for d in site.devices if d.family == "perimeter_ir" and d.format == "json"]
    assert len([d for d in detectors if d.zone in perimeter]) >= 12
    assert any(d.format == "contact_id" for d in site.devices)
    assert len(site.doors) >= 8
    cameras = [d for d in site.devices if d.family == "camera"]
    assert len(cameras) >= 2 and any(c.zone in perimeter for c in cameras)
    assert len([p for p in site.people if p.tag]) >= 100
    assert any(p.band for p in site.people)
    assert {z.kind for z in site.zones} >= {"restricted", "staff_only"}
    assert len(site.edges) == len(site.areas)


def test_three_mistakes_give_three_located_errors(tmp_path: Path) -> None:
    text = DEMO.read_text()
    text = text.replace("zone: perim-north, position: [30, 135]", "zone: perim-nrth, position: [30, 135]", 1)
    text = text.replace("polygon: [[45, 70], [70, 70]", "polygon: [[40, 70], [70, 70]", 1)  # w1-g2 over w1-g1
    text = text.replace("token: ${GRIDWATCH_TSDB_TOKEN:-}", "token: ${GW_TEST_TSDB_TOKEN}", 1)
    bad = tmp_path / "site.yaml"
    bad.write_text(text)
    result = run_validate(bad, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    lines = [ln for ln in result.stderr.splitlines() if LOCATED.match(ln)]
    assert any("unknown zone 'perim-nrth' (did you mean 'perim-north'?)" in ln for ln in lines), lines
    assert any("grid 'w1-g2' overlaps grid 'w1-g1'" in ln for ln in lines), lines
    assert any("GW_TEST_TSDB_TOKEN is not set" in ln for ln in lines), lines
    for ln in lines:
        m = LOCATED.match(ln)
        assert m is not None and m["file"] == str(bad) and int(m["line"]) > 1
    assert "Traceback" not in result.stderr


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, "t.yaml", env=env or {})
    return [str(p) for p in info.value.problems]


MINIMAL = """\
site: {id: s1, timezone: Europe/London}
areas:
  - id: a1
    supervisor: sup
    grids:
      - {id: g1, officer: off, polygon: [[0, 0], [10, 0], [10, 10], [0, 10]]}
zones:
  - {id: z1, kind: yard, area: a1, polygon: [[0, 0], [5, 0], [5, 5], [0, 5]]}
devices:
  - {id: d1, family: perimeter_ir, zone: z1}
edges:
  - {id: e1, areas: [a1]}
"""


def test_minimal_site_loads() -> None:
    site = load_text(MINIMAL, "t.yaml", env={})
    assert site.edge().id == "e1"
    assert site.edge_device_ids(site.edge()) == {"d1"}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("kind: yard", "kind: yrad", "t.yaml:8: zones[0].kind: Input should be"),
        ("{id: d1, family", "{id: d1, colour: red, family", "t.yaml:10: devices[0].colour: unknown key"),
        ("[0, 10]]}", "[10, 0]]}", "t.yaml:6: areas[0].grids[0].polygon: polygon is not simple"),
        ("timezone: Europe/London", "timezone: Europe/Londn", "t.yaml:1: site.timezone: unknown timezone"),
        ("areas: [a1]", "areas: [a2]", "t.yaml:12: edges[0].areas[0]: unknown area 'a2' (did you mean 'a1'?)"),
        ("zone: z1}", "zone: z1, url: rtsp://x/1}", "t.yaml:10: devices[0].url: only cameras have a url"),
        ("officer: off,", "officer: off, lock_in: 'mon-fry 21:00-06:00',", "grids[0].lock_in: 'mon-fry' is not a day"),
        ("family: perimeter_ir", "family: camera", "t.yaml:10: devices[0].url: a camera needs a url"),
    ],
)
def test_each_mistake_is_located(old: str, new: str, expected: str) -> None:
    assert old in MINIMAL
    found = problems(MINIMAL.replace(old, new, 1))
    assert any(p.startswith(expected) or expected in p for p in found), found


def test_literal_secrets_are_refused_and_env_secrets_accepted() -> None:
    text = MINIMAL.replace("{id: e1, areas: [a1]}", "{id: e1, areas: [a1], uplink_broker: 'mqtt://e1:hunter2@h:1883'}")
    assert any("broker passwords come from the environment" in p for p in problems(text))
    ok = MINIMAL.replace("{id: e1, areas: [a1]}", "{id: e1, areas: [a1], uplink_broker: 'mqtt://e1:${PW}@h:1883'}")
    site = load_text(ok, "t.yaml", env={"PW": "s3cret"})
    assert site.edges[0].uplink_broker == "mqtt://e1:s3cret@h:1883"


def test_duplicates_and_references_are_all_reported() -> None:
    text = MINIMAL + """\
people:
  - {id: p1, role: inmate, grid: g1, tag: T1}
  - {id: p1, role: inmate, grid: g9, tag: T1}
  - {id: p3, role: inmate, tag: T3}
"""
    found = problems(text)
    assert any("duplicate person id 'p1' (first at line 14)" in p for p in found), found
    assert any("duplicate tag 'T1'" in p for p in found)
    assert any("unknown grid 'g9'" in p for p in found)
    assert any("people[2].grid: an inmate needs a grid" in p for p in found)


def test_yaml_syntax_error_is_one_located_line() -> None:
    found = problems("site: {id: s1\nareas: [\n")
    assert len(found) == 1 and found[0].startswith("t.yaml:") and "YAML syntax" in found[0]


def test_duplicate_yaml_keys_are_reported() -> None:
    found = problems(MINIMAL + "site: {id: s2}\n")
    assert any("t.yaml:13: site: duplicate key" in p for p in found), found


def test_device_bound_to_a_zone_its_edge_does_not_serve() -> None:
    text = MINIMAL.replace("{id: e1, areas: [a1]}", "{id: e1, devices: [d1]}")
    found = problems(text)
    assert any("device 'd1' is in zone 'z1', which edge 'e1' does not serve" in p for p in found), found


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_site(tmp_path / "missing.yaml")
