"""Central reads the uplink in two sessions (central/ingest.py "Lanes"): an alarm queued behind a
telemetry backlog, as a broker holds one for a central that was down, is handled first."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from central.commands import Commands
from central.ingest import ALARM_KINDS, Ingest
from central.metrics import Metrics
from central.settings import Settings
from gridwatch.broker import Mosquitto, edge_acl
from gridwatch.config import load_text
from gridwatch.config.models import SiteConfig
from gridwatch.contract.base import new_event_id
from gridwatch.contract.uplink import TelemetryBody, TelemetryPoint, uplink_topic
from tests.central_api.conftest import SITE_ID, SITE_YAML, alert_body

from .helpers import SECRET_KEY, database_path, edge_publisher, settings_for, start_worker, wait_for

BACKLOG = 3_000  # telemetry bodies queued before the alarm
ROOT = f"gridwatch/v1/{SITE_ID}"


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_text(SITE_YAML, "test-site.yaml", env={})


def _telemetry() -> bytes:
    points = tuple(
        TelemetryPoint(
            m="position",
            tags={"site": SITE_ID, "tag": f"T-{i:04d}"},
            fields={"x": float(i), "y": 2.0},
            ts=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        )
        for i in range(20)
    )
    return TelemetryBody(event_id=new_event_id(), batch=points).model_dump_json().encode()


def test_lanes_split_the_uplink_by_kind_and_keep_the_old_session_id(site: SiteConfig) -> None:
    metrics = Metrics()
    commands = Commands(site, metrics)
    base = {"GRIDWATCH_SECRET_KEY": SECRET_KEY}
    settings = Settings.from_site(site, base)

    def lane(name: str, s: Settings = settings) -> Ingest:
        return Ingest(s, None, None, commands, metrics, lane=name)  # type: ignore[arg-type]

    alarms, bulk, single = lane("alarms"), lane("bulk"), lane("all")
    assert alarms.identifier == single.identifier == f"gridwatch-central-{SITE_ID}"
    assert bulk.identifier == f"{alarms.identifier}-bulk"
    assert alarms.topics() == [f"{ROOT}/+/{kind}" for kind in ALARM_KINDS]
    assert bulk.topics() == single.topics() == [f"{ROOT}/+/+", f"{ROOT}/+/snapshots/+"]
    assert alarms.stale_topics() == single.topics() and bulk.stale_topics() == []
    assert alarms.publishes_commands and not bulk.publishes_commands

    # the bulk lane leaves the alarms lane's kinds alone, and handles the rest, bad topics included
    for kind in ALARM_KINDS:
        assert bulk._other_lanes(f"{ROOT}/edge-a/{kind}")
        assert not alarms._other_lanes(f"{ROOT}/edge-a/{kind}")
    for topic in (f"{ROOT}/edge-a/telemetry", f"{ROOT}/edge-a/snapshots/ab", f"{ROOT}/edge-a/bogus", "x/y"):
        assert not bulk._other_lanes(topic)
    assert not bulk._other_lanes("gridwatch/v1/other-site/edge-a/alerts")  # rejected as foreign, and counted

    shared = Settings.from_site(site, {**base, "GRIDWATCH_INGEST_WORKER": "2"}, role="ingest")
    group = f"$share/gridwatch-central-{SITE_ID}"
    alarms, bulk = lane("alarms", shared), lane("bulk", shared)
    assert (alarms.identifier, bulk.identifier) == (
        f"gridwatch-central-{SITE_ID}-ingest-2",
        f"gridwatch-central-{SITE_ID}-ingest-2-bulk",
    )
    assert alarms.topics() == [f"{group}/{ROOT}/+/{kind}" for kind in ALARM_KINDS]
    assert alarms.stale_topics() == bulk.topics() == [f"{group}/{ROOT}/+/+", f"{group}/{ROOT}/+/snapshots/+"]
    with pytest.raises(ValueError, match="lanes"):
        Ingest(settings.with_(role="api"), None, None, commands, metrics, mode="commands", lane="bulk")  # type: ignore[arg-type]


def test_an_alarm_is_not_handled_behind_a_telemetry_backlog(
    site: SiteConfig, fresh_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    fresh_mosquitto.add_user("edge-a", edge_acl("edge-a"))
    settings = settings_for(site, fresh_mosquitto, database_path(tmp_path), role="all")
    worker = start_worker("central", settings)  # both persistent sessions exist from now on
    worker.stop()

    edge = edge_publisher(fresh_mosquitto, "edge-a")
    try:
        infos = [
            edge.publish(uplink_topic(SITE_ID, "edge-a", "telemetry"), _telemetry(), qos=1) for _ in range(BACKLOG)
        ]
        alert = alert_body("al-behind-the-backlog", edge="edge-a", event_id=new_event_id())
        infos.append(edge.publish(uplink_topic(SITE_ID, "edge-a", "alerts"), json.dumps(alert).encode(), qos=1))
        for info in infos:
            info.wait_for_publish(timeout=60)
    finally:
        edge.disconnect()
        edge.loop_stop()

    worker = start_worker("central-again", settings)
    try:

        def telemetry() -> float:
            return worker.metric("gridwatch_central_ingest_messages_total", kind="telemetry")

        wait_for(lambda: worker.metric("gridwatch_central_ingest_messages_total", kind="alerts") >= 1, 60, "the alert")
        behind = telemetry()
        print(f"the alert was stored after {behind:.0f} of {BACKLOG} queued telemetry bodies")
        assert behind < BACKLOG / 2, f"the alert waited behind {behind:.0f} of {BACKLOG} telemetry bodies"
        wait_for(lambda: telemetry() >= BACKLOG, 120, "the telemetry backlog")
        assert worker.metric("gridwatch_central_ingest_messages_total", kind="alerts") == 1
    finally:
        worker.stop()
