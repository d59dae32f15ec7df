"""Two ingest workers behind one MQTT 5 shared subscription, one SQLite database, 10,000 uplink alerts.

Each worker is a full `create_app(settings.with_(role="ingest"))` under uvicorn on a thread, logged
in to a real Mosquitto as the `central` user (CENTRAL_ACL, which must allow the `$share/…`
subscription); the edges publish as their own broker users (edge_acl).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from sqlalchemy import func, select

from central.store.db import open_database
from central.store.models import Received, Transition
from gridwatch.broker import Mosquitto, edge_acl
from gridwatch.config import load_text
from gridwatch.config.models import SiteConfig
from gridwatch.contract.base import new_event_id
from gridwatch.contract.uplink import uplink_topic
from gridwatch.mqtt import sync_client
from tests.central_api.conftest import ADMIN_PASSWORD, SITE_ID, SITE_YAML, alert_body

from .helpers import Worker, database_path, edge_publisher, settings_for, start_worker, wait_for

MESSAGES = 10_000
RESENT = 500  # re-sent duplicates (an edge resending after a lost PUBACK)
MISMATCHED = 20  # alerts naming another edge than their topic: rejected, never stored
ALERTS = 1_000  # alert ids the transitions are spread over (10 transitions each)


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_text(SITE_YAML, "test-site.yaml", env={})


@pytest.fixture
def broker(fresh_mosquitto: Mosquitto) -> Mosquitto:
    for edge in ("edge-a", "edge-b"):
        fresh_mosquitto.add_user(edge, edge_acl(edge))
    return fresh_mosquitto


@pytest.fixture
def two_workers(site: SiteConfig, broker: Mosquitto, tmp_path: Path) -> Iterator[list[Worker]]:
    url = database_path(tmp_path)
    started: list[Worker] = []
    try:
        for n in ("1", "2"):
            settings = settings_for(site, broker, url, role="ingest", worker=n)
            started.append(start_worker(f"ingest-{n}", settings))
        yield started
    finally:
        for worker in started:
            worker.stop()


def _bodies() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(MESSAGES):
        edge = "edge-a" if i % 2 == 0 else "edge-b"
        alert = f"al-{edge}-{i % ALERTS:04d}"
        state = "cleared" if i % 10 == 9 else "active"
        out.append((edge, alert_body(alert, edge=edge, state=state, level="low", event_id=new_event_id())))
    return out


def _publish_all(broker: Mosquitto, messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Publish every (edge, body) as that edge, QoS 1, waiting for every PUBACK."""
    clients = {edge: edge_publisher(broker, edge) for edge in ("edge-a", "edge-b")}
    try:
        infos = []
        for edge, body in messages:
            topic = uplink_topic(SITE_ID, edge, "alerts")
            infos.append(clients[edge].publish(topic, json.dumps(body).encode(), qos=1))
        for info in infos:
            info.wait_for_publish(timeout=60)
            assert info.is_published()
    finally:
        for client in clients.values():
            client.disconnect()
            client.loop_stop()


