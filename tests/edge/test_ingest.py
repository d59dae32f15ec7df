"""Ingest message handling: topic → device → readings; bad input and unknown devices → dead letters."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import pytest

from edge.deadletter import DeadLetterStore
from edge.health import DeviceHealthTracker
from edge.ingest import Ingest
from gridwatch.broker import Mosquitto, edge_acl
from gridwatch.clock import FakeClock
from gridwatch.config import load_site
from gridwatch.config.models import SiteConfig
from gridwatch.contract import PerimeterReading, Reading
from gridwatch.mqtt import async_client
from tests.conftest import DEMO_SITE

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


def test_subscriptions_do_not_overlap_the_discovery_filter() -> None:
    ingest, _got, _letters = _ingest(load_site(DEMO_SITE))
    assert ingest.subscriptions == ["site/demo-prison/#"]
    assert ingest.stats.devices > 0 and ingest.stats.topics >= 2 * ingest.stats.devices


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
