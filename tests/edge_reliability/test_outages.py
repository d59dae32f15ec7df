"""Outages under load against real Mosquitto, counted on a subscriber of the uplink (contract §3).

Devices publish a steady stream to the edge's device broker: access card reads with a unique card
number each (events), SOS presses from a unique band each (one alert and one event each) and RTLS
positions (telemetry). A "central" subscriber (persistent session, QoS 1) records every uplink
message in arrival order. Then one thing breaks:

(a) the one Mosquitto that is both device and uplink broker restarts mid-stream (2 s down);
(b) the uplink broker, a second Mosquitto, is down for OUTAGE_S (120 s with GRIDWATCH_SOAK=1) while
    devices keep publishing to the first: alerts queued meanwhile must all arrive before any
    telemetry queued meanwhile;
(c) the edge, a `gridwatch edge run` process, is SIGKILLed mid-stream and started again.

Each time every alert and every device event must arrive, and after de-duplication by event_id
exactly once. A device event seen twice under two event_ids is allowed only as many times as the
edge itself received a device message twice (QoS 1 redelivery on the device side).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from edge.agent import EdgeAgent
from gridwatch.broker import ADMIN_ACL, CENTRAL_ACL, BrokerUser, Mosquitto, edge_acl, free_port
from gridwatch.config import load_site
from gridwatch.contract import format_ts, utcnow
from gridwatch.mqtt import async_client
from tests.conftest import DEMO_SITE, REPO

pytestmark = pytest.mark.integration

OUTAGE_S = 120.0 if os.environ.get("GRIDWATCH_SOAK") == "1" else 20.0
UPLINK = "gridwatch/v1/demo-prison/edge-w1"
SITE = "site/demo-prison"
ACCESS_TOPIC = f"{SITE}/access/acc-w1-staff/event"  # the officers' corridor door is scheduled "always"
SOS_TOPIC = f"{SITE}/wristband/wb-w1/event"
RTLS_TOPIC = f"{SITE}/rtls/rtls-w1/positions"
TICK_S = 0.05
CARDS_PER_TICK = 3
SOS_EVERY = 10  # ticks
TAGS = [f"T-{i:04d}" for i in range(1, 6)]


# -- the uplink subscriber ------------------------------------------------------------------------
@dataclass
class Arrival:
    seq: int
    kind: str
    body: dict[str, Any]
    at: float


@dataclass
class Central:
    """A persistent QoS 1 subscriber of the edge's uplink that reconnects for ever."""

    url: str
    client_id: str = "test-central-reliability"
    arrivals: list[Arrival] = field(default_factory=list)
    reconnects: int = 0
    connected: bool = False

    async def run(self) -> None:
        while True:
            try:
                async with async_client(self.url, self.client_id, persistent=True) as client:
                    await client.subscribe(f"{UPLINK}/#", qos=1)
                    self.connected = True
                    async for message in client.messages:
                        kind = message.topic.value.removeprefix(UPLINK + "/")
                        if kind not in ("alerts", "events", "telemetry"):
                            continue
                        payload = message.payload
                        assert isinstance(payload, bytes)
                        self.arrivals.append(Arrival(len(self.arrivals), kind, json.loads(payload), time.monotonic()))
            except aiomqtt.MqttError:
                self.connected = False
                self.reconnects += 1
                await asyncio.sleep(0.2)

    def of(self, kind: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.kind == kind]


