"""The player publishes what real devices would: every message parses with the drivers."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import paho.mqtt.client as paho
import pytest

from drivers import DeviceContext, parse
from gridwatch.broker import Mosquitto
from gridwatch.config import load_site
from gridwatch.contract import AccessReading, PerimeterReading, PositionsReading, StatusReading, VitalsReading
from gridwatch.mqtt import sync_client
from simulators.player import MqttPublisher, PlayedStep, ScenarioPlayer
from simulators.scenario import Scenario
from simulators.world import World
from tests.conftest import DEMO_SITE

pytestmark = pytest.mark.integration


def _collect(broker: Mosquitto, site_id: str) -> tuple[paho.Client, list[paho.MQTTMessage], threading.Event]:
    got: list[paho.MQTTMessage] = []
    subscribed = threading.Event()
    client = sync_client(broker.url("admin"), "test-watch")
    client.on_message = lambda _c, _u, msg: got.append(msg)
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_connect = lambda c, *_a: c.subscribe(f"site/{site_id}/#", qos=1)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert subscribed.wait(5)
    return client, got, subscribed


def test_player_speaks_the_device_protocol(mosquitto: Mosquitto) -> None:
    site = load_site(DEMO_SITE)
    scenario = Scenario.model_validate(
        {
            "name": "short",
            "duration_s": 2.5,
            "background": {"positions_hz": 2, "vitals_s": 1},
            "steps": [
                {"at": 0.2, "perimeter": {"detector": "ir-n-02", "beam": 2, "state": "alarm"}},
                {"at": 0.3, "perimeter": {"detector": "ir-s-02", "beam": 1, "state": "tamper"}},
                {"at": 0.4, "access": {"door": "D-W1-YARD", "event": "granted", "card": "12:345", "wiegand": True}},
                {"at": 0.5, "device": {"id": "acc-w2-yard", "online": False}},
            ],
        }
    )
    watcher, got, _ = _collect(mosquitto, site.site.id)
    publisher = MqttPublisher(mosquitto.url("devices"))
    publisher.connect()
    try:
        ScenarioPlayer(site, scenario, publisher, speed=1.0).run()
        deadline = time.monotonic() + 5
        while len(got) < publisher.sent and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        publisher.close()
        watcher.loop_stop()
        watcher.disconnect()

    by_topic = {}
    for d in site.devices:
        ctx = DeviceContext.from_config(d)
        from drivers import device_topics

        for topic in device_topics(site.site.id, d):
            by_topic[topic] = ctx
    readings = []
    now = datetime.now(UTC)
    for msg in got:
        readings += parse(by_topic[msg.topic], msg.topic, msg.payload, now)
    assert len(got) >= publisher.sent > 0

    perimeter = [r for r in readings if isinstance(r, PerimeterReading)]
    assert {(r.device, r.detector, r.beam, r.state) for r in perimeter} == {
        ("ir-n-02", "ir-n-02", 2, "alarm"),
        ("panel-s", "ir-s-02", 1, "tamper"),  # through the Contact ID panel
    }
    access = [r for r in readings if isinstance(r, AccessReading)]
    assert [(r.door, r.card) for r in access] == [("D-W1-YARD", "12:345")]
    batches = [r for r in readings if isinstance(r, PositionsReading)]
    assert {r.device for r in batches} == {"rtls-w1", "rtls-w2"}
    tags = {p.tag for r in batches for p in r.positions}
    assert len(tags) == sum(1 for p in site.people if p.tag)
    assert not any(r.clock_skew for r in readings)
    assert any(isinstance(r, VitalsReading) for r in readings)
    offline = [r for r in readings if isinstance(r, StatusReading) and not r.online]
    assert [r.device for r in offline] == ["acc-w2-yard"]


def test_quiet_world_stays_in_its_grids() -> None:
    """Background movement must not raise alarms: inmates stay inside their grid polygons."""
    from shapely import Point, Polygon

    site = load_site(DEMO_SITE)
    world = World(site, seed=3)
    grids = {gid: Polygon(g.polygon) for gid, (_a, g) in site.grid_index().items()}
    people = {p.id: p for p in site.people}
    t = 0.0
    for _ in range(600):  # ten minutes at 1 s steps
        t += 1.0
        world.step(t, 1.0)
        for w in world.walkers.values():
            grid = people[w.person].grid
            if people[w.person].role == "inmate" and grid:
                assert grids[grid].buffer(0.01).contains(Point(w.x, w.y)), (w.person, w.x, w.y)


def test_walk_to_and_release() -> None:
    site = load_site(DEMO_SITE)
    world = World(site, seed=1)
    world.walk_to("P-0005", "w1-staff", speed=10.0)
    for i in range(30):
        world.step(float(i), 1.0)
    w = world.walkers["P-0005"]
    zone = next(z for z in site.zones if z.id == "w1-staff")
    from shapely import Point, Polygon

    assert zone.polygon is not None
    assert Polygon(zone.polygon).contains(Point(w.x, w.y))
    world.release("P-0005")
    assert world.walkers["P-0005"].pinned is None


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.drops: list[float] = []

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.messages.append((topic, payload))

    def drop(self, seconds: float) -> None:
        self.drops.append(seconds)


def test_faults_on_demand_are_what_the_drivers_must_survive() -> None:
    from drivers import DriverError

    site = load_site(DEMO_SITE)
    steps = [{"at": 0, "faults": {"device": "ir-n-02", "seconds": 60, "malformed_rate": 1.0}}]
    steps += [{"at": 0.01 * (i + 1), "perimeter": {"detector": "ir-n-02", "state": "alarm"}} for i in range(20)]
    steps += [
        {"at": 0.3, "faults": {"device": "ir-n-01", "seconds": 60, "duplicate_rate": 1.0, "clock_skew_s": 3600}},
        {"at": 0.31, "perimeter": {"detector": "ir-n-01", "state": "alarm"}},
        {"at": 0.4, "broker_drop": {"seconds": 2}},
    ]
    scenario = Scenario.model_validate(
        {
            "name": "faults",
            "duration_s": 0.5,
            "background": {"positions_hz": 0, "vitals_s": 0, "keepalive": False},
            "steps": steps,
        }
    )
    recorder = _Recorder()
    ScenarioPlayer(site, scenario, recorder).run()
    ctx2 = DeviceContext.from_config(next(d for d in site.devices if d.id == "ir-n-02"))
    ctx1 = DeviceContext.from_config(next(d for d in site.devices if d.id == "ir-n-01"))
    now = datetime.now(UTC)
    garbage = [p for t, p in recorder.messages if t.endswith("ir-n-02/event")]
    assert len(garbage) == 20
    for payload in garbage:
        with pytest.raises(DriverError):
            parse(ctx2, "site/demo-prison/perimeter/ir-n-02/event", payload, now)
    skewed = [p for t, p in recorder.messages if t.endswith("ir-n-01/event")]
    assert len(skewed) == 2  # duplicated
    (reading,) = parse(ctx1, "site/demo-prison/perimeter/ir-n-01/event", skewed[0], now)
    assert reading.clock_skew
    assert recorder.drops == [2]


def test_steps_written_out_of_time_order_report_their_own_place_in_the_file() -> None:
    """`sim verify` pairs each expectation with its step by the step's place in the file.

    The demo storyline lists a device coming back at 210 s before a tamper at 195 s; the player
    used to report the step's place in *time* order, so the tamper's expectation was timed from the
    205 s step and the alert, raised at 195 s, counted as never seen.
    """
    site = load_site(DEMO_SITE)
    scenario = Scenario.model_validate(
        {
            "name": "out of order",
            "duration_s": 0.4,
            "background": {"positions_hz": 0, "vitals_s": 0, "keepalive": False},
            "steps": [
                {"at": 0.3, "perimeter": {"detector": "ir-n-01", "state": "normal"}},
                {"at": 0.1, "perimeter": {"detector": "ir-n-01", "state": "alarm"}},
                {"at": 0.2, "perimeter": {"detector": "ir-n-02", "state": "alarm"}},
            ],
        }
    )
    played: list[PlayedStep] = []
    ScenarioPlayer(site, scenario, _Recorder()).run(on_step=played.append)
    assert [(p.index, p.step.at) for p in played] == [(1, 0.1), (2, 0.2), (0, 0.3)]
    assert all(scenario.steps[p.index] is p.step for p in played)
