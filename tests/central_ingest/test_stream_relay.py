"""A console sees every change whichever central process it is connected to.

Three central processes on one SQLite database and a real Mosquitto, logged in as the `central`
broker user (CENTRAL_ACL): an ingest worker, an `all` process and an `api` replica. An edge's
alert is stored by whichever ingest gets it; an operator acknowledges it through the replica.
Consoles on the `all` process and on the replica must both see the alert arrive and see it
acknowledged, each exactly once per change.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from central.relay import relay_topic
from gridwatch.broker import Mosquitto, edge_acl
from gridwatch.config import load_text
from gridwatch.config.models import SiteConfig
from gridwatch.contract.uplink import uplink_topic
from gridwatch.mqtt import sync_client
from tests.central_api.conftest import ADMIN_PASSWORD, SITE_ID, SITE_YAML, alert_body

from .helpers import Worker, database_path, edge_publisher, settings_for, start_worker, wait_for

pytestmark = pytest.mark.integration


class Console:
    """Reads one process's SSE stream on a thread; keeps the `alert` events."""

    def __init__(self, worker: Worker) -> None:
        token = httpx.post(
            f"{worker.url}/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}, timeout=10
        ).json()["access_token"]
        self.url = f"{worker.url}/api/v1/stream?access_token={token}"
        self.alerts: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the stream did not open"

    def _run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as client, client.stream("GET", self.url) as r:
            self.ready.set()
            event = ""
            try:
                for line in r.iter_lines():
                    if self.stop.is_set():
                        return
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event == "alert":
                        self.alerts.append(json.loads(line[5:]))
            except httpx.RemoteProtocolError:
                return  # the server stopped at the end of the test

    def states(self, alert_id: str) -> list[tuple[str, str]]:
        return [(a["condition"], a["workflow"]) for a in self.alerts if a["id"] == alert_id]


@pytest.fixture
def site() -> SiteConfig:
    return load_text(SITE_YAML, "test-site.yaml", env={})


@pytest.fixture
def processes(site: SiteConfig, fresh_mosquitto: Mosquitto, tmp_path: Path) -> Iterator[dict[str, Worker]]:
    fresh_mosquitto.add_user("edge-a", edge_acl("edge-a"))
    url = database_path(tmp_path)
    started: dict[str, Worker] = {}
    try:
        started["ingest"] = start_worker(
            "ingest-1", settings_for(site, fresh_mosquitto, url, role="ingest", worker="1")
        )
        for role in ("all", "api"):
            settings = settings_for(
                site, fresh_mosquitto, url, role=role, shared_ingest=True, admin_password=ADMIN_PASSWORD
            )
            started[role] = start_worker(role, settings)
        for worker in started.values():
            wait_for(lambda w=worker: w.app.state.relay.connected.is_set(), 10, f"{worker.name}'s relay")
        yield started
    finally:
        for worker in started.values():
            worker.stop()


def test_every_console_sees_every_change_whichever_process_made_it(
    processes: dict[str, Worker], fresh_mosquitto: Mosquitto
) -> None:
    consoles = {role: Console(processes[role]) for role in ("all", "api")}
    edge = edge_publisher(fresh_mosquitto, "edge-a")
    alert_ids = [f"relay-{uuid.uuid4().hex[:8]}" for _ in range(10)]
    try:
        for alert_id in alert_ids:  # split by the broker between the ingest worker and the `all` process
            edge.publish(uplink_topic(SITE_ID, "edge-a", "alerts"), json.dumps(alert_body(alert_id)), qos=1)
        for role, console in consoles.items():
            wait_for(
                lambda c=console: all(c.states(a) for a in alert_ids), 15, f"the {role} console to see every alert"
            )
        stored_by = [
            processes[r].metric("gridwatch_central_ingest_messages_total", kind="alerts") for r in ("ingest", "all")
        ]
        assert sum(stored_by) == len(alert_ids)

        token = httpx.post(
            f"{processes['api'].url}/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        r = httpx.post(
            f"{processes['api'].url}/api/v1/alerts/{alert_ids[0]}/ack",
            json={"note": "seen on camera"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        for role, console in consoles.items():
            wait_for(
                lambda c=console: ("active", "acknowledged") in c.states(alert_ids[0]),
                10,
                f"the {role} console to see the acknowledgement",
            )
        time.sleep(0.5)  # a relayed event echoed back to its sender would arrive now
        for console in consoles.values():
            for alert_id in alert_ids:
                assert console.states(alert_id).count(("active", "new")) == 1, console.states(alert_id)
            assert console.states(alert_ids[0]).count(("active", "acknowledged")) == 1
        assert processes["api"].metric("gridwatch_central_stream_relayed_total", direction="received") > 0
    finally:
        edge.disconnect()
        edge.loop_stop()
        for console in consoles.values():
            console.stop.set()


def test_edges_cannot_read_or_forge_the_relay(fresh_mosquitto: Mosquitto) -> None:
    """The relay topic is central's: an edge's credentials can neither hear it nor write to it."""
    fresh_mosquitto.add_user("edge-a", edge_acl("edge-a"))
    topic = relay_topic(SITE_ID)
    heard: list[bytes] = []
    subscribed = threading.Event()
    central = sync_client(fresh_mosquitto.url("central"), f"relay-listener-{uuid.uuid4().hex[:6]}")
    central.on_message = lambda _c, _u, m: heard.append(m.payload)
    central.on_subscribe = lambda *_a: subscribed.set()
    central.connect("127.0.0.1", fresh_mosquitto.port)
    central.loop_start()
    central.subscribe(topic, qos=1)
    edge = edge_publisher(fresh_mosquitto, "edge-a")
    spy_heard: list[bytes] = []
    spy = sync_client(fresh_mosquitto.url("edge-a"), f"edge-a-spy-{uuid.uuid4().hex[:6]}")
    spy.on_message = lambda _c, _u, m: spy_heard.append(m.payload)
    spy.connect("127.0.0.1", fresh_mosquitto.port)
    spy.loop_start()
    try:
        assert subscribed.wait(5)
        spy.subscribe(topic, qos=1)
        forged = {"origin": "x", "event": "alert", "data": {"id": "forged"}}
        edge.publish(topic, json.dumps(forged), qos=1).wait_for_publish(5)
        central.publish(topic, b'{"origin":"y","event":"alert","data":{}}', qos=1).wait_for_publish(5)
        wait_for(lambda: heard, 5, "central's own relay message")
        time.sleep(0.5)
        assert heard == [b'{"origin":"y","event":"alert","data":{}}']  # the forged one never arrived
        assert spy_heard == []
    finally:
        for client in (central, edge, spy):
            client.disconnect()
            client.loop_stop()