# -- the devices ------------------------------------------------------------------------------------
@dataclass
class Devices:
    """Publishes the load; a message that fails is published again after reconnecting (a real device)."""

    url: str
    cards: list[str] = field(default_factory=list)
    bands: list[str] = field(default_factory=list)
    published: int = 0
    retried: int = 0
    positions_ts: list[float] = field(default_factory=list)  # epoch of each positions message
    sos_at: dict[str, float] = field(default_factory=dict)  # band → monotonic time published
    sent_at: dict[str, float] = field(default_factory=dict)  # card or band → monotonic time published
    stop: bool = False

    def _messages(self, n: int) -> list[tuple[str, bytes]]:
        now = utcnow()
        ts = format_ts(now)
        out = []
        for k in range(CARDS_PER_TICK):
            card = f"77:{n * CARDS_PER_TICK + k}"
            self.cards.append(card)
            self.sent_at[card] = time.monotonic()
            body = {"ts": ts, "door": "D-W1-STAFF", "event": "granted", "card": card, "direction": "in"}
            out.append((ACCESS_TOPIC, json.dumps(body).encode()))
        positions = [{"tag": t, "x": 30.0 + (n % 10), "y": 80.0, "ts": ts} for t in TAGS]
        out.append((RTLS_TOPIC, json.dumps({"ts": ts, "positions": positions}).encode()))
        self.positions_ts.append(now.timestamp())
        if n % SOS_EVERY == 0:
            band = f"W-9{n:05d}"
            self.bands.append(band)
            self.sos_at[band] = self.sent_at[band] = time.monotonic()
            out.append((SOS_TOPIC, json.dumps({"ts": ts, "band": band, "event": "sos"}).encode()))
        return out

    async def run(self) -> None:
        n = 0
        client: aiomqtt.Client | None = None
        try:
            while not self.stop:
                pending = self._messages(n)
                while pending:
                    try:
                        if client is None:
                            client = async_client(self.url, "test-devices-reliability", persistent=True)
                            await client.__aenter__()
                        results = await asyncio.gather(
                            *(client.publish(topic, payload, qos=1, timeout=5) for topic, payload in pending),
                            return_exceptions=True,
                        )
                    except aiomqtt.MqttError:
                        pass  # could not connect: everything in `pending` is still to send
                    else:
                        failed = [m for m, r in zip(pending, results, strict=True) if isinstance(r, Exception)]
                        self.published += len(pending) - len(failed)
                        pending = failed
                    if pending:  # the broker is away: reconnect, then send what was not acknowledged
                        self.retried += len(pending)
                        if client is not None:
                            with contextlib.suppress(Exception):
                                await client.__aexit__(None, None, None)
                        client = None
                        await asyncio.sleep(0.2)
                n += 1
                await asyncio.sleep(TICK_S)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.__aexit__(None, None, None)


# -- counting -------------------------------------------------------------------------------------
@dataclass
class Tally:
    alert_ids: Counter[str]
    event_bodies: Counter[str]
    cards: Counter[str]  # after de-duplication of bodies by event_id
    sos_events: Counter[str]
    sos_alerts: dict[str, int]  # band → arrival seq of its first active transition

    @property
    def duplicate_deliveries(self) -> int:
        return sum(n - 1 for n in self.alert_ids.values()) + sum(n - 1 for n in self.event_bodies.values())


def tally(central: Central) -> Tally:
    alert_ids: Counter[str] = Counter()
    sos_alerts: dict[str, int] = {}
    for a in central.of("alerts"):
        alert_ids[a.body["event_id"]] += 1
        if a.body["rule"] == "wristband.sos" and a.body["state"] == "active":
            sos_alerts.setdefault(a.body["subject"]["id"], a.seq)
    bodies: Counter[str] = Counter()
    cards: Counter[str] = Counter()
    sos_events: Counter[str] = Counter()
    for a in central.of("events"):
        bodies[a.body["event_id"]] += 1
        if bodies[a.body["event_id"]] > 1:
            continue  # a redelivered body: counted once
        for item in a.body["batch"]:
            if item["kind"] == "access.granted" and item["device"] == "acc-w1-staff":
                cards[item["data"]["card"]] += 1
            elif item["kind"] == "wristband.sos":
                sos_events[item["data"]["band"]] += 1
    return Tally(alert_ids, bodies, cards, sos_events, sos_alerts)


def assert_complete(t: Tally, devices: Devices, redelivered_to_edge: int, what: str) -> None:
    missing_cards = [c for c in devices.cards if t.cards[c] == 0]
    missing_sos = [b for b in devices.bands if t.sos_events[b] == 0]
    missing_alerts = [b for b in devices.bands if b not in t.sos_alerts]
    assert not missing_cards, (
        f"{what}: {len(missing_cards)} of {len(devices.cards)} card events lost: {missing_cards[:10]}"
    )
    assert not missing_sos, f"{what}: {len(missing_sos)} of {len(devices.bands)} SOS events lost: {missing_sos[:10]}"
    assert not missing_alerts, f"{what}: {len(missing_alerts)} SOS alerts lost: {missing_alerts[:10]}"
    doubled = sum(n - 1 for n in t.cards.values()) + sum(n - 1 for n in t.sos_events.values())
    assert doubled <= redelivered_to_edge, (
        f"{what}: {doubled} device events appear under two event_ids but the edge received only "
        f"{redelivered_to_edge} device messages twice"
    )


