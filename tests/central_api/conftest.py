"""A real central (uvicorn on a free port) against the session Mosquitto, with one user per role."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
import uvicorn
from fastapi import FastAPI

from central.app import create_app
from central.settings import Settings
from gridwatch.broker import Mosquitto, free_port
from gridwatch.config import load_text
from gridwatch.config.models import SiteConfig
from gridwatch.contract.base import new_event_id
from gridwatch.contract.uplink import uplink_topic
from gridwatch.mqtt import sync_client

SITE_ID = "test-prison"
ADMIN_PASSWORD = "admin-pass-123"
ROLES = ("operator", "officer", "supervisor", "engineer", "admin")
PASSWORDS = {role: f"{role}-pass-123" for role in ROLES}

SITE_YAML = """
site: {id: test-prison, name: Test Prison, timezone: UTC}
areas:
  - id: ward-1
    supervisor: sup
    grids:
      - {id: g1, officer: off, polygon: [[0, 0], [10, 0], [10, 10], [0, 10]], expected_headcount: 2}
  - id: ward-2
    supervisor: sup
    grids:
      - {id: g2, officer: off, polygon: [[20, 0], [30, 0], [30, 10], [20, 10]], expected_headcount: 1}
zones:
  - {id: perim-n, kind: perimeter, area: ward-1, polygon: [[0, 20], [30, 20], [30, 22], [0, 22]]}
  - {id: yard-2, kind: yard, area: ward-2, polygon: [[20, 11], [30, 11], [30, 19], [20, 19]]}
devices:
  - {id: ir-n-1, family: perimeter_ir, zone: perim-n}
  - {id: ir-y-1, family: perimeter_ir, zone: yard-2}
people:
  - {id: P-1, role: inmate, grid: g1, tag: T-1}
  - {id: P-2, role: inmate, grid: g1, tag: T-2}
edges:
  - {id: edge-a, areas: [ward-1]}
  - {id: edge-b, areas: [ward-2]}
central:
  users:
    - {username: sup, role: supervisor, name: Supervisor Wang}
    - {username: off, role: officer, grids: [g1]}
response_plans:
  perimeter.intrusion: [look at the camera, send the response team]
