"""A disk that refuses the waiting telemetry is said once, and shown on the status page."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from edge.agent import EdgeAgent
from gridwatch.clock import FakeClock
from gridwatch.config import load_site
from tests.conftest import DEMO_SITE


def test_a_failing_spill_is_logged_once_and_shown_on_the_status_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = EdgeAgent(
        load_site(DEMO_SITE),
        "edge-w1",
        device_broker="mqtt://x:y@127.0.0.1:1",
        uplink_broker="mqtt://x:y@127.0.0.1:1",
        outbox_path=tmp_path / "o.db",
        status_bind=None,
        clock=FakeClock(),
        cameras=False,
    )

    def disk_full(**_kw: object) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(agent.outbox, "spill_stale", disk_full)
    last = {"rules": 0.0, "save": 0.0, "outbox_log": 0.0}
    with caplog.at_level(logging.ERROR, logger="edge.agent"):
        for _ in range(5):  # the ticker runs four times a second
            agent._tick_once(1.0, last)
    failures = [r for r in caplog.records if "OUTBOX WRITE FAILED" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in caplog.records]
    assert "telemetry waiting for the uplink stays in memory" in failures[0].getMessage()
    assert str(tmp_path / "o.db") in failures[0].getMessage()
    assert agent.status()["outbox"]["write_error"] == "database or disk is full"
    monkeypatch.undo()
    agent.outbox.close()