async def wait_for(predicate: Any, what: str, timeout: float, *, fail: bool = True) -> float:
    """Seconds until `predicate()`; on timeout fail, or (fail=False) return and let the counts speak."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            if fail:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            break
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def settle_alerts(agent: EdgeAgent, central: Central) -> int:
    """Once the outbox is drained: every transition the edge had stored must reach the subscriber.

    Returns that count. The edge keeps raising transitions (an SOS clears after its quiet period)
    until it stops, so the test compares against what it had stored at this moment, not at the end.
    """
    stored = agent.alerts_sent
    await wait_for(lambda: len(tally(central).alert_ids) >= stored, "the stored alerts at the subscriber", 15)
    return stored


@contextlib.asynccontextmanager
async def running(agent: EdgeAgent, central: Central, devices: Devices) -> AsyncIterator[asyncio.Task[None]]:
    """The edge and the counting subscriber, connected, then the devices publishing; all stopped on exit.

    Yields the devices' task: set `devices.stop` and await it to end the load.
    """
    agent_task = asyncio.create_task(agent.run(install_signal_handlers=False))
    central_task = asyncio.create_task(central.run())
    try:
        await wait_for(
            lambda: agent.ingest.stats.connected and agent.uplink.connected and central.connected,
            "the edge and the subscriber to connect",
            15,
        )
        yield asyncio.create_task(devices.run())
    finally:
        devices.stop = True
        central_task.cancel()
        await agent.stop()
        await agent_task
        with contextlib.suppress(asyncio.CancelledError):
            await central_task


def _expected_complete(central: Central, devices: Devices) -> bool:
    t = tally(central)
    return (
        all(t.cards[c] for c in devices.cards)
        and all(t.sos_events[b] for b in devices.bands)
        and all(b in t.sos_alerts for b in devices.bands)
    )


def _agent(site_url_device: str, site_url_uplink: str, outbox: Path) -> EdgeAgent:
    return EdgeAgent(
        load_site(DEMO_SITE),
        "edge-w1",
        device_broker=site_url_device,
        uplink_broker=site_url_uplink,
        outbox_path=outbox,
        status_bind=None,
        config_hash="reliability",
        cameras=False,
    )


def _report(what: str, central: Central, devices: Devices, t: Tally, **extra: Any) -> None:
    figures = " ".join(f"{k}={v}" for k, v in extra.items())
    print(
        f"\n{what}: published {devices.published} device messages ({devices.retried} retried), "
        f"{len(devices.cards)} card events, {len(devices.bands)} SOS; uplink got {len(t.alert_ids)} alerts "
        f"({sum(t.alert_ids.values())} deliveries), {len(t.event_bodies)} event bodies "
        f"({sum(t.event_bodies.values())} deliveries), {len(central.of('telemetry'))} telemetry bodies; "
        f"duplicate deliveries {t.duplicate_deliveries}; subscriber reconnects {central.reconnects} {figures}"
    )


# -- (a) one broker restarts ------------------------------------------------------------------------
def test_broker_restart_mid_stream(fresh_mosquitto: Mosquitto, tmp_path: Path) -> None:
    url = fresh_mosquitto.add_user("edge-w1", edge_acl("edge-w1"))
    agent = _agent(url, url, tmp_path / "edge-w1-outbox.db")
    marks: dict[str, int] = {}

    async def scenario() -> tuple[Central, Devices, float]:
        central = Central(fresh_mosquitto.url("central"))
        devices = Devices(fresh_mosquitto.url("devices"))
        async with running(agent, central, devices) as device_task:
            await asyncio.sleep(3)
            await asyncio.to_thread(fresh_mosquitto.restart, 2)
            up = time.monotonic()
            await asyncio.sleep(3)
            devices.stop = True
            await device_task
            await wait_for(lambda: _expected_complete(central, devices), "every alert and event", 30, fail=False)
            recovered = time.monotonic() - up
            await wait_for(
                lambda: agent.outbox.depth()["alerts"] == 0 and agent.outbox.depth()["events"] == 0, "drain", 30
            )
            await asyncio.sleep(1.5)  # late duplicates would arrive now
            marks["stored"] = await settle_alerts(agent, central)
            return central, devices, recovered

    central, devices, recovered = asyncio.run(scenario())
    t = tally(central)
    redelivered = agent.ingest.stats.messages - devices.published
    _report("broker restart", central, devices, t, recovered_s=f"{recovered:.1f}", edge_redelivered=redelivered)
    assert agent.ingest.stats.reconnects >= 1 and agent.uplink.reconnects >= 1
    assert_complete(t, devices, max(redelivered, 0), "broker restart")
    assert marks["stored"] <= len(t.alert_ids) <= agent.alerts_sent, (
        f"{len(t.alert_ids)} distinct alerts arrived; {marks['stored']} stored when the outbox had drained, "
        f"{agent.alerts_sent} by the end"
    )


# -- (b) the uplink broker is down for a long time under load --------------------------------------
def test_uplink_outage_under_load_alerts_drain_first(fresh_mosquitto: Mosquitto, tmp_path: Path) -> None:
    device_url = fresh_mosquitto.add_user("edge-w1", edge_acl("edge-w1"))
    uplink_broker = Mosquitto(
        tmp_path / "uplink-mosquitto",
        users=[
            BrokerUser("admin", "admin-secret", ADMIN_ACL),
            BrokerUser("central", "central-secret", CENTRAL_ACL),
            BrokerUser("edge-w1", "edge-w1-secret", edge_acl("edge-w1")),
        ],
    )
    uplink_broker.start()
    agent = _agent(device_url, uplink_broker.url("edge-w1"), tmp_path / "edge-w1-outbox.db")
    marks: dict[str, float] = {}

    async def scenario() -> tuple[Central, Devices]:
        central = Central(uplink_broker.url("central"))
        devices = Devices(fresh_mosquitto.url("devices"))
        async with running(agent, central, devices) as device_task:
            await asyncio.sleep(3)
            await asyncio.to_thread(uplink_broker.stop)
            marks["down_mono"], marks["down_epoch"] = time.monotonic(), time.time()
            await asyncio.sleep(OUTAGE_S)
            marks["depth"] = float(sum(agent.outbox.depth().values()))
            marks["up_epoch"] = time.time()
            marks["first_new_seq"] = len(central.arrivals)
            await asyncio.to_thread(uplink_broker.start)
            marks["up_mono"] = time.monotonic()
            await asyncio.sleep(2)
            devices.stop = True
            await device_task
            await wait_for(lambda: _expected_complete(central, devices), "every alert and event", 30, fail=False)
            marks["recovered_s"] = time.monotonic() - marks["up_mono"]
            await wait_for(lambda: sum(agent.outbox.depth().values()) == 0, "the outbox to drain", 60)
            await asyncio.sleep(1.5)
            marks["stored"] = await settle_alerts(agent, central)
            return central, devices

    try:
        central, devices = asyncio.run(scenario())
    finally:
        uplink_broker.stop()
    t = tally(central)
    redelivered = agent.ingest.stats.messages - devices.published
    # alerts raised during the outage (SOS pressed while the uplink was down, by monotonic clock)
    during = [b for b in devices.bands if marks["down_mono"] <= devices.sos_at[b] < marks["up_mono"] - 2]
    after = [a for a in central.arrivals if a.seq >= marks["first_new_seq"]]
    queued_telemetry = [
        a.seq
        for a in after
        if a.kind == "telemetry"
        and any(marks["down_epoch"] + 1 <= _epoch(p["ts"]) <= marks["up_epoch"] - 1 for p in a.body["batch"])
    ]
    first_telemetry = min(queued_telemetry) if queued_telemetry else None
    last_alert = max((t.sos_alerts[b] for b in during if b in t.sos_alerts), default=None)
    _report(
        f"uplink outage {OUTAGE_S:.0f} s",
        central,
        devices,
        t,
        outbox_depth_at_restart=int(marks["depth"]),
        sos_during_outage=len(during),
        recovered_s=f"{marks['recovered_s']:.1f}",
        last_outage_alert_seq=last_alert,
        first_outage_telemetry_seq=first_telemetry,
    )
    assert len(during) >= OUTAGE_S / (SOS_EVERY * TICK_S) * 0.5, f"only {len(during)} SOS during the outage"
    assert_complete(t, devices, max(redelivered, 0), "uplink outage")
    assert marks["stored"] <= len(t.alert_ids) <= agent.alerts_sent
    assert queued_telemetry, "no telemetry queued during the outage arrived"
    assert last_alert is not None and last_alert < first_telemetry, (
        f"alerts of the outage must drain before its telemetry: last alert #{last_alert}, "
        f"first telemetry #{first_telemetry}"
    )
    # every alert transition queued at restart (also the clears) came before the first queued telemetry
    queued_alerts = [a.seq for a in after if a.kind == "alerts" and _epoch(a.body["ts"]) < marks["up_epoch"]]
    assert queued_alerts and max(queued_alerts) < first_telemetry


def _epoch(ts: str | float) -> float:
    if isinstance(ts, int | float):
        return float(ts)
    from gridwatch.contract import parse_ts

    return parse_ts(ts).timestamp()


# -- (c) SIGKILL the edge ------------------------------------------------------------------------------
def _start_edge(cwd: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    log = (cwd / "edge.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "gridwatch.cli", "edge", "run", "--config", str(DEMO_SITE), "--edge", "edge-w1",
         "--status-bind", f"127.0.0.1:{port}"],
        cwd=cwd, env=env, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip


def _edge_status(port: int) -> dict[str, Any] | None:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/status", timeout=1)
    except httpx.HTTPError:
        return None
    body: dict[str, Any] = r.json()
    return body


def test_sigkill_edge_mid_stream(fresh_mosquitto: Mosquitto, tmp_path: Path) -> None:
    url = fresh_mosquitto.add_user("edge-w1", edge_acl("edge-w1"))
    port = free_port()
    env = {
        **os.environ,
        "GRIDWATCH_DEVICE_BROKER": url,
        "GRIDWATCH_UPLINK_BROKER": url,
        "PYTHONPATH": str(REPO),
        "GRIDWATCH_CAMERA_BASE": "file:///nonexistent",
    }
    procs: list[subprocess.Popen[bytes]] = []
    messages: list[int] = []  # device messages each edge process reported
    kill_at: list[float] = []

    def connected() -> bool:
        s = _edge_status(port)
        return bool(s and s["ingest"]["connected"] and s["uplink"]["connected"])

    async def scenario() -> tuple[Central, Devices, float]:
        central = Central(fresh_mosquitto.url("central"))
        central_task = asyncio.create_task(central.run())
        devices = Devices(fresh_mosquitto.url("devices"))
        procs.append(_start_edge(tmp_path, env, port))
        await wait_for(connected, "the edge to connect", 60)
        await wait_for(lambda: central.connected, "central", 10)
        device_task = asyncio.create_task(devices.run())
        try:
            await asyncio.sleep(3)
            status = await asyncio.to_thread(_edge_status, port)
            procs[0].send_signal(signal.SIGKILL)
            kill_at.append(time.monotonic())
            await asyncio.to_thread(procs[0].wait)
            messages.append(status["ingest"]["messages"] if status else 0)
            await asyncio.sleep(1)
            procs.append(_start_edge(tmp_path, env, port))
            restarted = time.monotonic()
            await wait_for(connected, "the restarted edge to connect", 60)
            await asyncio.sleep(3)
            devices.stop = True
            await device_task
            await wait_for(lambda: _expected_complete(central, devices), "every alert and event", 30, fail=False)
            recovered = time.monotonic() - restarted
            await asyncio.sleep(1.5)
            final = await asyncio.to_thread(_edge_status, port)
            assert final is not None
            messages.append(final["ingest"]["messages"])
            return central, devices, recovered
        finally:
            devices.stop = True
            central_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await central_task

    try:
        central, devices, recovered = asyncio.run(scenario())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    t = tally(central)
    _report("edge SIGKILL", central, devices, t, recovered_s=f"{recovered:.1f}", edge_messages=messages)
    assert procs[0].returncode == -signal.SIGKILL
    # a device event may appear twice only if its message was in flight when the edge died (received,
    # not yet acknowledged to the device broker, so redelivered to the new process)
    doubled = [c for c, n in t.cards.items() if n > 1] + [b for b, n in t.sos_events.items() if n > 1]
    lost = [k for k in devices.cards if not t.cards[k]] + [b for b in devices.bands if not t.sos_events[b]]
    if lost:
        offsets = sorted(round(devices.sent_at[k] - kill_at[0], 2) for k in lost)
        print(f"lost device events, published at these offsets (s) from the SIGKILL: {offsets}")
    far = [k for k in doubled if abs(devices.sent_at[k] - kill_at[0]) > 2.0]
    assert not far, f"device events duplicated long before or after the kill: {far[:10]}"
    assert_complete(t, devices, len(doubled), "edge SIGKILL")
