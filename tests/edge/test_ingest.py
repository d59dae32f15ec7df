"""Ingest message handling: topic → device → readings; bad input and unknown devices → dead letters."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiomqtt import Topic

import drivers
from edge.deadletter import DeadLetterStore
from edge.health import DeviceHealthTracker
from edge.ingest import Ingest
from gridwatch.broker import Mosquitto, edge_acl
from gridwatch.clock import FakeClock
from gridwatch.config import load_site
from gridwatch.config.models import SiteConfig
from gridwatch.contract import Family, PerimeterReading, PositionsReading, Reading
from gridwatch.mqtt import async_client
from tests.conftest import DEMO_SITE

LOAD_SITE = DEMO_SITE.with_name("load-site.yaml")

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def _ingest(site: SiteConfig, url: str = "mqtt://x:y@127.0.0.1:1") -> tuple[Ingest, list[Reading], DeadLetterStore]:
    got: list[Reading] = []
    letters = DeadLetterStore()
    edge = site.edge("edge-w1")
    devices = [d for d in site.devices if d.id in site.edge_device_ids(edge)]
    ingest = Ingest(
        site,
        edge,
        url,
        on_readings=got.extend,
        deadletters=letters,
        health=DeviceHealthTracker(devices),
        clock=FakeClock(T0),
    )
    return ingest, got, letters


def test_alarm_on_a_served_detector_becomes_a_reading() -> None:
    ingest, got, letters = _ingest(load_site(DEMO_SITE))
    payload = json.dumps({"ts": "2026-11-23T06:00:00Z", "detector": "ir-n-01", "beam": 2, "state": "alarm"})
    ingest.handle("site/demo-prison/perimeter/ir-n-01/event", payload.encode())
    assert len(got) == 1 and isinstance(got[0], PerimeterReading)
    assert got[0].detector == "ir-n-01" and got[0].beam == 2
    assert letters.total == 0
    assert ingest.health is not None
    assert next(h for h in ingest.health.health() if h.id == "ir-n-01").online


def test_garbage_is_a_dead_letter_counted_for_its_device() -> None:
    ingest, got, letters = _ingest(load_site(DEMO_SITE))
    ingest.handle("site/demo-prison/perimeter/ir-n-01/event", b"\x00\xffnot json")
    ingest.handle("site/demo-prison/perimeter/ir-n-01/event", b"{not json")
    assert got == []
    assert letters.count("ir-n-01") == 2
    assert ingest.health is not None
    assert next(h for h in ingest.health.health() if h.id == "ir-n-01").dead_letters == 2


def test_unknown_device_is_logged_once_and_counted_every_time(caplog: pytest.LogCaptureFixture) -> None:
    ingest, _got, letters = _ingest(load_site(DEMO_SITE))
    with caplog.at_level(logging.WARNING, logger="edge.ingest"):
        for _ in range(5):
            ingest.handle("site/demo-prison/perimeter/ir-ghost/event", b'{"state":"alarm"}')
    assert letters.count("ir-ghost", "unknown_device") == 5
    assert sum("ir-ghost" in r.getMessage() for r in caplog.records) == 1


def test_devices_of_another_edge_are_ignored_quietly() -> None:
    ingest, got, letters = _ingest(load_site(DEMO_SITE))
    # ir-e-01 is on the east fence, which edge-w2 serves
    ingest.handle("site/demo-prison/perimeter/ir-e-01/event", b'{"detector":"ir-e-01","state":"alarm"}')
    assert got == [] and letters.total == 0 and ingest.stats.foreign == 1


@pytest.mark.parametrize("discover", [True, False])
@pytest.mark.parametrize("config", [DEMO_SITE, LOAD_SITE])
def test_every_served_topic_is_read_by_exactly_one_lane(config: Path, discover: bool) -> None:
    """Alarms and bulk readings in separate sessions, and no message delivered to both."""
    site = load_site(config)
    for edge in site.edges:
        ingest = Ingest(site, edge, "mqtt://x:y@127.0.0.1:1", on_readings=list, deadletters=DeadLetterStore(),
                        discover_unknown=discover)  # fmt: skip
        lanes = {lane.name: lane for lane in ingest.lanes}
        for device in site.devices:
            if device.id not in site.edge_device_ids(edge):
                continue
            for topic in drivers.device_topics(site.site.id, device):
                readers = [n for n, lane in lanes.items() if any(Topic(topic).matches(f) for f in lane.subscriptions)]
                bulk = device.family is Family.RTLS or topic.endswith("/telemetry")
                assert readers == ["bulk" if bulk else "alarms"], (edge.id, topic, readers)
        if discover:
            assert f"site/{site.site.id}/perimeter/#" in lanes["alarms"].subscriptions
        # the session id ingest had before the lanes drops what would now deliver positions twice
        assert f"site/{site.site.id}/#" in lanes["alarms"].stale
        assert lanes["alarms"].client_id == f"gw-{edge.id}-ingest"
    assert ingest.stats.devices > 0 and ingest.stats.topics >= 2 * ingest.stats.devices


def test_an_alarm_does_not_wait_behind_a_backlog_of_positions(fresh_mosquitto: Mosquitto) -> None:
    """5,000 positions queued before a beam alarm: in a single session the alarm would be handled
    last; in its own lane it comes among the first readings."""
    url = fresh_mosquitto.add_user("edge-w1", edge_acl("edge-w1"))
    ingest, got, _letters = _ingest(load_site(DEMO_SITE), url)
    backlog = 5_000

    async def scenario() -> int:
        await _until_connected(ingest)  # both sessions exist: the broker queues for them from now on
        async with async_client(fresh_mosquitto.url("devices"), "test-backlog", max_inflight=1000) as dev:
            for i in range(backlog):
                body = {"tag": f"T-{i % 50:04d}", "x": 10.0 + i % 7, "y": 20.0}
                await dev.publish("site/demo-prison/rtls/rtls-w1/positions", json.dumps(body), qos=1)
            await dev.publish("site/demo-prison/perimeter/ir-n-02/event", b'{"detector":"ir-n-02","state":"alarm"}',
                              qos=1)  # fmt: skip
        task = asyncio.create_task(ingest.run())
        try:
            async with asyncio.timeout(60):
                while _positions(got) < backlog or not any(isinstance(r, PerimeterReading) for r in got):
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        alarm = next(i for i, r in enumerate(got) if isinstance(r, PerimeterReading))
        return _positions(got[:alarm])

    before = asyncio.run(scenario())
    print(f"the alarm was handled after {before} of {backlog} positions")
    assert before < backlog // 10, f"the alarm waited behind {before} of {backlog} queued positions"


def _positions(readings: list[Reading]) -> int:
    """Positions in `readings` (ingest joins consecutive RTLS batches into one reading)."""
    return sum(len(r.positions) for r in readings if isinstance(r, PositionsReading))


async def _until_connected(ingest: Ingest) -> None:
    """Run ingest until both lanes have subscribed, then stop it (its persistent sessions stay)."""
    task = asyncio.create_task(ingest.run())
    try:
        async with asyncio.timeout(10):
            while not ingest.stats.connected:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_ingest_reads_the_real_broker(fresh_mosquitto: Mosquitto) -> None:
    url = fresh_mosquitto.add_user("edge-w1", edge_acl("edge-w1"))
    ingest, got, letters = _ingest(load_site(DEMO_SITE), url)
    asyncio.run(_publish_and_wait(fresh_mosquitto, ingest, got, letters))
    assert isinstance(got[0], PerimeterReading) and got[0].detector == "ir-n-02"
    assert letters.recent(1)[0].payload == b"garbage"


async def _publish_and_wait(broker: Mosquitto, ingest: Ingest, got: list[Reading], letters: DeadLetterStore) -> None:
    task = asyncio.create_task(ingest.run())
    try:
        async with asyncio.timeout(10):
            while not ingest.stats.connected:
                await asyncio.sleep(0.05)
            async with async_client(broker.url("devices"), "test-devices") as dev:
                await dev.publish(
                    "site/demo-prison/perimeter/ir-n-02/event", b'{"detector":"ir-n-02","state":"alarm"}', qos=1
                )
                await dev.publish("site/demo-prison/perimeter/ir-n-02/event", b"garbage", qos=1)
            while not got or letters.total < 1:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
