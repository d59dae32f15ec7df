"""Scenario files: the demo storyline is valid; mistakes are reported with file, line and a hint."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridwatch.cli import app
from gridwatch.config import ConfigError, load_site
from simulators.scenario import load_scenario, parse_duration
from tests.conftest import DEMO_SITE, REPO

STORYLINE = REPO / "configs" / "scenarios" / "demo-storyline.yaml"


def test_demo_storyline_is_valid_for_the_demo_site() -> None:
    scenario = load_scenario(STORYLINE, load_site(DEMO_SITE))
    assert scenario.length_s == 240
    assert sum(len(s.expect) for s in scenario.steps) >= 10
    rules = {e.rule for s in scenario.steps for e in s.expect}
    assert {"perimeter.intrusion", "access.door_forced", "wristband.sos", "device.offline"} <= rules


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("5", 5.0),
        ("2.5s", 2.5),
        ("1500ms", 1.5),
        ("2m", 120.0),
        ("1h", 3600.0),
    ],
)
def test_durations(text: str, want: float) -> None:
    assert parse_duration(text) == want


@pytest.mark.parametrize("bad", ["-1", "soon", "", "5 parsecs", True])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(-1 if bad == "-1" else bad)


def test_mistakes_are_reported_by_line_with_suggestions(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: broken\n"
        "steps:\n"
        "  - at: 1s\n"
        "    perimeter: {detector: ir-n-2, state: alarm}\n"
        "  - at: 2s\n"
        "    access: {door: D-W1-YARD, event: door_open}\n"
        "    wristband: {band: W-0001, event: sos}\n"
        "  - at: soon\n"
        "    move: {person: P-0005, to: w1-stafff}\n"
        "    expect: [{rule: perimeter.intrusoin}]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_scenario(path, load_site(DEMO_SITE))
    text = "\n".join(str(p) for p in err.value.problems)
    assert f"{path}:5: steps[1]" in text and "exactly one of" in text
    assert "steps[2].at" in text and "duration" in text
    assert "did you mean 'perimeter.intrusion'" in text


def test_unknown_ids_get_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "ids.yaml"
    path.write_text(
        "name: ids\n"
        "steps:\n"
        "  - at: 1\n"
        "    perimeter: {detector: ir-n-2, state: alarm}\n"
        "  - at: 2\n"
        "    move: {person: P-0005, to: w1-stafff}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_scenario(path, load_site(DEMO_SITE))
    lines = [str(p) for p in err.value.problems]
    assert any(":4: steps[0].perimeter.detector: unknown perimeter detector 'ir-n-2'" in line for line in lines)
    assert any(":6: steps[1].move.to:" in line and "'w1-staff'" in line for line in lines)


def test_sim_check_command() -> None:
    result = CliRunner().invoke(app, ["sim", "check", str(STORYLINE), "--config", str(DEMO_SITE)])
    assert result.exit_code == 0, result.output
    assert "demo storyline" in result.output
