"""Central refuses to start without GRIDWATCH_SECRET_KEY unless --dev (which uses a throwaway key)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from central.settings import MissingSecretKey, Settings
from gridwatch.cli import app
from gridwatch.config import load_text
from tests.central_api.conftest import SITE_YAML

from .helpers import SECRET_KEY


def test_central_run_without_a_secret_key_exits_1_with_a_clear_message(tmp_path: Path) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE_YAML)
    env = {"GRIDWATCH_SECRET_KEY": None, "GRIDWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    for role in ("all", "ingest", "api"):
        result = CliRunner().invoke(app, ["central", "run", "--config", str(site_file), "--role", role], env=env)
        assert result.exit_code == 1, result.output
        assert "GRIDWATCH_SECRET_KEY is not set" in result.output
        assert "--dev" in result.output
        assert "central did not start" in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "c.db").exists()  # refused before opening anything


def test_an_empty_secret_key_counts_as_none() -> None:
    site = load_text(SITE_YAML, "test-site.yaml", env={})
    with pytest.raises(MissingSecretKey, match="GRIDWATCH_SECRET_KEY is not set"):
        Settings.from_site(site, {"GRIDWATCH_SECRET_KEY": ""})


def test_dev_generates_a_throwaway_key_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    site = load_text(SITE_YAML, "test-site.yaml", env={})
    caplog.set_level(logging.WARNING, logger="central.settings")
    first = Settings.from_site(site, {}, dev=True)
    second = Settings.from_site(site, {}, dev=True)
    assert first.secret_key_ephemeral and len(first.secret_key) >= 32
    assert first.secret_key != second.secret_key
    assert any("throwaway key" in r.getMessage() for r in caplog.records)


def test_a_configured_key_is_used_as_is() -> None:
    site = load_text(SITE_YAML, "test-site.yaml", env={})
    settings = Settings.from_site(site, {"GRIDWATCH_SECRET_KEY": SECRET_KEY})
    assert settings.secret_key == SECRET_KEY and not settings.secret_key_ephemeral