def test_two_workers_share_10000_messages_and_store_each_exactly_once(
    two_workers: list[Worker], broker: Mosquitto, tmp_path: Path
) -> None:
    bodies = _bodies()
    resent = bodies[:: MESSAGES // RESENT][:RESENT]
    mismatched = [
        ("edge-a", alert_body(f"al-spoof-{i}", edge="edge-b", event_id=new_event_id())) for i in range(MISMATCHED)
    ]
    # the resends come after the originals were acknowledged, as an edge's outbox would resend
    _publish_all(broker, bodies[: MESSAGES // 2] + mismatched)
    _publish_all(broker, bodies[MESSAGES // 2 :] + resent)

    def handled() -> float:
        return sum(
            w.metric("gridwatch_central_ingest_messages_total", kind="alerts")
            + w.metric("gridwatch_central_ingest_malformed_total", reason="edge_mismatch")
            for w in two_workers
        )

    total = MESSAGES + RESENT + MISMATCHED
    wait_for(lambda: handled() >= total, 300, f"{total} messages to be handled", period=0.5)

    per_worker = [w.metric("gridwatch_central_ingest_messages_total", kind="alerts") for w in two_workers]
    assert all(n > 0 for n in per_worker), f"the shared subscription gave a worker nothing: {per_worker}"
    assert sum(per_worker) == MESSAGES + RESENT
    duplicates = sum(w.metric("gridwatch_central_ingest_duplicates_total", kind="alerts") for w in two_workers)
    assert duplicates == RESENT
    stored_new = sum(w.metric("gridwatch_central_alert_transitions_total") for w in two_workers)
    assert stored_new == MESSAGES
    rejected = sum(w.metric("gridwatch_central_ingest_malformed_total", reason="edge_mismatch") for w in two_workers)
    assert rejected == MISMATCHED

    db = open_database(database_path(tmp_path))
    try:
        with db.read() as session:
            stored = session.execute(select(Transition.event_id)).scalars().all()
            received = session.execute(select(func.count()).select_from(Received)).scalar_one()
    finally:
        db.close()
    expected = {body["event_id"] for _edge, body in bodies}
    assert len(stored) == MESSAGES, "every event_id stored exactly once"
    assert set(stored) == expected
    assert received == MESSAGES
    assert not any(body["event_id"] in set(stored) for _edge, body in mismatched)


def test_an_all_in_one_process_on_the_shared_subscription_still_gets_its_command_results(
    site: SiteConfig, broker: Mosquitto, tmp_path: Path
) -> None:
    """cmd_results may go to any worker of the group; the API process hears them on its own subscription."""
    url = database_path(tmp_path)
    workers: list[Worker] = []
    answering = sync_client(broker.url("edge-a"), f"edge-a-cmd-{uuid.uuid4().hex[:6]}")
    try:
        workers.append(start_worker("ingest-1", settings_for(site, broker, url, role="ingest", worker="1")))
        api_settings = settings_for(site, broker, url, role="all", shared_ingest=True, admin_password=ADMIN_PASSWORD)
        api = start_worker("all", api_settings)
        workers.append(api)
        assert api.app.state.ingest.mode == "shared"
        assert api.app.state.cmd_listener is not None and api.app.state.cmd_listener.connected

        subscribed = threading.Event()

        def on_message(c: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
            body = json.loads(message.payload)
            result = {"grid": body["grid"], "present": ["P-1"], "expected": 2, "missing": ["P-2"]}
            reply = {"request_id": body["request_id"], "ok": True, "result": result}
            c.publish(uplink_topic(SITE_ID, "edge-a", "cmd_result"), json.dumps(reply), qos=1)

        answering.on_message = on_message
        answering.on_subscribe = lambda *_args: subscribed.set()
        answering.connect("127.0.0.1", broker.port)
        answering.loop_start()
        # roll calls only: central also confirms each stored cmd_result on cmd/confirm
        answering.subscribe(uplink_topic(SITE_ID, "edge-a", "cmd", "rollcall"), qos=1)
        assert subscribed.wait(5)

        token = httpx.post(
            f"{api.url}/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        # several roll calls: with two workers in the group, some cmd_results go to the other one
        for _ in range(6):
            r = httpx.post(f"{api.url}/api/v1/grids/g1/rollcall", headers=headers, timeout=15)
            assert r.status_code == 200, r.text
            assert r.json()["result"]["missing"] == ["P-2"]

        # every result was stored once, by whichever worker of the group received it ...
        def per_worker() -> list[float]:
            return [w.metric("gridwatch_central_ingest_messages_total", kind="cmd_result") for w in workers]

        wait_for(lambda: sum(per_worker()) >= 6, 10, "the cmd_results to be stored")
        counts = per_worker()
        assert sum(counts) == 6
        # ... and some went to the ingest-only worker, yet the API process still got its answer
        assert counts[0] > 0, counts
    finally:
        answering.disconnect()
        answering.loop_stop()
        for worker in workers:
            worker.stop()
