"""Whole-chain latency: simulated device → device broker → edge → uplink broker → central → SSE client.

The real processes of `gridwatch demo` (Mosquitto, central, two edges) run on this machine. A
load generator publishes single RTLS positions at a fixed rate while a prober raises alarms that
each create a new alert (an SOS from a rotating wristband, a device going offline), and an SSE
client at central times their arrival. The floor is the raw broker round trip (paho → Mosquitto →
paho, QoS 1) measured in the same run. CPU and RSS of every process are sampled with psutil.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from gridwatch.config import load_site
from gridwatch.demo import DemoTree, start_demo
from gridwatch.mqtt import sync_client

REPO = Path(__file__).resolve().parent.parent
DEMO_SITE = REPO / "configs" / "demo-site.yaml"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


@dataclass
class RateResult:
    target: float
    achieved: float
    latencies_ms: list[float]
    probes: int
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core, mean over the run
    rss_mb: dict[str, float] = field(default_factory=dict)  # peak

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_ms
        return {
            "target_msg_s": self.target,
            "achieved_msg_s": round(self.achieved, 1),
            "probes": self.probes,
            "received": len(lat),
            "p50_ms": round(percentile(lat, 50), 1),
            "p95_ms": round(percentile(lat, 95), 1),
            "p99_ms": round(percentile(lat, 99), 1),
            "cpu_pct": {k: round(v, 1) for k, v in self.cpu.items()},
            "rss_mb": {k: round(v, 1) for k, v in self.rss_mb.items()},
        }


def raw_round_trip(url: str, port: int, rate: float = 1000, seconds: float = 5) -> list[float]:
    """Latency (ms) of paho QoS 1 → Mosquitto → paho at `rate` msg/s: the floor under everything."""
    sent: dict[int, float] = {}
    got: list[float] = []
    ready = threading.Event()
    sub = sync_client(url, "bench-rtt-sub")

    def on_message(_c: object, _u: object, msg: Any) -> None:
        t = time.perf_counter()
        seq = int(msg.payload[:12])
        if seq in sent:
            got.append((t - sent[seq]) * 1000)

    sub.on_message = on_message
    sub.on_subscribe = lambda *_a: ready.set()
    sub.on_connect = lambda c, *_a: c.subscribe("site/bench/rtt", qos=1)
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    ready.wait(5)
    pub = sync_client(url, "bench-rtt-pub")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    time.sleep(0.3)
    n = int(rate * seconds)
    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        while (now := time.perf_counter()) < due:
            time.sleep(min(0.001, due - now))
        sent[i] = time.perf_counter()
        pub.publish("site/bench/rtt", f"{i:012d}".encode() + b"x" * 188, qos=1)
    time.sleep(1)
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
    return got


class SseTimer(threading.Thread):
    """Follows central's stream; records (arrival, rule, subject id) of every alert event."""

    def __init__(self, central: str, token: str) -> None:
        super().__init__(daemon=True, name="sse")
        self.central, self.token = central, token
        self.events: list[tuple[float, str, str, str]] = []
        self.ready = threading.Event()

    def run(self) -> None:
        with (
            httpx.Client(timeout=httpx.Timeout(10, read=None)) as client,
            client.stream(
                "GET", f"{self.central}/api/v1/stream", headers={"Authorization": f"Bearer {self.token}"}
            ) as response,
        ):
            self.ready.set()
            event = ""
            try:
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event == "alert":
                        t = time.perf_counter()
                        item = json.loads(line[5:])
                        subject = (item.get("subject") or {}).get("id", "")
                        self.events.append((t, item["rule"], subject, item["condition"]))
            except httpx.RemoteProtocolError:
                return  # central stopped at the end of the run and cut the stream mid-chunk