"""


@pytest.fixture(scope="session")
def site() -> SiteConfig:
    return load_text(SITE_YAML, "test-site.yaml", env={})


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # runs in a thread: leave the main thread's signals alone
        return


@dataclass
class Central:
    """A running central: its URL, app, settings, tokens per role and an edge-side MQTT publisher."""

    url: str
    app: FastAPI
    settings: Settings
    broker: Mosquitto
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, role: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=15)

    def publish(self, edge: str, kind: str, body: dict[str, Any] | bytes, *rest: str) -> None:
        """Publish as an edge would (QoS 1, waits for the PUBACK)."""
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        client = sync_client(self.broker.url("admin"), f"test-edge-{uuid.uuid4().hex[:8]}")
        client.connect(self.broker_host, self.broker.port)
        client.loop_start()
        try:
            info = client.publish(uplink_topic(SITE_ID, edge, kind, *rest), payload, qos=1)
            info.wait_for_publish(timeout=5)
            assert info.is_published()
        finally:
            client.disconnect()
            client.loop_stop()

    broker_host: str = "127.0.0.1"

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def alert_detail(self, alert_id: str, timeout: float = 10.0) -> dict[str, Any]:
        with self.client() as http:

            def fetch() -> dict[str, Any] | None:
                r = http.get(f"/api/v1/alerts/{alert_id}")
                return r.json() if r.status_code == 200 else None

            result: dict[str, Any] = self.wait_for(fetch, timeout, f"alert {alert_id} to reach central")
            return result


def iso(ts: datetime | None = None) -> str:
    return (ts or datetime.now(UTC)).isoformat().replace("+00:00", "Z")


def alert_body(
    alert_id: str,
    *,
    level: str = "medium",
    state: str = "active",
    rule: str = "perimeter.intrusion",
    edge: str = "edge-a",
    title: str = "Beam break, north fence",
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id or new_event_id(),
        "alert_id": alert_id,
        "rule": rule,
        "level": level,
        "state": state,
        "ts": iso(),
        "first_seen": iso(),
        "site": SITE_ID,
        "edge": edge,
        "area": "ward-1",
        "grid": "g1",
        "zone": "perim-n",
        "subject": {"kind": "zone", "id": "perim-n"},
        "devices": ["ir-n-1"],
        "title": title,
        "detail": {"beams": [1]},
        "snapshot": None,
    }


def start_central(settings: Settings, broker: Mosquitto) -> Iterator[Central]:
    app = create_app(settings)
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="central-under-test", daemon=True)
    thread.start()
    central = Central(f"http://127.0.0.1:{port}", app, settings, broker)
    try:
        central.wait_for(lambda: server.started, 30, "uvicorn to start")
        central.wait_for(
            lambda: httpx.get(f"{central.url}/readyz", timeout=5).status_code == 200,
            30,
            "central /readyz to answer 200",
        )
        service = app.state.service
        for role in ROLES:
            if role != "admin":
                service.create_user(f"user-{role}", PASSWORDS[role], role)
        logins = {**{r: (f"user-{r}", PASSWORDS[r]) for r in ROLES if r != "admin"}, "admin": ("admin", ADMIN_PASSWORD)}
        for role, (username, password) in logins.items():
            r = httpx.post(f"{central.url}/api/v1/auth/token", data={"username": username, "password": password})
            assert r.status_code == 200, r.text
            central.tokens[role] = r.json()["access_token"]
        yield central
    finally:
        server.should_exit = True
        thread.join(15)


def make_settings(site: SiteConfig, broker: Mosquitto, workdir: Path, **changes: Any) -> Settings:
    env = {
        "GRIDWATCH_UPLINK_BROKER": broker.url("central"),
        "GRIDWATCH_DATABASE_URL": f"sqlite:///{workdir / 'central.db'}",
        "GRIDWATCH_TSDB_URL": f"sqlite:///{workdir / 'tsdb.db'}",
        "GRIDWATCH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GRIDWATCH_SECRET_KEY": "k" * 48,
    }
    settings = Settings.from_site(site, env)
    defaults: dict[str, Any] = {
        "cmd_timeout_s": 2.0,
        "static_dir": None,
        "mqtt_identifier": f"central-test-{uuid.uuid4().hex[:8]}",
    }
    return settings.with_(**{**defaults, **changes})


@pytest.fixture(scope="module")
def central(site: SiteConfig, mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    settings = make_settings(site, mosquitto, tmp_path_factory.mktemp("central"))
    yield from start_central(settings, mosquitto)


@pytest.fixture
def fake_edge(central: Central) -> Iterator[list[dict[str, Any]]]:
    """edge-a answering cmd/# with a cmd_result over MQTT, as a real edge would; yields the commands seen."""
    seen: list[dict[str, Any]] = []
    client = sync_client(central.broker.url("admin"), f"fake-edge-a-{uuid.uuid4().hex[:6]}")
    subscribed = threading.Event()

    def on_message(c: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        body = json.loads(message.payload)
        name = message.topic.rsplit("/", 1)[1]
        if name == "confirm":  # confirmations of its cmd_results: a real edge's outbox takes them, unanswered
            return
        seen.append({"name": name, **body})
        if name == "rollcall":
            result = {"grid": body["grid"], "present": ["P-1"], "expected": 2, "missing": ["P-2"]}
        else:
            result = {"applied": True}
        reply = {"request_id": body["request_id"], "ok": True, "result": result}
        c.publish(uplink_topic(SITE_ID, "edge-a", "cmd_result"), json.dumps(reply), qos=1)

    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect("127.0.0.1", central.broker.port)
    client.loop_start()
    client.subscribe(uplink_topic(SITE_ID, "edge-a", "cmd", "#"), qos=1)
    assert subscribed.wait(5), "fake edge could not subscribe"
    yield seen
    client.disconnect()
    client.loop_stop()
