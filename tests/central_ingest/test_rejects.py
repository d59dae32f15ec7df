"""Uplink messages whose topic and body disagree, or that belong to another site, are rejected and counted."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from central.commands import Commands
from central.ingest import Ingest
from central.metrics import Metrics
from central.settings import Settings
from gridwatch.config import load_text
from gridwatch.config.models import SiteConfig
from tests.central_api.conftest import SITE_ID, SITE_YAML, alert_body

from .helpers import SECRET_KEY


class RecordingService:
    """Stands in for CentralService: records what ingest hands over."""

    def __init__(self) -> None:
        self.alerts: list[tuple[str, Any]] = []

    def ingest_alert(self, edge: str, t: Any) -> bool:
        self.alerts.append((edge, t))
        return True


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_text(SITE_YAML, "test-site.yaml", env={})


def _ingest(site: SiteConfig) -> tuple[Ingest, RecordingService, Metrics]:
    metrics = Metrics()
    service = RecordingService()
    settings = Settings.from_site(site, {"GRIDWATCH_SECRET_KEY": SECRET_KEY}, role="ingest")
    ingest = Ingest(settings, service, None, Commands(site, metrics), metrics)  # type: ignore[arg-type]
    return ingest, service, metrics


def _count(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("gridwatch_central_ingest_malformed_total", {"reason": reason})
    return value or 0.0


def _send(ingest: Ingest, topic: str, body: dict[str, Any]) -> None:
    asyncio.run(ingest.process(topic, json.dumps(body).encode()))


def test_alert_naming_another_edge_than_its_topic_is_rejected_counted_and_logged_once_per_edge(
    site: SiteConfig, caplog: pytest.LogCaptureFixture
) -> None:
    ingest, service, metrics = _ingest(site)
    caplog.set_level(logging.DEBUG, logger="central.ingest")
    for i in range(5):  # edge-a's credentials publishing alerts that claim to be edge-b's
        _send(ingest, f"gridwatch/v1/{SITE_ID}/edge-a/alerts", alert_body(f"spoof-{i}", edge="edge-b"))
    _send(ingest, f"gridwatch/v1/{SITE_ID}/edge-b/alerts", alert_body("spoof-b", edge="edge-a"))
    assert service.alerts == []
    assert _count(metrics, "edge_mismatch") == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings  # once for edge-a, once for edge-b
    assert "edge_mismatch" in warnings[0] and "edge-a" in warnings[0]
    assert "edge-b" in warnings[1]

    _send(ingest, f"gridwatch/v1/{SITE_ID}/edge-a/alerts", alert_body("honest", edge="edge-a"))
    assert [edge for edge, _t in service.alerts] == ["edge-a"]


def test_alert_naming_another_site_than_its_topic_is_rejected(site: SiteConfig) -> None:
    ingest, service, metrics = _ingest(site)
    body = {**alert_body("other-site"), "site": "other-prison"}
    _send(ingest, f"gridwatch/v1/{SITE_ID}/edge-a/alerts", body)
    assert service.alerts == []
    assert _count(metrics, "site_mismatch") == 1


def test_messages_under_another_site_are_rejected(site: SiteConfig) -> None:
    ingest, service, metrics = _ingest(site)
    body = {**alert_body("foreign"), "site": "other-prison"}
    _send(ingest, "gridwatch/v1/other-prison/edge-a/alerts", body)
    assert service.alerts == []
    assert _count(metrics, "foreign_site") == 1


def test_shared_ingest_topics_and_client_ids(site: SiteConfig) -> None:
    metrics = Metrics()
    commands = Commands(site, metrics)
    base = {"GRIDWATCH_SECRET_KEY": SECRET_KEY}

    worker = Settings.from_site(site, {**base, "GRIDWATCH_INGEST_WORKER": "2"}, role="ingest")
    shared = Ingest(worker, None, None, commands, metrics)  # type: ignore[arg-type]
    assert shared.mode == "shared" and shared.persistent and not shared.publishes_commands
    assert shared.identifier == f"gridwatch-central-{SITE_ID}-ingest-2"
    group = f"$share/gridwatch-central-{SITE_ID}"
    assert shared.topics() == [
        f"{group}/gridwatch/v1/{SITE_ID}/+/+",
        f"{group}/gridwatch/v1/{SITE_ID}/+/snapshots/+",
    ]

    anonymous = Settings.from_site(site, base, role="ingest")
    a = Ingest(anonymous, None, None, commands, metrics)  # type: ignore[arg-type]
    b = Ingest(anonymous, None, None, commands, metrics)  # type: ignore[arg-type]
    assert a.identifier != b.identifier  # a second worker never takes over the first one's session
    assert not a.persistent  # nor leaves a session behind that would keep receiving a share

    direct = Ingest(Settings.from_site(site, base), None, None, commands, metrics)  # type: ignore[arg-type]
    assert direct.mode == "direct" and direct.persistent
    assert direct.topics() == [f"gridwatch/v1/{SITE_ID}/+/+", f"gridwatch/v1/{SITE_ID}/+/snapshots/+"]

    opted_in = Settings.from_site(site, {**base, "GRIDWATCH_INGEST_SHARED": "1"})
    assert opted_in.shared_ingest and opted_in.role == "all"

    api = Ingest(Settings.from_site(site, base, role="api"), None, None, commands, metrics, full=False)  # type: ignore[arg-type]
    assert api.mode == "commands" and not api.persistent
    assert api.topics() == [f"gridwatch/v1/{SITE_ID}/+/cmd_result"]


@pytest.mark.parametrize("bad", ["a/b", "+", "#", "x" * 33, "two words"])
def test_a_worker_id_that_cannot_be_part_of_a_client_id_is_refused(site: SiteConfig, bad: str) -> None:
    with pytest.raises(ValueError, match="ingest worker id"):
        Settings.from_site(site, {"GRIDWATCH_SECRET_KEY": SECRET_KEY}, role="ingest", worker=bad)