class Sampler(threading.Thread):
    """Mean CPU % and peak RSS of each named process while the run lasts."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True, name="sampler")
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.cpu: dict[str, list[float]] = {name: [] for name in pids}
        self.rss: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.stop = threading.Event()

    def run(self) -> None:
        for p in self.procs.values():
            p.cpu_percent(None)
        while not self.stop.wait(1.0):
            for name, p in self.procs.items():
                try:
                    tree = [p, *p.children(recursive=True)]
                    self.cpu[name].append(sum(q.cpu_percent(None) for q in tree))
                    self.rss[name] = max(self.rss[name], sum(q.memory_info().rss for q in tree) / 2**20)
                except psutil.Error:
                    continue


def _pids(tree: DemoTree) -> dict[str, int]:
    pids = {c.name: c.proc.pid for c in tree.supervisor.children if c.proc is not None}
    if tree.broker.proc is not None:
        pids["mosquitto"] = tree.broker.proc.pid
    return pids


def run_rate(tree: DemoTree, sse: SseTimer, rate: float, seconds: float) -> RateResult:
    site = load_site(DEMO_SITE)
    tags = [p.tag for p in site.people if p.tag]
    gateways = ["rtls-w1", "rtls-w2"]
    bands = sorted(p.band for p in site.people if p.band)
    person_of_band = {p.band: p.id for p in site.people if p.band}
    # door controllers only, one per zone: perimeter detectors share a zone, and more than 10
    # transitions of one rule in one zone a minute are grouped into a flood alert by design
    devices = [d.id for d in site.devices if d.family == "access" and d.expected_interval_s]
    probes: list[tuple[float, str, str]] = []  # (t_publish, rule, subject)
    stop = threading.Event()
    sent = [0]

    load = sync_client(tree.broker.url("devices"), f"bench-load-{rate}")
    load.max_queued_messages_set(0)
    load.connect("127.0.0.1", tree.broker.port)
    load.loop_start()
    probe = sync_client(tree.broker.url("devices"), f"bench-probe-{rate}")
    probe.connect("127.0.0.1", tree.broker.port)
    probe.loop_start()
    time.sleep(0.5)
    site_id = site.site.id

    def generate() -> None:
        start = time.perf_counter()
        i = 0
        while not stop.is_set():
            due = start + i / rate
            now = time.perf_counter()
            if now < due:
                time.sleep(min(0.002, due - now))
                continue
            ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            tag = tags[i % len(tags)]
            body = {"ts": ts, "tag": tag, "x": 30.0 + (i % 10) * 0.1, "y": 80.0}
            load.publish(f"site/{site_id}/rtls/{gateways[i % 2]}/positions", json.dumps(body).encode(), qos=1)
            i += 1
        sent[0] = i

    def prober() -> None:
        k = 0
        # 2.5 probes/s; each subject is reused only after its alert has cleared (10 s quiet)
        while not stop.wait(0.4):
            ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            # three SOS for each door controller: a band comes back every 12.8 s, a door every 14.4 s
            if k % 4 != 3:
                band = bands[(k - k // 4) % len(bands)]
                gateway = "wb-w1" if int(band[2:]) <= 56 else "wb-w2"
                t = time.perf_counter()
                probe.publish(
                    f"site/{site_id}/wristband/{gateway}/event",
                    json.dumps({"ts": ts, "band": band, "event": "sos"}).encode(),
                    qos=1,
                )
                probes.append((t, "wristband.sos", person_of_band[band]))
            else:
                device = devices[(k // 4) % len(devices)]
                family = "access" if device.startswith("acc") else "perimeter"
                t = time.perf_counter()
                probe.publish(f"site/{site_id}/{family}/{device}/status", b"offline", qos=1, retain=True)
                probes.append((t, "device.offline", device))
                threading.Timer(
                    1.0,
                    lambda d=device, f=family: probe.publish(
                        f"site/{site_id}/{f}/{d}/status", b"online", qos=1, retain=True
                    ),
                ).start()
            k += 1

    sampler = Sampler(_pids(tree))
    sampler.start()
    threads = [threading.Thread(target=generate), threading.Thread(target=prober)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    time.sleep(3)  # stragglers
    sampler.stop.set()
    for c in (load, probe):
        c.loop_stop()
        c.disconnect()
    latencies = []
    for t_pub, rule, subject in probes:
        if os.environ.get("CHAIN_DEBUG"):  # one line per probe, to look at a tail
            seen = [t for t, r, s, cond in sse.events if t >= t_pub and (r, s, cond) == (rule, subject, "active")]
            print(rule, subject, round((seen[0] - t_pub) * 1000) if seen else None)
        arrival = next(
            (t for t, r, s, cond in sse.events if t >= t_pub and r == rule and s == subject and cond == "active"), None
        )
        if arrival is not None:
            latencies.append((arrival - t_pub) * 1000)
    time.sleep(11)  # let the probed alerts clear (quiet period) before the next rate reuses their subjects
    return RateResult(
        rate,
        sent[0] / elapsed,
        latencies,
        len(probes),
        {k: statistics.mean(v) if v else 0.0 for k, v in sampler.cpu.items()},
        sampler.rss,
    )


def bench_chain(rates: tuple[float, ...] = (10, 1000, 3000, 10000), seconds: float = 20) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        tree = start_demo(DEMO_SITE, Path(tmp) / "chain", cameras=False, play=False)
        try:
            floor = raw_round_trip(tree.broker.url("devices"), tree.broker.port)
            token = httpx.post(
                f"{tree.central_url}/api/v1/auth/token",
                data={"username": tree.login[0], "password": tree.login[1]},
                timeout=10,
            ).json()["access_token"]
            sse = SseTimer(tree.central_url, token)
            sse.start()
            sse.ready.wait(10)
            results = [run_rate(tree, sse, rate, seconds) for rate in rates]
        finally:
            tree.stop()
    sustained = [
        r.target
        for r in results
        if r.latencies_ms and len(r.latencies_ms) == r.probes and percentile(r.latencies_ms, 99) < 1000
    ]
    return {
        "floor_ms": {"p50": round(percentile(floor, 50), 3), "p99": round(percentile(floor, 99), 3)},
        "rates": [r.summary() for r in results],
        "highest_rate_p99_under_1s": max(sustained, default=0),
    }
