"""Hypothesis floods the running edge's ingest path with malformed device payloads (contract §2).

One EdgeAgent runs in-process against a real Mosquitto with the demo config as edge-w1. For each
payload family, ≥ 10,000 hypothesis-generated payloads — mostly malformed, mixed with valid ones
from `simulators.encoders.encode` — go through the agent: the first 1,000 published on the device
broker, the rest through `Ingest.handle` on the agent's own event loop. Every message must be
accounted for: it either produced readings or exactly one dead letter (per message for `handle`,
per device for the broker phase), and the agent must still be running and answering /status.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import drivers
from drivers import contact_id, wiegand
from edge.agent import EdgeAgent
from gridwatch.broker import Mosquitto, edge_acl
from gridwatch.config import SiteConfig, load_site
from gridwatch.contract import (
    AccessReading,
    CameraEventReading,
    PerimeterReading,
    PerimeterState,
    Position,
    PositionsReading,
    Reading,
    StatusReading,
    VitalsReading,
    WristbandEventReading,
    format_ts,
    utcnow,
)
from gridwatch.mqtt import async_client
from simulators.encoders import encode
from tests.conftest import DEMO_SITE

pytestmark = pytest.mark.integration

SITE_ID = "demo-prison"
PER_FAMILY = 10_000
VIA_BROKER = 1_000
LIST_SIZE = 50  # payloads per hypothesis example
GENERATORS = 2  # worker processes running hypothesis
HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

# family → (device, topic). wb-w1 carries two families; families run one after another, so the
# per-device deltas of one phase belong to that family alone.
FAMILIES: dict[str, tuple[str, str]] = {
    "perimeter_json": ("ir-n-01", f"site/{SITE_ID}/perimeter/ir-n-01/event"),
    "perimeter_contact_id": ("panel-w", f"site/{SITE_ID}/perimeter/panel-w/event"),
    "access": ("acc-w1-cell", f"site/{SITE_ID}/access/acc-w1-cell/event"),
    "rtls": ("rtls-w1", f"site/{SITE_ID}/rtls/rtls-w1/positions"),
    "wristband_telemetry": ("wb-w1", f"site/{SITE_ID}/wristband/wb-w1/telemetry"),
    "wristband_event": ("wb-w1", f"site/{SITE_ID}/wristband/wb-w1/event"),
    "camera": ("cam-n-1", f"site/{SITE_ID}/camera/cam-n-1/event"),
    "status": ("acc-w1-yard", f"site/{SITE_ID}/access/acc-w1-yard/status"),
}


# -- valid payloads (the encoders are the inverse of the drivers) ---------------------------------
def _valid_payloads(site: SiteConfig) -> dict[str, list[bytes]]:
    def ctx(device: str) -> drivers.DeviceContext:
        d = site.device(device)
        assert d is not None
        return drivers.DeviceContext.from_config(d)

    now = utcnow().replace(microsecond=0)
    out: dict[str, list[bytes]] = {}

    def add(family: str, reading: Reading, **kw: Any) -> None:
        device, topic = FAMILIES[family]
        t, payload = encode(reading, ctx(device), SITE_ID, **kw)
        assert t == topic, (t, topic)
        out.setdefault(family, []).append(payload)

    for state in ("alarm", "normal", "tamper", "fault", "low_battery"):
        add("perimeter_json", PerimeterReading(device="ir-n-01", ts=now, detector="ir-n-01", beam=2, state=state))
        add(
            "perimeter_contact_id",
            PerimeterReading(device="panel-w", ts=now, detector="ir-w-02", beam=1, state=state),
            checksum=state == "tamper",
        )
    for i, event in enumerate(("granted", "denied", "door_open", "door_closed")):
        reading = AccessReading(device="acc-w1-cell", ts=now, door="D-W1-CELL", event=event, card=f"12:{300 + i}")
        add("access", reading, wiegand=i % 2 == 0)
    positions = (
        Position(tag="T-0001", ts=now, x=30.0, y=80.0, q=0.9, bat=80.0),
        Position(tag="T-0002", ts=now, x=31, y=81),
    )
    add("rtls", PositionsReading(device="rtls-w1", ts=now, positions=positions))
    add("wristband_telemetry", VitalsReading(device="wb-w1", ts=now, band="W-0001", hr=72, temp=36.5, bat=80))
    add("wristband_event", WristbandEventReading(device="wb-w1", ts=now, band="W-0002", event="strap_closed"))
    add("camera", CameraEventReading(device="cam-n-1", ts=now, camera="cam-n-1", event="motion", active=False))
    for online in (True, False):
        add("status", StatusReading(device="acc-w1-yard", ts=now, online=online))
    return out


# -- malformed payloads ------------------------------------------------------------------------
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_junk = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
_NOW = utcnow()
_ts = st.one_of(
    st.just(format_ts(_NOW)),
    st.just(_NOW.timestamp()),
    st.just(format_ts(_NOW - timedelta(days=3))),
    st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-13-45T25:61:61Z", "yesterday", "", "1e400"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**64), max_value=2**64),
    _scalar,
)
_SPECIALS: list[bytes] = [
    b"",
    b"\xff\xfe\x00garbage",
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b"x" * (drivers.MAX_PAYLOAD_BYTES + 1),
    b"NaN",
    b'{"ts": NaN}',
    b'{"ts": Infinity, "x": -Infinity}',
    b"1e999",
    b"null",
    b"[]",
    b'"online"',
    b"\xc3\x28",
    b'{"\\ud800": 1}',
]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _obj(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.fixed_dictionaries({}, optional=fields).map(_dumps)


def _either(good: list[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(good), _scalar, _junk)


def _splice(args: tuple[bytes, int, bytes, int]) -> bytes:
    base, at, insert, cut = args
    at %= len(base) + 1
    return base[:at] + insert + base[at + cut :]


_bits = st.text(alphabet="01", min_size=0, max_size=40)
_card = st.one_of(
    st.builds(lambda b: "wiegand26:" + b, _bits),
    st.builds(lambda b: "wiegand34:" + b, _bits),
    st.builds(lambda b: "wiegand26:" + b, st.text(alphabet="012 x", min_size=26, max_size=26)),
    # right length, random bits: mostly bad parity, sometimes good
    st.builds(lambda b: "wiegand26:" + b, st.text(alphabet="01", min_size=26, max_size=26)),
    st.builds(lambda b: "wiegand34:" + b, st.text(alphabet="01", min_size=34, max_size=34)),
    st.builds(lambda f, c: "wiegand26:" + wiegand.encode(26, f, c), st.integers(0, 255), st.integers(0, 65535)),
    st.sampled_from(["wiegand:0101", "wiegand99:0101", "WIEGAND26:" + "0" * 26, "12:345", ""]),
    _scalar,
)
_hex = st.text(alphabet="0123456789ABCDEFabcdef", max_size=5)
_contact_id = st.one_of(
    st.tuples(_hex, _hex, _hex, _hex, _hex, _hex).map(lambda parts: " ".join(parts)),
    st.tuples(st.sampled_from(["1235", "1234", "9999"]), st.sampled_from(["18", "98", "1"]),
              st.sampled_from(["1", "3", "6", "E"]), st.sampled_from(["130", "133", "144", "380", "384", "999"]),
              st.sampled_from(["01", "99"]), st.integers(0, 1000)).map(
        lambda p: f"{p[0]} {p[1]} {p[2]}{p[3]} {p[4]} {p[5]:03d}"),
    st.text(alphabet="0123456789ABCDEF", min_size=15, max_size=17),
    st.builds(lambda z, q: contact_id.encode("1235", q, z, checksum=True)[:-1], st.integers(1, 6),
              st.sampled_from([PerimeterState.ALARM, PerimeterState.NORMAL])).flatmap(
        lambda body: st.sampled_from("0123456789ABCDEF").map(lambda c: body + c)),
    st.text(max_size=24),
).map(lambda s: s.encode("utf-8", "surrogatepass"))  # fmt: skip

_position = st.fixed_dictionaries(
    {},
    optional={
        "tag": _either(["T-0001", "T-9999"]),
        "x": _either([1.0, 30.5]),
        "y": _either([2.0, 80.0]),
        "z": _either([0.0]),
        "q": _either([0.5, 1.5, -0.1]),
        "bat": _either([50, 101, -1]),
        "ts": _ts,
    },
)

MALFORMED: dict[str, st.SearchStrategy[bytes]] = {
    "perimeter_json": _obj(
        ts=_ts,
        detector=_either(["ir-n-01", "ir-n-02", "ir-s-01", "nobody"]),
        beam=_either([1, 2, 0, 65, 3]),
        state=_either(["alarm", "normal", "tamper", "fault", "low_battery", "ALARM", "open"]),
    ),
    "perimeter_contact_id": _contact_id,
    "access": _obj(
        ts=_ts,
        door=_either(["D-W1-CELL", "D-NOPE"]),
        reader=_either(["rd-1"]),
        event=_either(["granted", "denied", "door_open", "door_closed", "door_forced", "door_held", "tamper", "x"]),
        card=_card,
        direction=_either(["in", "out", "up"]),
    ),
    "rtls": st.one_of(
        _obj(ts=_ts, positions=st.one_of(st.lists(_position, max_size=4), _scalar)),
        _position.map(_dumps),
    ),
    "wristband_telemetry": _obj(
        ts=_ts,
        band=_either(["W-0001", "W-9999"]),
        hr=_either([72, -5, 400]),
        temp=_either([36.6, 80.0, -300.0]),
        bat=_either([80, 120, -1]),
        strap=_either(["closed", "open", "ajar"]),
        gps=st.one_of(
            st.fixed_dictionaries(
                {}, optional={"lat": _either([31.2, 91.0]), "lon": _either([121.4, 181.0]), "acc_m": _either([5, -1])}
            ),
            _scalar,
        ),
    ),
    "wristband_event": _obj(
        ts=_ts,
        band=_either(["W-0001", "W-9999"]),
        event=_either(["sos", "fall", "strap_open", "strap_closed", "SOS", "boom"]),
    ),
    "camera": _obj(
        ts=_ts,
        camera=_either(["cam-n-1", "cam-other"]),
        event=_either(["motion", "tamper", "video_loss", "fire"]),
        active=_either([True, False, "yes", 1]),
    ),
    "status": st.one_of(
        st.sampled_from([b"online", b"offline", b"ONLINE", b' "offline" ', b"on line", b"1", b"0"]),
        st.text(max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass")),
    ),
}


def payloads(family: str, valid: list[bytes]) -> st.SearchStrategy[bytes]:
    """Mostly malformed payloads of one family, with valid ones and mutations of valid ones mixed in."""
    return st.one_of(
        MALFORMED[family],
        MALFORMED[family],
        MALFORMED[family],
        st.sampled_from(valid),
        st.tuples(st.sampled_from(valid), st.integers(0, 400), st.binary(max_size=3), st.integers(0, 3)).map(_splice),
        st.binary(max_size=80),
        _junk.map(_dumps),
        st.sampled_from(_SPECIALS),
    )


def generate(family: str, valid: list[bytes], examples: int) -> list[bytes]:
    """`examples` hypothesis examples of LIST_SIZE payloads each (run in worker processes for speed)."""
    out: list[bytes] = []

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=HEALTH)
    @given(st.lists(payloads(family, valid), min_size=LIST_SIZE, max_size=LIST_SIZE))
    def collect(batch: list[bytes]) -> None:
        out.extend(batch)

    collect()
    return out


# -- the running agent ---------------------------------------------------------------------------
class RunningAgent:
    """An EdgeAgent on its own event loop in a thread; `call` runs a function on that loop."""

    def __init__(self, agent: EdgeAgent) -> None:
        self.agent = agent
        self.loop = asyncio.new_event_loop()
        self.parsed: Counter[str] = Counter()  # messages that produced readings, per device
        inner = agent.ingest.on_readings

        def counting(readings: list[Reading]) -> None:
            self.parsed[readings[0].device] += 1
            inner(readings)

        agent.ingest.on_readings = counting
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None
        self.thread = threading.Thread(target=self._run, name="edge-agent", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.agent.run(install_signal_handlers=False))
        self.task.add_done_callback(self._ended)
        self.loop.run_forever()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.error = task.exception()
        self.loop.stop()

    def start(self) -> None:
        self.thread.start()
        self.wait(lambda: self.agent.ingest.stats.connected and self.agent.uplink.connected, "the edge to connect")

    def call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=120)

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if not self.alive and self.task is not None:
                raise AssertionError(f"the agent stopped while waiting for {what}: {self.error!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.agent._request_stop, "end of test")
        self.thread.join(30)
        assert not self.thread.is_alive(), "the agent did not stop within 30 s"
        self.loop.close()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and self.task is not None and not self.task.done()


def _handle_batch(agent: EdgeAgent, topic: str, batch: list[bytes]) -> list[str]:
    """Run on the agent's loop: hand each payload to ingest; describe every unaccounted message."""
    problems = []
    for payload in batch:
        before = agent.deadletters.total
        readings = agent.ingest.handle(topic, payload)
        dead = agent.deadletters.total - before
        if not ((readings and dead == 0) or (not readings and dead == 1)):
            problems.append(f"{payload[:120]!r}: {len(readings)} reading(s) and {dead} dead letter(s)")
    return problems


