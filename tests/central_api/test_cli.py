"""`gridwatch central …`: config problems without tracebacks, user add, migrate."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from central.cli import app
from central.service import CentralService
from central.store.db import open_database
from gridwatch.contract.enums import UserRole

from .conftest import SITE_YAML


def test_run_with_a_bad_config_prints_file_line_problems_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text(SITE_YAML.replace("officer: off,", "officer: nobody,", 1))
    result = CliRunner().invoke(app, ["run", "--config", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:" in result.output
    assert "areas[0].grids[0].officer: unknown user 'nobody'" in result.output
    assert "Traceback" not in result.output


def test_run_with_a_bad_bind_exits_1(tmp_path: Path) -> None:
    good = tmp_path / "site.yaml"
    good.write_text(SITE_YAML)
    result = CliRunner().invoke(app, ["run", "--config", str(good), "--bind", "nowhere"])
    assert result.exit_code == 1
    assert "HOST:PORT" in result.output


def test_user_add_stores_a_user_who_can_then_log_in(tmp_path: Path) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE_YAML)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    env = {"GRIDWATCH_DATABASE_URL": url, "GRIDWATCH_NEW_PASSWORD": "long-enough-pw"}
    runner = CliRunner()
    assert runner.invoke(app, ["migrate", "--config", str(site_file)], env=env).exit_code == 0
    result = runner.invoke(app, ["user", "add", "op-1", "--role", "operator", "--config", str(site_file)], env=env)
    assert result.exit_code == 0, result.output
    from gridwatch.config import load_site

    db = open_database(url)
    try:
        service = CentralService(db, load_site(site_file))
        actor = service.authenticate("op-1", "long-enough-pw")
        assert actor is not None and actor.role is UserRole.OPERATOR
        assert service.authenticate("op-1", "wrong") is None
    finally:
        db.close()
    short = runner.invoke(
        app,
        ["user", "add", "op-2", "--role", "operator", "--config", str(site_file)],
        env={**env, "GRIDWATCH_NEW_PASSWORD": "short"},
    )
    assert short.exit_code == 1
