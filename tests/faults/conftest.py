"""Fault injection against the real process tree: Mosquitto, central and two edges as processes.

One demo tree (gridwatch.demo.start_demo, no cameras, no scenario player) serves the whole module;
each test drives the devices itself with the scenario player, breaks one thing for a few seconds,
and counts what reaches central's API. Helpers here are shared by tests/faults/test_faults.py.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gridwatch.config import SiteConfig, load_site
from gridwatch.demo import DemoTree, start_demo
from simulators.player import MqttPublisher, ScenarioPlayer
from simulators.scenario import Scenario
from tests.conftest import DEMO_SITE


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_site(DEMO_SITE)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoTree]:
    tree = start_demo(DEMO_SITE, tmp_path_factory.mktemp("faults"), cameras=False, play=False)
    try:
        wait_until(lambda: all(_status_ok(url) for url in tree.edge_status.values()), 30, tree, "edges' /status")
        yield tree
    finally:
        tree.stop()


@pytest.fixture(scope="module")
def central(system: DemoTree) -> Central:
    return Central(system)


def _status_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(pred: Callable[[], bool], timeout: float, tree: DemoTree | None = None, what: str = "") -> float:
    """Poll `pred` (and the supervisor, which restarts dead children) until true; returns seconds waited."""
    start = time.monotonic()
    while True:
        if tree is not None:
            tree.supervisor.poll()
        if pred():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or pred}")
        time.sleep(0.2)


def child(tree: DemoTree, name: str) -> Any:
    return next(c for c in tree.supervisor.children if c.name == name)


class Central:
    """Central's API as an operator sees it: alerts by rule, paged; survives central restarts."""

    def __init__(self, tree: DemoTree) -> None:
        self.tree = tree
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            r = httpx.post(
                f"{self.tree.central_url}/api/v1/auth/token",
                data={"username": self.tree.login[0], "password": self.tree.login[1]},
                timeout=10,
            )
            r.raise_for_status()
            self._token = str(r.json()["access_token"])
        return self._token

    def alerts(self, rule: str) -> list[dict[str, Any]]:
        """Every alert of `rule`, following next_cursor to the end (raises httpx.HTTPError if central is down)."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"rule": rule, "limit": 200}
            if cursor:
                params["cursor"] = cursor
            r = httpx.get(
                f"{self.tree.central_url}/api/v1/alerts",
                params=params,
                headers={"Authorization": f"Bearer {self.token()}"},
                timeout=10,
            )
            if r.status_code == 401:
                self._token = None
            r.raise_for_status()
            body = r.json()
            items += body["items"]
            cursor = body["next_cursor"]
            if not cursor:
                return items

    def try_alerts(self, rule: str) -> list[dict[str, Any]] | None:
        try:
            return self.alerts(rule)
        except httpx.HTTPError:
            self._token = None
            return None

    def duplicates(self) -> dict[str, float]:
        """gridwatch_central_ingest_duplicates_total by kind (since central's last start)."""
        text = httpx.get(f"{self.tree.central_url}/metrics", timeout=10).text
        out: dict[str, float] = {}
        for m in re.finditer(r'^gridwatch_central_ingest_duplicates_total\{kind="([^"]+)"\} (\S+)$', text, re.M):
            out[m.group(1)] = float(m.group(2))
        return out


@dataclass
class Tally:
    """What central holds for one rule, compared with a baseline taken before the fault."""

    rule: str
    before: set[str]
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def new(self) -> list[dict[str, Any]]:
        return [a for a in self.items if a["id"] not in self.before]

    def subjects(self) -> Counter[str]:
        return Counter(a["subject"]["id"] for a in self.new)

    def repeated_ids(self) -> list[str]:
        return [i for i, n in Counter(a["id"] for a in self.items).items() if n > 1]


def baseline(central: Central, rule: str) -> Tally:
    return Tally(rule, {a["id"] for a in central.alerts(rule)})


def wait_for_subjects(central: Central, tally: Tally, expected: set[str], timeout: float, tree: DemoTree) -> float:
    """Wait until every expected subject has a new alert of tally.rule; returns the seconds waited."""

    def done() -> bool:
        items = central.try_alerts(tally.rule)
        if items is None:
            return False
        tally.items = items
        return expected <= set(tally.subjects())

    try:
        return wait_until(done, timeout, tree, f"{tally.rule} for {sorted(expected)}")
    except AssertionError:
        missing = sorted(expected - set(tally.subjects()))
        raise AssertionError(
            f"{tally.rule}: {len(missing)} of {len(expected)} alerts never reached central: {missing}"
        ) from None


def assert_exact(tally: Tally, expected: set[str]) -> None:
    """One new alert per expected subject, none for others, and no alert id listed twice."""
    subjects = tally.subjects()
    assert set(subjects) == expected, f"{tally.rule}: unexpected subjects {sorted(set(subjects) - expected)}"
    doubled = {s: n for s, n in subjects.items() if n > 1}
    assert not doubled, f"{tally.rule}: more than one alert per subject: {doubled}"
    assert not tally.repeated_ids(), f"{tally.rule}: alert ids listed twice: {tally.repeated_ids()}"


class Player:
    """The scenario player on its own thread, publishing as the devices user (QoS 1)."""

    def __init__(self, tree: DemoTree, site: SiteConfig, scenario: dict[str, Any], name: str) -> None:
        self.publisher = MqttPublisher(tree.broker.url("devices"), identifier=f"faults-{name}-{time.monotonic_ns()}")
        self.player = ScenarioPlayer(site, Scenario.model_validate(scenario), self.publisher)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"player-{name}", daemon=True)
        self.error: BaseException | None = None
        self.started = 0.0
        self.ended = 0.0

    def _run(self) -> None:
        try:
            self.player.run(stop=self.stop)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def __enter__(self) -> Player:
        self.publisher.connect()
        self.started = time.monotonic()
        self.thread.start()
        return self

    def join(self, timeout: float = 60) -> None:
        self.thread.join(timeout)
        self.ended = time.monotonic()
        assert not self.thread.is_alive(), "the scenario player did not finish"
        assert self.error is None, f"the scenario player failed: {self.error!r}"

    def rate(self) -> float:
        """Messages per second the player handed to the broker."""
        return self.player.published / max(1e-6, (self.ended or time.monotonic()) - self.started)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        try:
            self.publisher.close()
        except RuntimeError:
            # MqttPublisher.close() calls is_published() outside its try: paho raises for a message
            # published while the link was down (rc NO_CONN) although it queued it for resending.
            # Wait for paho's own queue to empty instead, then disconnect.
            client = self.publisher.client
            deadline = time.monotonic() + 15
            while getattr(client, "_out_messages", None) and time.monotonic() < deadline:
                time.sleep(0.05)
            client.disconnect()
            client.loop_stop()


def bands(site: SiteConfig) -> dict[str, str]:
    """band → person id, for every wristband wearer (24 in the demo site)."""
    return {p.band: p.id for p in sorted(site.people, key=lambda p: p.id) if p.band}
