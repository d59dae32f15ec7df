"""The whole edge pipeline under load: device messages → Mosquitto → EdgeAgent (ingest, drivers, rules,
batching, durable outbox, uplink) → Mosquitto → a subscriber counting items, next to raw
paho → Mosquitto → paho QoS 1 with the same payloads, in the same run.

The agent runs in a subprocess of its own (`python -m bench.edge_pipeline agent WORKDIR`), so its
CPU time and peak RSS are its own. Two loads, one after the other:

(a) single-event JSON messages: perimeter detector `normal` reports and door open/closed events
    (one event each; one in 500 is a beam alarm, which raises real alert transitions);
(b) RTLS batches of 100 positions for 5,000 tags, device time advancing 1 s per round so that the
    edge's one-point-per-tag-per-second downsampling keeps every position.

Delivered counts are items inside the uplink `events` / `telemetry` bodies. The agent's messages
per CPU-second are set against a bare paho MQTT 3.1.1 subscriber that only reads, acknowledges and
counts the same load (`python -m bench.edge_pipeline floor …`, its own process and CPU): the cost
of the MQTT client alone, under every message the edge handles. The RTLS rate is set against a
bare paho relay that reads each batch, publishes it unchanged and acknowledges it
(`python -m bench.edge_pipeline relay …`): the least any edge does with the positions, through
the same broker, with the same publisher and a counter sharing the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import paho.mqtt.client as paho

    from bench.run import Row

SITE = "bench-edge"
EDGE = "edge-b"
N_EVENTS = 50_000
N_TAGS = 5_000
RTLS_BATCH = 100
RTLS_ROUNDS = 60  # 60 × 5,000 = 300,000 positions
STALL_S = 8.0  # no new item for this long: the run is over
RELAY_TOPIC = "bench/relay"


def site_dict(n_tags: int) -> dict[str, Any]:
    """One edge serving a perimeter detector, a door controller and an RTLS gateway; 4 grids of people."""
    grids = [
        {
            "id": f"g-{i}",
            "officer": f"off-{i}",
            "polygon": [[10 + 50 * i, 10], [60 + 50 * i, 10], [60 + 50 * i, 90], [10 + 50 * i, 90]],
            "expected_headcount": n_tags // 4,
        }
        for i in range(4)
    ]
    return {
        "site": {"id": SITE, "timezone": "UTC"},
        "areas": [{"id": "a-1", "supervisor": "sup-1", "grids": grids}],
        "zones": [
            {"id": "perim-1", "kind": "perimeter", "polygon": [[0, 100], [220, 100], [220, 110], [0, 110]]},
            {"id": "cells-1", "kind": "cell", "area": "a-1", "polygon": [[10, 10], [210, 10], [210, 90], [10, 90]]},
            {"id": "yard-1", "kind": "yard", "area": "a-1", "polygon": [[10, 90], [210, 90], [210, 99], [10, 99]]},
        ],
        "doors": [{"id": "D-1", "zone": "yard-1", "position": [100, 90]}],
        "devices": [
            {"id": "ir-1", "family": "perimeter_ir", "zone": "perim-1", "position": [50, 105], "beams": 2},
            {"id": "acc-1", "family": "access", "door": "D-1", "zone": "yard-1"},
            {"id": "rtls-1", "family": "rtls", "zone": "cells-1"},
        ],
        "people": [
            {"id": f"P-{i:05d}", "role": "inmate", "grid": f"g-{i % 4}", "tag": f"T-{i:05d}"} for i in range(n_tags)
        ],
        "edges": [{"id": EDGE, "areas": ["a-1"], "zones": ["perim-1"]}],
    }


# -- the agent process ---------------------------------------------------------------------------
def _agent_main(workdir: Path) -> None:
    import asyncio
    import logging

    from edge.agent import EdgeAgent
    from gridwatch.config.models import SiteConfig

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    conf = json.loads((workdir / "agent.json").read_text())
    site = SiteConfig.model_validate(conf["site"])
    agent = EdgeAgent(
        site,
        EDGE,
        device_broker=conf["device_broker"],
        uplink_broker=conf["uplink_broker"],
        outbox_path=workdir / "outbox.db",
        status_bind=None,
        cameras=False,
    )

    async def main() -> None:
        async def ready() -> None:
            while not (agent.ingest.stats.connected and agent.uplink.connected):
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # subscriptions are made right after connecting
            print("ready", flush=True)

        task = asyncio.create_task(ready())
        await agent.run()
        task.cancel()

    asyncio.run(main())


# -- the bench process ---------------------------------------------------------------------------
class _Counter:
    """Counts items of uplink bodies (by kind) as they arrive, with the time of the last one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: dict[str, int] = {"events": 0, "telemetry": 0, "alerts": 0}
        self.last = 0.0
        self.heartbeat = threading.Event()

    def on_message(self, _c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        kind = m.topic.split("/")[4]
        if kind == "heartbeat":
            self.heartbeat.set()
            return
        if kind in ("events", "telemetry"):
            n = len(json.loads(m.payload)["batch"])
        elif kind == "alerts":
            n = 1
        else:
            return
        with self.lock:
            self.items[kind] += n
            self.last = time.perf_counter()

    def get(self, kind: str) -> int:
        with self.lock:
            return self.items[kind]


def _publish_all(client: paho.Client, messages: list[tuple[str, bytes]]) -> None:
    """QoS 1, as fast as paho's queue and the broker take them (retry while the queue is full)."""
    import paho.mqtt.client as paho

    for topic, payload in messages:
        while True:
            info = client.publish(topic, payload, qos=1)
            if info.rc != paho.MQTT_ERR_QUEUE_SIZE:
                break
            time.sleep(0.001)


def _wait(counter: _Counter, kind: str, target: int, t0: float, agent: Any) -> tuple[int, float, float]:
    """Wait until `target` items of `kind` arrived (or STALL_S without progress); (count, seconds, peak RSS)."""
    peak = 0
    seen, since = -1, time.perf_counter()
    while True:
        peak = max(peak, agent.memory_info().rss)
        got = counter.get(kind)
        if got >= target:
            break
        if got != seen:
            seen, since = got, time.perf_counter()
        elif time.perf_counter() - since > STALL_S:
            break
        time.sleep(0.05)
    with counter.lock:
        return counter.items[kind], counter.last - t0, peak


def _event_messages(n: int) -> list[tuple[str, bytes]]:
    base = datetime.now(UTC)
    out = []
    for i in range(n):
        ts = (base + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z")
        if i % 500 == 250:
            body = {"ts": ts, "detector": "ir-1", "beam": 1 + i % 2, "state": "alarm"}
            out.append((f"site/{SITE}/perimeter/ir-1/event", json.dumps(body).encode()))
        elif i % 2:
            body = {"ts": ts, "detector": "ir-1", "beam": 1 + i % 2, "state": "normal"}
            out.append((f"site/{SITE}/perimeter/ir-1/event", json.dumps(body).encode()))
        else:
            event = "door_open" if i % 4 else "door_closed"
            body = {"ts": ts, "door": "D-1", "event": event}
            out.append((f"site/{SITE}/access/acc-1/event", json.dumps(body).encode()))
    return out


def _rtls_messages(n_tags: int, rounds: int) -> list[tuple[str, bytes]]:
    import numpy as np

    rng = np.random.default_rng(5)
    start = datetime.now(UTC) - timedelta(seconds=200)  # device time stays inside the 300 s skew window
    out = []
    for r in range(rounds):
        ts = (start + timedelta(seconds=r)).isoformat().replace("+00:00", "Z")
        xs = rng.uniform(12, 208, n_tags).round(2)
        ys = rng.uniform(12, 88, n_tags).round(2)
        for s in range(0, n_tags, RTLS_BATCH):
            positions = [
                {"tag": f"T-{k:05d}", "x": float(xs[k]), "y": float(ys[k]), "q": 0.9, "bat": 80}
                for k in range(s, min(s + RTLS_BATCH, n_tags))
            ]
            out.append((f"site/{SITE}/rtls/rtls-1/positions", json.dumps({"ts": ts, "positions": positions}).encode()))
    return out


def _floor_main(url: str, n: int) -> None:
    """The least an MQTT 3.1.1 QoS 1 subscriber can do with paho: read, acknowledge, count; print its CPU.

    The edge reads the device broker this way (edge/ingest.py) and then parses, runs the rules and
    stores; this process does none of that, so its CPU per message is the floor under ours.
    """

    client = _bare_client(url, "bench-floor")
    got = 0
    start = 0.0

    def on_message(c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        nonlocal got, start
        if got == 0:
            start = time.process_time()
        got += 1
        c.ack(m.mid, m.qos)
        if got >= n:
            c.disconnect()

    client.on_message = on_message
    client.on_subscribe = lambda *_a: print("ready", flush=True)
    client.on_connect = lambda c, *_a: c.subscribe(f"site/{SITE}/#", qos=1)
    client.loop_forever()
    print(f"{got} {time.process_time() - start}", flush=True)


def _relay_main(url: str, n: int) -> None:
    """The least an edge can do with device messages: read each (QoS 1), publish it unchanged on
    RELAY_TOPIC (QoS 1), acknowledge it. Prints its CPU seconds once `n` are relayed and acked."""

    client = _bare_client(url, "bench-relay", max_inflight=1000)
    relayed = acked = 0
    start = 0.0

    def on_message(c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        nonlocal relayed, start
        if relayed == 0:
            start = time.process_time()
        relayed += 1
        c.publish(RELAY_TOPIC, m.payload, qos=1)
        c.ack(m.mid, m.qos)

    def on_publish(c: paho.Client, *_a: object) -> None:
        nonlocal acked
        acked += 1
        if acked >= n:
            c.disconnect()

    client.on_message = on_message
    client.on_publish = on_publish
    client.on_subscribe = lambda *_a: print("ready", flush=True)
    client.on_connect = lambda c, *_a: c.subscribe(f"site/{SITE}/#", qos=1)
    client.loop_forever()
    print(f"{acked} {time.process_time() - start}", flush=True)


def _bare_client(url: str, client_id: str, *, max_inflight: int = 20) -> paho.Client:
    """A paho MQTT 3.1.1 client with manual acks, connected (not looping), as the edge reads devices;
    `max_inflight` bounds its own publishes (20 is paho's default)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from gridwatch.config import BrokerUrl

    broker = BrokerUrl.parse(url)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
    client.username_pw_set(broker.username, broker.password)
    client.manual_ack_set(True)
    client.max_inflight_messages_set(max_inflight)
    client.connect(broker.host, broker.port)
    return client


def _device_publisher(url: str, client_id: str) -> paho.Client:
    """The devices' side of every load here: QoS 1, 1,000 in flight, loop running."""
    from gridwatch.config import BrokerUrl
    from gridwatch.mqtt import sync_client

    pub = sync_client(url, client_id)
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", BrokerUrl.parse(url).port)
    pub.loop_start()
    return pub


def _bare_process(
    role: str, url: str, publisher_url: str, messages: list[tuple[str, bytes]], done: threading.Event | None = None
) -> tuple[float, float, float]:
    """Run `python -m bench.edge_pipeline ROLE URL N`, publish `messages` to it and wait for it (and
    for `done`, when given); (messages it handled, its CPU seconds, seconds from the first publish
    to `done`)."""
    from bench.run import REPO

    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.edge_pipeline", role, url, str(len(messages))],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the bare paho {role} process did not start")
        pub = _device_publisher(publisher_url, f"bench-edge-{role}-devices")
        time.sleep(0.3)
        t0 = time.perf_counter()
        _publish_all(pub, messages)
        if done is not None:
            done.wait(120)
        elapsed = time.perf_counter() - t0
        pub.loop_stop()
        pub.disconnect()
        got, cpu = proc.stdout.readline().split()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return float(got), float(cpu), elapsed


def _relay_floor(url: str, publisher_url: str, messages: list[tuple[str, bytes]]) -> tuple[float, float]:
    """(messages/s end to end, messages per relay CPU-second) of the bare paho relay (`_relay_main`):
    publisher → Mosquitto → relay → Mosquitto → counter, every process on this machine's cores,
    as in the edge pipeline run."""
    from bench.run import _Counter as TopicCounter
    from gridwatch.config import BrokerUrl

    counter = TopicCounter(url, BrokerUrl.parse(url).port, RELAY_TOPIC, len(messages), "bench-relay-sub")
    try:
        got, cpu, elapsed = _bare_process("relay", url, publisher_url, messages, counter.done)
    finally:
        counter.close()
    return counter.count / elapsed, got / cpu


def _paho_floor(url: str, publisher_url: str, messages: list[tuple[str, bytes]]) -> float:
    """Messages per CPU-second of the bare paho subscriber (`_floor_main`), on `messages`."""
    got, cpu, _elapsed = _bare_process("floor", url, publisher_url, messages)
    return got / cpu


def bench_edge() -> list[Row]:
    import psutil

    from bench.run import REPO, Row, _raw_qos1
    from gridwatch.broker import ADMIN_ACL, DEVICES_ACL, BrokerUser, Mosquitto, edge_acl
    from gridwatch.mqtt import sync_client

    events = _event_messages(N_EVENTS)
    sample_rtls = _rtls_messages(RTLS_BATCH, 1)[0][1]
    n_positions = N_TAGS * RTLS_ROUNDS
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        users = [
            BrokerUser("admin", "bench", ADMIN_ACL),
            BrokerUser("devices", "bench", DEVICES_ACL),
            BrokerUser(EDGE, "bench", edge_acl(EDGE)),
        ]
        with Mosquitto(work / "broker", users=users) as broker:
            raw_a = _raw_qos1(broker.url("admin"), broker.port, 20_000, events[1][1])
            raw_b = _raw_qos1(broker.url("admin"), broker.port, 2_000, sample_rtls) * RTLS_BATCH
            floor_a = _paho_floor(broker.url("admin"), broker.url("devices"), events)
            relay_b, relay_b_cpu = _relay_floor(broker.url("admin"), broker.url("devices"), _rtls_messages(N_TAGS, 20))
            (work / "agent.json").write_text(
                json.dumps(
                    {"site": site_dict(N_TAGS), "device_broker": broker.url(EDGE), "uplink_broker": broker.url(EDGE)}
                )
            )
            counter = _Counter()
            sub = sync_client(broker.url("admin"), "bench-edge-sub")
            subscribed = threading.Event()
            sub.on_message = counter.on_message
            sub.on_subscribe = lambda *_a: subscribed.set()
            sub.on_connect = lambda c, *_a: c.subscribe(f"gridwatch/v1/{SITE}/{EDGE}/#", qos=1)
            sub.connect("127.0.0.1", broker.port)
            sub.loop_start()
            subscribed.wait(5)
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.edge_pipeline", "agent", str(work)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=(work / "agent.log").open("wb"),
                text=True,
            )
            try:
                assert proc.stdout is not None
                if proc.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"edge agent did not start:\n{(work / 'agent.log').read_text()[-2000:]}")
                agent = psutil.Process(proc.pid)
                idle_rss = agent.memory_info().rss
                pub = _device_publisher(broker.url("devices"), "bench-edge-devices")
                time.sleep(0.3)
                results = []
                for kind, target in (("events", N_EVENTS), ("telemetry", n_positions)):
                    # RTLS device time must stay within the skew window: build those messages just in time
                    messages = events if kind == "events" else _rtls_messages(N_TAGS, RTLS_ROUNDS)
                    cpu0 = sum(agent.cpu_times()[:2])
                    t0 = time.perf_counter()
                    _publish_all(pub, messages)
                    got, seconds, peak = _wait(counter, kind, target, t0, agent)
                    cpu = sum(agent.cpu_times()[:2]) - cpu0
                    results.append((got, seconds, cpu, peak))
                alerts = counter.get("alerts")
                pub.loop_stop()
                pub.disconnect()
            finally:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                sub.loop_stop()
                sub.disconnect()
    (a_got, a_s, a_cpu, a_peak), (b_got, b_s, b_cpu, b_peak) = results
    a_note = "" if a_got == N_EVENTS else f", only {a_got:,}/{N_EVENTS:,} delivered"
    b_note = "" if b_got == n_positions else f", only {b_got:,}/{n_positions:,} delivered"
    mb = 1024 * 1024
    return [
        Row(
            f"edge pipeline (a): device msg → ingest → outbox → uplink, sustained "
            f"({N_EVENTS:,} msgs, {alerts} alert transitions{a_note}; target ≥ 40% of raw)",
            a_got / a_s,
            raw_a,
            "msg/s",
            "paho → Mosquitto → paho QoS 1, same payload",
        ),
        Row(
            "edge pipeline (a): messages per CPU-second of the agent process (target ≥ 20,000)",
            a_got / a_cpu,
            floor_a,
            "msg/s/core",
            "bare paho MQTT 3.1.1 subscriber, QoS 1 acked, same messages (its CPU)",
        ),
        Row(
            f"edge pipeline (b): RTLS batches of {RTLS_BATCH} → uplink telemetry "
            f"({N_TAGS:,} tags × {RTLS_ROUNDS} s{b_note}; target ≥ 200,000)",
            b_got / b_s,
            raw_b,
            "positions/s",
            f"paho → Mosquitto → paho QoS 1, same {RTLS_BATCH}-position payload",
        ),
        Row(
            f"edge pipeline (b) against the least any edge does: RTLS batches of {RTLS_BATCH} in, "
            "telemetry out (target ≥ 200,000)",
            b_got / b_s,
            relay_b * RTLS_BATCH,
            "positions/s",
            "bare paho relay: device → Mosquitto → read, publish unchanged, ack → Mosquitto → counter",
        ),
        Row(
            "edge pipeline (b): positions per CPU-second of the agent process",
            b_got / b_cpu,
            relay_b_cpu * RTLS_BATCH,
            "pos/s/core",
            "the bare paho relay's positions per CPU-second",
        ),
        Row(
            "edge agent peak RSS under load (a) then (b)",
            max(a_peak, b_peak) / mb,
            idle_rss / mb,
            "MB",
            "the same agent idle, right after start",
            higher_is_better=False,
        ),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "agent":
        _agent_main(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "floor":
        _floor_main(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "relay":
        _relay_main(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: python -m bench.edge_pipeline agent WORKDIR | floor BROKER_URL N | relay BROKER_URL N")
