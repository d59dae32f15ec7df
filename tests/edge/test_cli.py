"""`gridwatch edge run` refuses bad configs with FILE:LINE lines and exit 1, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.cli import app
from tests.conftest import DEMO_SITE

runner = CliRunner()


def _run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["run", *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_config_errors_are_file_line_messages(tmp_path: Path) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text(
        "site: {id: s1}\n"
        "zones:\n"
        "  - {id: z1, kind: perimeter, polygon: [[0, 0], [1, 0], [1, 1]]}\n"
        "devices:\n"
        "  - {id: d1, family: perimeter_ir, zone: z2}\n"
        "edges:\n"
        "  - {id: e1, zones: [z1]}\n"
    )
    code, out = _run(["--config", str(bad)])
    assert code == 1
    assert f"{bad}:5: devices[0].zone:" in out
    assert "Traceback" not in out


def test_missing_file_is_reported_not_raised(tmp_path: Path) -> None:
    code, out = _run(["--config", str(tmp_path / "nope.yaml")])
    assert code == 1
    assert "nope.yaml:1: cannot read the file" in out


def test_edge_must_be_named_when_the_config_has_several() -> None:
    code, out = _run(["--config", str(DEMO_SITE)])
    assert code == 1
    assert "pick one with --edge" in out and "edge-w1" in out


def test_unknown_edge_lists_the_known_ones() -> None:
    code, out = _run(["--config", str(DEMO_SITE), "--edge", "edge-zz"])
    assert code == 1
    assert "no edge 'edge-zz'" in out and "edge-w2" in out


def test_config_comes_from_the_environment_and_bad_broker_env_is_refused() -> None:
    code, out = _run(
        ["--edge", "edge-w1"], env={"GRIDWATCH_CONFIG": str(DEMO_SITE), "GRIDWATCH_DEVICE_BROKER": "http://nope"}
    )
    assert code == 1
    assert "GRIDWATCH_DEVICE_BROKER: broker URL must start with mqtt://" in out


@pytest.mark.parametrize("bind", ["nope", "127.0.0.1:http", ":80"])
def test_bad_status_bind_is_refused(bind: str) -> None:
    code, out = _run(["--config", str(DEMO_SITE), "--edge", "edge-w1", "--status-bind", bind])
    assert code == 1
    assert "--status-bind" in out and "HOST:PORT" in out


def test_no_config_at_all_says_how_to_give_one() -> None:
    code, out = _run([], env={"GRIDWATCH_CONFIG": ""})
    assert code == 1
    assert "GRIDWATCH_CONFIG" in out
