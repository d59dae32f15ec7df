"""End to end on a real Mosquitto: device alarm in → alert out on the uplink; garbage → dead letter at /status."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.agent import EdgeAgent
from gridwatch.broker import Mosquitto, edge_acl
from gridwatch.config import load_site
from gridwatch.contract import AlertTransition, DevicesBody, EventsBody, format_ts, parse_uplink, utcnow
from gridwatch.mqtt import async_client
from tests.conftest import DEMO_SITE

pytestmark = pytest.mark.integration

UPLINK = "gridwatch/v1/demo-prison/edge-w1"
# perim-north is armed around the clock (perim-west only at night, site time), so the test does not
# depend on when it runs
ALARM_TOPIC = "site/demo-prison/perimeter/ir-n-01/event"


async def _wait_for(predicate: Any, what: str, timeout: float = 15.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def _dead_letters_reported(uplink: list[tuple[str, bytes]], device: str) -> bool:
    for topic, payload in uplink:
        if topic == f"{UPLINK}/devices":
            body = parse_uplink("devices", payload)
            assert isinstance(body, DevicesBody)
            if any(d.id == device and d.dead_letters for d in body.devices):
                return True
    return False


async def _scenario(broker: Mosquitto, agent: EdgeAgent) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    uplink: list[tuple[str, bytes]] = []
    agent_task = asyncio.create_task(agent.run(install_signal_handlers=False))
    async with async_client(broker.url("central"), "test-central") as central:
        await central.subscribe(f"{UPLINK}/#", qos=1)

        async def collect() -> None:
            async for message in central.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                uplink.append((message.topic.value, payload))

        collector = asyncio.create_task(collect())
        try:
            await _wait_for(lambda: agent.ingest.stats.connected and agent.uplink.connected, "the edge to connect")
            async with async_client(broker.url("devices"), "test-devices") as devices:
                alarm = {"ts": format_ts(utcnow()), "detector": "ir-n-01", "beam": 1, "state": "alarm"}
                await devices.publish(ALARM_TOPIC, json.dumps(alarm).encode(), qos=1)
                await devices.publish(ALARM_TOPIC, b"\x00\x01 garbage \xff", qos=1)
                await devices.publish("site/demo-prison/perimeter/ir-ghost/event", b'{"state":"alarm"}', qos=1)

            def kinds() -> set[str]:
                return {topic.removeprefix(UPLINK + "/") for topic, _ in uplink}

            await _wait_for(lambda: {"alerts", "events"} <= kinds(), "alerts and events")
            await _wait_for(lambda: _dead_letters_reported(uplink, "ir-n-01"), "a devices body with the dead letter")
            assert agent.status_server is not None
            async with httpx.AsyncClient() as http:
                response = await http.get(f"http://127.0.0.1:{agent.status_server.port}/status")
                metrics = await http.get(f"http://127.0.0.1:{agent.status_server.port}/metrics")
            assert response.status_code == 200 and metrics.status_code == 200
            assert 'device="ir-ghost"' in metrics.text and "gridwatch_edge_dead_letters_total" in metrics.text
            status: dict[str, Any] = response.json()
        finally:
            collector.cancel()
            await agent.stop()
            await agent_task
    return uplink, status


def test_alarm_becomes_an_uplink_alert_and_garbage_a_dead_letter(fresh_mosquitto: Mosquitto, tmp_path: Path) -> None:
    site = load_site(DEMO_SITE)
    url = fresh_mosquitto.add_user("edge-w1", edge_acl("edge-w1"))
    agent = EdgeAgent(
        site,
        "edge-w1",
        device_broker=url,
        uplink_broker=url,
        outbox_path=tmp_path / "edge-w1-outbox.db",
        status_bind="127.0.0.1:0",
        config_hash="test",
        cameras=False,  # the demo's RTSP cameras are not running here
    )
    uplink, status = asyncio.run(_scenario(fresh_mosquitto, agent))

    alerts = [parse_uplink("alerts", p) for t, p in uplink if t == f"{UPLINK}/alerts"]
    assert alerts and all(isinstance(a, AlertTransition) for a in alerts)
    intrusion = [a for a in alerts if isinstance(a, AlertTransition) and a.rule == "perimeter.intrusion"]
    assert intrusion, [a.model_dump() for a in alerts]
    assert intrusion[0].zone == "perim-north" and intrusion[0].state == "active" and intrusion[0].edge == "edge-w1"
    assert "ir-n-01" in intrusion[0].devices

    events = [parse_uplink("events", p) for t, p in uplink if t == f"{UPLINK}/events"]
    kinds = [(e.device, e.kind) for body in events if isinstance(body, EventsBody) for e in body.batch]
    assert ("ir-n-01", "perimeter.alarm") in kinds

    devices = [parse_uplink("devices", p) for t, p in uplink if t == f"{UPLINK}/devices"]
    last = devices[-1]
    assert isinstance(last, DevicesBody)
    ir = next(d for d in last.devices if d.id == "ir-n-01")
    assert ir.online and ir.dead_letters == 1

    letters = status["dead_letters"]
    assert letters["total"] == 2
    by_device = {(row["device"], row["reason"]): row["count"] for row in letters["by_device"]}
    assert by_device[("ir-ghost", "unknown_device")] == 1
    garbage = next(d for d in letters["last"] if d["device"] == "ir-n-01")
    assert base64.b64decode(garbage["payload_b64"]) == b"\x00\x01 garbage \xff"
    assert garbage["topic"] == ALARM_TOPIC
    assert status["alerts"]["sent"] >= 1 and status["ingest"]["connected"] is True
    assert status["uplink"]["connected"] is True
