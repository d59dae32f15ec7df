"""Escalation of unacknowledged alerts and edge.offline, driven by a FakeClock."""

from __future__ import annotations

from datetime import UTC, datetime

from central.service import CentralService
from central.store.db import Database
from gridwatch.clock import FakeClock
from gridwatch.config.models import SiteConfig
from gridwatch.contract.enums import Level
from gridwatch.contract.uplink import Heartbeat, HeartbeatWill, OutboxDepth

from .conftest import OPERATOR, Published, transition


def test_high_alert_escalates_to_area_then_command(
    service: CentralService, clock: FakeClock, published: Published
) -> None:
    service.ingest_alert("edge-a", transition(clock, level=Level.HIGH))
    service.tick(clock.advance(29))
    assert service.get_alert("a1")["escalated_to"] is None
    service.tick(clock.advance(1))
    assert service.get_alert("a1")["escalated_to"] == "area:ward-1"
    (first,) = published.of("escalation")
    assert first["to"] == "area:ward-1" and first["supervisor"] == "sup-wang" and first["id"] == "a1"
    service.tick(clock.advance(29))
    assert service.get_alert("a1")["escalated_to"] == "area:ward-1"
    service.tick(clock.advance(1))
    detail = service.get_alert("a1")
    assert detail["escalated_to"] == "command"
    assert [h["escalated_to"] for h in detail["history"] if h["action"] == "escalate"] == ["area:ward-1", "command"]
    service.tick(clock.advance(3600))
    assert len([e for e in published.of("escalation") if e["id"] == "a1"]) == 2


def test_level_timings_and_ack_stops_escalation(service: CentralService, clock: FakeClock) -> None:
    service.ingest_alert("edge-a", transition(clock, "med", level=Level.MEDIUM, subject="m"))
    service.ingest_alert("edge-a", transition(clock, "low", level=Level.LOW, subject="l"))
    service.ingest_alert("edge-a", transition(clock, "acked", level=Level.HIGH, subject="h"))
    service.ack("acked", OPERATOR)
    service.tick(clock.advance(299))
    assert [service.get_alert(a)["escalated_to"] for a in ("med", "low", "acked")] == [None, None, None]
    service.tick(clock.advance(1))
    assert service.get_alert("med")["escalated_to"] == "area:ward-1"
    service.tick(clock.advance(1500))
    assert service.get_alert("low")["escalated_to"] == "area:ward-1"
    assert service.get_alert("med")["escalated_to"] == "command"
    assert service.get_alert("acked")["escalated_to"] is None


def test_suppressed_alerts_do_not_escalate(service: CentralService, clock: FakeClock) -> None:
    service.ingest_alert("edge-a", transition(clock, level=Level.HIGH, suppressed="walk_test"))
    service.tick(clock.advance(120))
    item = service.get_alert("a1")
    assert item["escalated_to"] is None and item["suppressed"] == "walk_test"


def _heartbeat(clock: FakeClock) -> Heartbeat:
    return Heartbeat(
        ts=clock.now(),
        version="0.1.0",
        uptime_s=5,
        config_hash="abc",
        outbox=OutboxDepth(alerts=0, events=1, telemetry=2),
    )


def _offline_alerts(service: CentralService) -> list[dict]:  # type: ignore[type-arg]
    return service.list_alerts(rule="edge.offline")[0]


def test_edge_offline_after_silence_and_cleared_by_heartbeat(
    service: CentralService, clock: FakeClock, published: Published
) -> None:
    service.ingest_heartbeat("edge-a", _heartbeat(clock))
    service.tick(clock.advance(30))
    assert _offline_alerts(service) == []
    service.tick(clock.advance(1))
    (alert,) = _offline_alerts(service)
    assert (alert["level"], alert["condition"], alert["subject"]) == (
        "high",
        "active",
        {"kind": "device", "id": "edge-a"},
    )
    assert service.edges()[0]["online"] is False
    service.tick(clock.advance(60))
    assert len(_offline_alerts(service)) == 1  # raised once, not every tick
    service.ingest_heartbeat("edge-a", _heartbeat(clock))
    (alert,) = _offline_alerts(service)
    assert alert["condition"] == "cleared"
    edge = service.edges()[0]
    assert edge["online"] is True and edge["outbox"] == {"alerts": 0, "events": 1, "telemetry": 2}
    assert published.of("edge")[-1]["online"] is True


def test_edge_will_raises_offline_immediately(service: CentralService, clock: FakeClock) -> None:
    service.ingest_heartbeat("edge-a", _heartbeat(clock))
    service.ingest_heartbeat("edge-a", HeartbeatWill(state="offline"))
    (alert,) = _offline_alerts(service)
    assert alert["condition"] == "active" and alert["area"] == "ward-1"
    service.tick(clock.advance(31))
    assert len(_offline_alerts(service)) == 1
    service.ingest_heartbeat("edge-a", _heartbeat(clock))
    service.ingest_heartbeat("edge-a", HeartbeatWill(state="offline"))
    assert [a["condition"] for a in _offline_alerts(service)] == ["active", "cleared"]


def test_configured_edge_never_heard_from_goes_offline(db: Database, site: SiteConfig) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    service = CentralService(db, site, clock=clock)
    service.tick(clock.advance(10))
    assert _offline_alerts(service) == []
    service.tick(clock.advance(30))
    assert len(_offline_alerts(service)) == 1
