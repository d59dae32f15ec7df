"""Each simulated device holds its own broker session with an `offline` will, as real devices do.

Against a real Mosquitto: the player's devices come up `online` (retained) on their own
connections; a `crash` step kills one connection without a DISCONNECT and the *broker* publishes
the will; a device that says `offline` itself disconnects cleanly; after a broker restart the
sessions reconnect and repeat their status.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import paho.mqtt.client as paho
import pytest

from drivers import DeviceContext
from gridwatch.broker import Mosquitto
from gridwatch.config import load_site
from gridwatch.mqtt import sync_client
from simulators import encoders
from simulators.player import MqttPublisher, ScenarioPlayer
from simulators.scenario import Scenario
from simulators.sessions import DeviceSessions, StatusTopic
from tests.conftest import DEMO_SITE

pytestmark = pytest.mark.integration


class StatusWatch:
    """Follows every device status topic of the site; keeps the latest payload per device."""

    def __init__(self, broker: Mosquitto, site_id: str) -> None:
        self.latest: dict[str, bytes] = {}
        self.retained: dict[str, bool] = {}
        self.history: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = sync_client(broker.url("admin"), f"status-watch-{time.monotonic_ns()}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_connect = lambda c, *_a: c.subscribe(f"site/{site_id}/+/+/status", qos=1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert subscribed.wait(5)

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        device = msg.topic.split("/")[-2]
        with self._lock:
            self.latest[device] = msg.payload
            self.history.append((device, msg.payload))

    def wait(self, what: Callable[[], bool], timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if what():
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _is(payload: bytes | None, state: str) -> bool:
    return payload is not None and state in payload.decode()


def test_devices_have_their_own_sessions_and_a_crash_fires_the_will(fresh_mosquitto: Mosquitto) -> None:
    site = load_site(DEMO_SITE)
    scenario = Scenario.model_validate(
        {
            "name": "sessions",
            "duration_s": 1.5,
            "background": {"positions_hz": 0, "vitals_s": 0, "keepalive": False},
            "steps": [
                {"at": 0.3, "device": {"id": "acc-w1-work", "crash": True}},
                {"at": 0.3, "device": {"id": "acc-w2-work", "online": False}},
            ],
        }
    )
    watch = StatusWatch(fresh_mosquitto, site.site.id)
    publisher = MqttPublisher(fresh_mosquitto.url("devices"), identifier="sessions-test")
    publisher.connect()
    sessions = DeviceSessions(fresh_mosquitto.url("devices"), "sessions-test")
    try:
        player = ScenarioPlayer(site, scenario, publisher, sessions=sessions)
        player.run()
        devices = {d.id for d in site.devices}
        assert watch.wait(lambda: set(watch.latest) == devices), devices - set(watch.latest)
        # the crashed device's will came from the broker; the other said offline itself
        assert watch.wait(lambda: _is(watch.latest.get("acc-w1-work"), "offline"))
        assert _is(watch.latest["acc-w2-work"], "offline")
        assert "acc-w1-work" not in sessions and "acc-w2-work" not in sessions
        assert all(_is(watch.latest[d], "online") for d in devices - {"acc-w1-work", "acc-w2-work"})
        assert sum(1 for d, _p in watch.history if d == "acc-w1-work") == 2  # online, then the will once

        # the broker restarts: every live session reconnects and repeats `online`; the dead stay dead
        before = len(watch.history)
        fresh_mosquitto.restart(1)
        assert watch.wait(
            lambda: len([1 for d, p in watch.history[before:] if _is(p, "online")]) >= len(devices) - 2, 30
        )
        assert _is(watch.latest["acc-w1-work"], "offline") and _is(watch.latest["acc-w2-work"], "offline")

        # back online after the crash: a new session, a new will
        ctx = DeviceContext.from_config(next(d for d in site.devices if d.id == "acc-w1-work"))
        topic, online = encoders.encode_status(ctx, site.site.id, True)
        sessions.up("acc-w1-work", StatusTopic(topic, online, encoders.encode_status(ctx, site.site.id, False)[1]))
        assert watch.wait(lambda: _is(watch.latest.get("acc-w1-work"), "online"))
        assert sessions.crash("acc-w1-work")
        assert watch.wait(lambda: _is(watch.latest.get("acc-w1-work"), "offline"))
    finally:
        sessions.close()
        publisher.close()
        watch.close()


def test_crash_without_sessions_publishes_what_the_will_would(fresh_mosquitto: Mosquitto) -> None:
    """A player on one shared connection still plays `crash`: it publishes the retained `offline` itself."""
    site = load_site(DEMO_SITE)
    scenario = Scenario.model_validate(
        {
            "name": "no sessions",
            "duration_s": 0.5,
            "background": {"positions_hz": 0, "vitals_s": 0, "keepalive": False},
            "steps": [{"at": 0.1, "device": {"id": "acc-w1-work", "crash": True}}],
        }
    )
    watch = StatusWatch(fresh_mosquitto, site.site.id)
    publisher = MqttPublisher(fresh_mosquitto.url("devices"), identifier="no-sessions-test")
    publisher.connect()
    try:
        ScenarioPlayer(site, scenario, publisher).run()
        assert watch.wait(lambda: _is(watch.latest.get("acc-w1-work"), "offline"))
    finally:
        publisher.close()
        watch.close()


def test_a_device_cannot_crash_and_be_online() -> None:
    with pytest.raises(ValueError, match="cannot crash and be online"):
        Scenario.model_validate(
            {"name": "x", "duration_s": 1, "steps": [{"at": 0, "device": {"id": "d", "crash": True, "online": True}}]}
        )


def test_keepalives_and_the_end_of_a_play_never_fire_a_will(fresh_mosquitto: Mosquitto) -> None:
    """Keep-alives and the end of a play leave every device `online`: no will is ever published.

    The player's keep-alives (the first due at once, while the sessions are still opening) used to
    tear each session down and open a new one; a session torn down while connecting vanished
    without a DISCONNECT and the broker published its will, so every device flapped offline a few
    seconds into each scenario. A keep-alive now says `online` again on the session it has.
    """
    site = load_site(DEMO_SITE)
    scenario = Scenario.model_validate(
        {"name": "keepalive", "duration_s": 3, "background": {"positions_hz": 1, "vitals_s": 1, "keepalive": True}}
    )
    watch = StatusWatch(fresh_mosquitto, site.site.id)
    publisher = MqttPublisher(fresh_mosquitto.url("devices"), identifier="keepalive-test")
    publisher.connect()
    sessions = DeviceSessions(fresh_mosquitto.url("devices"), "keepalive-test")
    try:
        ScenarioPlayer(site, scenario, publisher, sessions=sessions).run()
        devices = {d.id for d in site.devices}
        assert watch.wait(lambda: set(watch.latest) == devices)
        sessions.close()
        time.sleep(1.5)  # a will would arrive now
        assert not [d for d, p in watch.history if _is(p, "offline")]
    finally:
        sessions.close()
        publisher.close()
        watch.close()
