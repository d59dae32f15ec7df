"""The whole system as deployed: Mosquitto, central, two edges, the camera simulator, devices.

These are the promises to security staff: every scripted event becomes the expected alert at
central, fast, and nothing is lost when the broker or central goes down mid-stream.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridwatch.config import load_site
from gridwatch.demo import DemoTree, start_demo
from simulators.cli import AlertWatcher, Outcome, play_and_verify
from simulators.player import MqttPublisher, ScenarioPlayer
from simulators.scenario import Scenario
from simulators.sessions import DeviceSessions
from tests.conftest import DEMO_SITE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoTree]:
    tree = start_demo(DEMO_SITE, tmp_path_factory.mktemp("system"), cameras=True, play=False)
    try:
        yield tree
    finally:
        tree.stop()


def _token(tree: DemoTree) -> str:
    r = httpx.post(
        f"{tree.central_url}/api/v1/auth/token", data={"username": tree.login[0], "password": tree.login[1]}, timeout=10
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def _play(tree: DemoTree, scenario: Scenario) -> list[Outcome]:
    """Play a scenario against the running system; return every expectation with what central said."""
    site = load_site(DEMO_SITE)
    watcher = AlertWatcher(tree.central_url, _token(tree))
    threading.Thread(target=watcher.run, daemon=True).start()
    assert watcher.ready.wait(10) and watcher.error is None, watcher.error
    publisher = MqttPublisher(tree.broker.url("devices"), identifier=f"e2e-{time.monotonic_ns()}")
    publisher.connect()
    control = None
    if tree.camera_control:
        from simulators.camera import control as camera_control

        host, _, port = tree.camera_control.rpartition(":")

        def control(camera: str, event: str, seconds: float) -> None:
            camera_control(host, int(port), camera, event, seconds)

    sessions = DeviceSessions(tree.broker.url("devices"), f"e2e-{time.monotonic_ns()}")
    player = ScenarioPlayer(site, scenario, publisher, camera_control=control, sessions=sessions)
    outcomes = play_and_verify(player, watcher)
    return outcomes


STORY = {
    "name": "e2e story",
    "duration_s": 12,
    "background": {"positions_hz": 1, "vitals_s": 5},
    "steps": [
        {
            "at": 1,
            "perimeter": {"detector": "ir-n-01", "beam": 1, "state": "alarm"},
            "expect": [{"rule": "perimeter.intrusion", "level": "medium", "zone": "perim-north", "within_s": 3}],
        },
        {
            "at": 1.5,
            "perimeter": {"detector": "ir-n-02", "beam": 2, "state": "alarm"},
            "expect": [{"rule": "perimeter.intrusion", "level": "high", "zone": "perim-north", "within_s": 3}],
        },
        {
            "at": 2,
            "perimeter": {"detector": "ir-s-03", "beam": 1, "state": "tamper"},
            "expect": [{"rule": "perimeter.tamper", "level": "high", "zone": "perim-south", "within_s": 3}],
        },
        {
            "at": 2.5,
            "access": {"door": "D-W2-YARD", "event": "door_open"},
            "expect": [{"rule": "access.door_forced", "level": "high", "within_s": 3}],
        },
        {
            "at": 3,
            "wristband": {"band": "W-0044", "event": "sos"},
            "expect": [{"rule": "wristband.sos", "level": "high", "subject": "P-0044", "within_s": 3}],
        },
        {
            "at": 3.5,
            "move": {"person": "P-0060", "to": "control-room", "speed_mps": 10},
            "expect": [{"rule": "location.restricted_zone", "level": "high", "subject": "P-0060", "within_s": 15}],
        },
        {
            "at": 4,
            "device": {"id": "acc-w1-staff", "online": False},
            "expect": [{"rule": "device.offline", "subject": "acc-w1-staff", "within_s": 3}],
        },
        {
            "at": 4.5,
            "device": {"id": "acc-w2-cell", "crash": True, "silent_s": 10},
            "expect": [{"rule": "device.offline", "subject": "acc-w2-cell", "within_s": 3}],
        },
    ],
}


def test_every_scripted_event_reaches_central_in_time(system: DemoTree) -> None:
    outcomes = _play(system, Scenario.model_validate(STORY))
    report = [
        (o.expect.rule, o.expect.level, None if o.latency_s is None else round(o.latency_s * 1000)) for o in outcomes
    ]
    print("latencies (ms):", report)
    missing = [o.expect.rule for o in outcomes if not o.ok]
    assert not missing, f"not raised in time: {missing}; all: {report}"
    perimeter = [o.latency_s for o in outcomes if o.expect.rule.startswith("perimeter.")]
    assert all(lat is not None and lat < 1.0 for lat in perimeter), "a perimeter alarm took a second or more"


def _alerts(tree: DemoTree, token: str, rule: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"rule": rule, "limit": 200}
        if cursor:
            params["cursor"] = cursor
        r = httpx.get(
            f"{tree.central_url}/api/v1/alerts", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        r.raise_for_status()
        body = r.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items


def test_no_alert_is_lost_when_broker_and_central_restart(system: DemoTree, tmp_path: Path) -> None:
    """SOS from every wristband while the broker restarts and central is killed: all reach central."""
    site = load_site(DEMO_SITE)
    bands = sorted(p.band for p in site.people if p.band)
    steps: list[dict[str, Any]] = []
    for i, band in enumerate(bands):
        steps.append({"at": 0.25 * i, "wristband": {"band": band, "event": "fall"}})
    scenario = Scenario.model_validate(
        {
            "name": "falls",
            "duration_s": 0.25 * len(bands) + 1,
            "background": {"positions_hz": 0, "vitals_s": 0},
            "steps": steps,
        }
    )
    publisher = MqttPublisher(system.broker.url("devices"), identifier="e2e-faults")
    publisher.connect()
    player = threading.Thread(target=lambda: ScenarioPlayer(site, scenario, publisher).run())
    player.start()
    time.sleep(1.5)
    system.broker.restart(down_s=1.0)  # uplink and device links drop; edges must resend from their outboxes
    time.sleep(1.0)
    central = next(c for c in system.supervisor.children if c.name == "central")
    assert central.proc is not None
    os.kill(central.proc.pid, signal.SIGKILL)  # no clean shutdown
    player.join(30)
    publisher.close()
    deadline = time.monotonic() + 60
    token = None
    got: set[str] = set()
    while time.monotonic() < deadline:
        system.supervisor.poll()  # restarts central
        try:
            token = token or _token(system)
            got = {a["subject"]["id"] for a in _alerts(system, token, "wristband.fall")}
        except httpx.HTTPError:
            token = None
        if len(got) == len(bands):
            break
        time.sleep(0.5)
    people = {p.band: p.id for p in site.people if p.band}
    assert got == {people[b] for b in bands}, f"missing falls for {sorted(set(people.values()) - got)}"


def test_doctor_is_green_on_the_demo_and_names_a_stopped_part(system: DemoTree) -> None:
    """Field engineers' promise: doctor says all is well when it is, and says what broke when not."""
    import subprocess
    import sys

    from gridwatch.demo import doctor_env

    publisher = MqttPublisher(system.broker.url("devices"), identifier="e2e-doctor")
    publisher.connect()
    quiet = Scenario.model_validate({"name": "announce"})
    ScenarioPlayer(load_site(DEMO_SITE), quiet, publisher).announce()  # every device says online (retained)
    publisher.close()
    env = {**os.environ, **doctor_env(system.workdir, "edge-w1")}
    argv = [sys.executable, "-m", "gridwatch.cli", "doctor", "--edge", "edge-w1", "--camera-timeout", "8"]
    green = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert green.returncode == 0, green.stdout + green.stderr
    assert "✗" not in green.stdout

    cameras = next(c for c in system.supervisor.children if c.name == "cameras")
    cameras.stop()
    try:
        red = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    finally:
        cameras.start()
    assert red.returncode == 1
    failed = [line for line in red.stdout.splitlines() if "✗" in line]
    assert failed and all("cam" in line for line in failed), red.stdout