async def _publish(url: str, topic: str, batch: list[bytes]) -> None:
    async with async_client(url, "test-devices-fuzz") as client:
        for payload in batch:
            await client.publish(topic, payload, qos=1)


def test_malformed_payloads_are_all_accounted_for(fresh_mosquitto: Mosquitto, tmp_path: Path) -> None:
    site = load_site(DEMO_SITE)
    url = fresh_mosquitto.add_user("edge-w1", edge_acl("edge-w1"))
    valid = _valid_payloads(site)
    started = time.monotonic()
    # hypothesis generation is the slow part: workers generate while the agent consumes. They are
    # forked before the agent (and its MQTT threads) start.
    bulk_examples = (PER_FAMILY - VIA_BROKER) // LIST_SIZE
    halves = (bulk_examples // 2, bulk_examples - bulk_examples // 2)
    pool = ProcessPoolExecutor(max_workers=GENERATORS, mp_context=multiprocessing.get_context("fork"))
    jobs: dict[str, list[Future[list[bytes]]]] = {}
    for family in FAMILIES:
        jobs[family] = [pool.submit(generate, family, valid[family], VIA_BROKER // LIST_SIZE)]
        jobs[family] += [pool.submit(generate, family, valid[family], n) for n in halves]
    agent = EdgeAgent(
        site,
        "edge-w1",
        device_broker=url,
        uplink_broker=url,
        outbox_path=tmp_path / "edge-w1-outbox.db",
        status_bind="127.0.0.1:0",
        config_hash="fuzz",
        cameras=False,
    )
    running = RunningAgent(agent)
    running.start()
    report: dict[str, dict[str, int]] = {}
    try:
        for family, (device, topic) in FAMILIES.items():
            parsed0, dead0 = running.parsed[device], agent.deadletters.count(device)
            problems: list[str] = []

            # phase 1: published on the device broker, through the agent's real MQTT subscription
            via_broker = jobs[family][0].result(timeout=300)
            assert len(via_broker) == VIA_BROKER, f"{family}: hypothesis produced {len(via_broker)} payloads"
            asyncio.run(_publish(fresh_mosquitto.url("devices"), topic, via_broker))

            def accounted(device: str = device, parsed0: int = parsed0, dead0: int = dead0) -> int:
                return running.parsed[device] - parsed0 + agent.deadletters.count(device) - dead0

            running.wait(lambda: accounted() >= VIA_BROKER, f"{family}: {VIA_BROKER} published messages accounted for")
            time.sleep(0.2)  # a message counted twice would show up here
            assert accounted() == VIA_BROKER, f"{family}: {accounted()} accounted for, {VIA_BROKER} published"

            # phase 2: the bulk through Ingest.handle on the agent's loop, checked message by message
            sent = VIA_BROKER
            for job in jobs[family][1:]:
                bulk = job.result(timeout=300)
                for start in range(0, len(bulk), 500):
                    batch = bulk[start : start + 500]
                    problems.extend(running.call(lambda batch=batch, topic=topic: _handle_batch(agent, topic, batch)))
                sent += len(bulk)
            parsed = running.parsed[device] - parsed0
            dead = agent.deadletters.count(device) - dead0
            report[family] = {"sent": sent, "parsed": parsed, "dead_lettered": dead}
            assert not problems, f"{family}: {len(problems)} message(s) not accounted for, e.g. {problems[:5]}"
            assert sent >= PER_FAMILY, f"{family}: only {sent} payloads generated"
            assert parsed + dead == sent, f"{family}: {report[family]}"
            assert dead > sent // 2, f"{family}: most payloads should be malformed: {report[family]}"
            assert parsed > 0, f"{family}: the valid payloads mixed in must parse: {report[family]}"

        # still alive, still answering, and the status page agrees with the counts
        assert running.alive, running.error
        assert agent.status_server is not None
        status = httpx.get(f"http://127.0.0.1:{agent.status_server.port}/status", timeout=10).json()
        metrics = httpx.get(f"http://127.0.0.1:{agent.status_server.port}/metrics", timeout=10)
        assert metrics.status_code == 200 and "gridwatch_edge_dead_letters_total" in metrics.text
        total_dead = sum(r["dead_lettered"] for r in report.values())
        total_sent = sum(r["sent"] for r in report.values())
        assert status["dead_letters"]["total"] == total_dead
        assert status["dead_letters"]["kept"] <= 1000  # the store stays bounded
        assert status["ingest"]["messages"] == total_sent
        assert status["ingest"]["dead_letters"] == total_dead
        assert status["ingest"]["connected"] is True
        # and a valid alarm published now still goes through the broker and parses
        before = running.parsed["ir-n-01"]
        alarm = valid["perimeter_json"][:1]
        asyncio.run(_publish(fresh_mosquitto.url("devices"), FAMILIES["perimeter_json"][1], alarm))
        running.wait(lambda: running.parsed["ir-n-01"] == before + 1, "a valid message after the flood")
    finally:
        pool.shutdown(cancel_futures=True)
        running.stop()
    elapsed = time.monotonic() - started
    print(f"\naccounting ({elapsed:.1f} s):")
    for family, row in report.items():
        sent, parsed, dead = row["sent"], row["parsed"], row["dead_lettered"]
        print(f"  {family:22s} sent {sent:6d}  parsed {parsed:6d}  dead-lettered {dead:6d}")
    by_reason: Counter[str] = Counter()
    for (_device, reason), n in agent.deadletters.counts().items():
        by_reason[reason] += n
    print("  dead letters by reason:", dict(sorted(by_reason.items())))
