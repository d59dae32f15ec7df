"""Browser fixtures: the real central app (uvicorn in a thread, SQLite in tmp, the session's
Mosquitto), an edge-like MQTT publisher and headless Chromium driven by Playwright.

Chromium is Debian's `/usr/bin/chromium` (installed by scripts/setup.sh); Playwright's own browser
download is never used. A missing browser or an app that cannot start fails the run.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import uvicorn

from gridwatch.broker import Mosquitto, free_port
from gridwatch.config import load_site
from gridwatch.config.broker import BrokerUrl
from gridwatch.contract.base import new_event_id
from gridwatch.contract.uplink import AlertTransition, UplinkKind, uplink_topic
from gridwatch.mqtt import sync_client
from tests.conftest import DEMO_SITE

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_PASSWORD = "console-admin-password"
OFFICER_PASSWORD = "console-officer-password"  # every officer of configs/demo-site.yaml (off-li: grid w1-g1)
SUPERVISOR_PASSWORD = "console-supervisor-password"  # sup-wang, sup-huang
ENGINEER_PASSWORD = "console-engineer-password"  # eng-ma
CMD_TIMEOUT_S = 1.0  # no edge answers commands here: a roll call gets its 504 quickly
SITE = "demo-prison"
EDGE = "edge-w1"


@dataclass
class Central:
    url: str
    admin_password: str
    officer_password: str = OFFICER_PASSWORD
    supervisor_password: str = SUPERVISOR_PASSWORD
    engineer_password: str = ENGINEER_PASSWORD


def _wait_started(server: uvicorn.Server, thread: threading.Thread, timeout: float) -> None:
    """Until uvicorn listens; a startup failure (the thread ends) is reported at once."""
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise TimeoutError("uvicorn exited during startup (see the log above for the lifespan error)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"uvicorn did not start within {timeout} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def central(mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    """central.app.create_app(settings) served by uvicorn on a free port, with its own SQLite files."""
    from central.app import create_app
    from central.settings import Settings

    tmp = tmp_path_factory.mktemp("central")
    port = free_port()
    env = {
        "GRIDWATCH_UPLINK_BROKER": mosquitto.url("central"),
        "GRIDWATCH_DATABASE_URL": f"sqlite:///{tmp / 'central.db'}",
        "GRIDWATCH_TSDB_URL": f"sqlite:///{tmp / 'tsdb.db'}",
        "GRIDWATCH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GRIDWATCH_SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
        "GW_OFFICER_PASSWORD": OFFICER_PASSWORD,
        "GW_SUPERVISOR_PASSWORD": SUPERVISOR_PASSWORD,
        "GW_ENGINEER_PASSWORD": ENGINEER_PASSWORD,
    }
    site = load_site(DEMO_SITE, env=env)
    settings = Settings.from_site(site, env, bind=f"127.0.0.1:{port}").with_(
        # a session of our own on the shared broker: no redelivery from other tests' centrals
        mqtt_identifier=f"console-test-{uuid.uuid4().hex[:8]}",
        cmd_timeout_s=CMD_TIMEOUT_S,
    )
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="central-uvicorn", daemon=True)
    thread.start()
    try:
        _wait_started(server, thread, 20)
        _wait_ready(f"http://127.0.0.1:{port}", 20)
    except TimeoutError as exc:
        server.should_exit = True
        pytest.fail(f"central did not start: {exc}", pytrace=False)
    yield Central(f"http://127.0.0.1:{port}", ADMIN_PASSWORD)
    server.should_exit = True
    thread.join(10)


def _wait_ready(base: str, timeout: float) -> None:
    """Wait for /readyz 200: the app is subscribed to the broker, so a publish now is not lost."""
    import httpx

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(f"{base}/readyz", timeout=2)
            if resp.status_code == 200:
                return
            last = resp.text
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise TimeoutError(f"/readyz never answered 200: {last}")


class Edge:
    """Publishes uplink messages as an edge would (QoS 1, waits for PUBACK)."""

    def __init__(self, mosquitto: Mosquitto) -> None:
        url = BrokerUrl.parse(mosquitto.url("admin"))
        self.client = sync_client(url, f"console-test-edge-{uuid.uuid4().hex[:8]}")
        self.client.connect(url.host, url.port)
        self.client.loop_start()

    def publish(self, kind: UplinkKind | str, payload: bytes, *rest: str) -> None:
        info = self.client.publish(uplink_topic(SITE, EDGE, kind, *rest), payload, qos=1)
        info.wait_for_publish(5)
        assert info.rc == paho.MQTT_ERR_SUCCESS and info.is_published(), f"publish failed: rc={info.rc}"

    def snapshot(self, jpeg: bytes) -> str:
        sha = hashlib.sha256(jpeg).hexdigest()
        self.publish(UplinkKind.SNAPSHOTS, jpeg, sha)
        return sha

    def alert(self, alert_id: str, zone: str = "perim-north", **fields: Any) -> AlertTransition:
        """Publish one alert transition in `zone`; `fields` override the defaults (a high intrusion)."""
        now = datetime.now(UTC)
        body: dict[str, Any] = {
            "event_id": new_event_id(),
            "alert_id": alert_id,
            "rule": "perimeter.intrusion",
            "level": "high",
            "state": "active",
            "ts": now,
            "first_seen": now,
            "site": SITE,
            "edge": EDGE,
            "area": None,
            "grid": None,
            "zone": zone,
            "subject": {"kind": "zone", "id": zone},
            "devices": ["ir-n-03", "cam-n-1"] if zone == "perim-north" else [],
            "title": f"Perimeter beam break, {zone.removeprefix('perim-')} fence (2 beams)",
            "detail": {"beams": 2},
            "snapshot": None,
        }
        body.update(fields)
        transition = AlertTransition.model_validate(body)
        self.publish(UplinkKind.ALERTS, json.dumps(transition.model_dump(mode="json")).encode())
        return transition

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def edge(mosquitto: Mosquitto) -> Iterator[Edge]:
    publisher = Edge(mosquitto)
    yield publisher
    publisher.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (own sessionStorage) at 1600x900; page errors fail the test."""
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="en-GB")
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.set_default_timeout(10_000)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors in the console: {errors}"
