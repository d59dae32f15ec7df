"""A network cut between the edge and the uplink broker, in network namespaces of the test's own.

Run by tests/edge_reliability/test_netcut.py as `unshare -n python -m tests.edge_reliability.netcut
run WORKDIR`: everything happens inside a fresh network namespace ("edge side") that this module
sets up, and a second one ("uplink side") joined to it by a veth pair — the machine's own network
is never touched.

    edge side (10.231.0.1)                          uplink side (10.231.0.2)
    device Mosquitto on 127.0.0.1                    uplink Mosquitto
    devices → EdgeAgent ── veth gw-edge ═══ gw-up ── counting subscriber ("central")

The cut is the edge's link going down (`ip link set gw-edge down`), as when its cable is pulled:
no RST, no FIN, the broker stays up; the edge's TCP connection simply stops carrying anything
and the edge must notice through MQTT keep-alive, keep raising alerts into its outbox and
deliver them all, once each, when the link comes back. The counting subscriber runs on the
uplink side (`python -m tests.edge_reliability.netcut count URL FILE` under nsenter) and is never
cut. Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and veth support; the test fails otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt

from gridwatch.broker import CENTRAL_ACL, DEVICES_ACL, BrokerUser, Mosquitto, edge_acl
from gridwatch.mqtt import async_client
from tests.edge_reliability.test_outages import (
    UPLINK,
    Arrival,
    Central,
    Devices,
    _agent,
    _expected_complete,
    assert_complete,
    tally,
    wait_for,
)

EDGE_IP, UPLINK_IP = "10.231.0.1", "10.231.0.2"
CUT_S = 30.0  # longer than the edge's MQTT keep-alive (15 s), so the edge must notice the dead link


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


# -- the counting subscriber, on the uplink side -------------------------------------------------
async def count(url: str, out: Path) -> None:
    """A persistent QoS 1 subscriber writing every uplink message as a JSON line; `ready` once subscribed."""
    with out.open("a", buffering=1) as f:
        while True:
            try:
                async with async_client(url, "netcut-central", persistent=True) as client:
                    await client.subscribe(f"{UPLINK}/#", qos=1)
                    f.write(json.dumps({"kind": "ready"}) + "\n")
                    async for message in client.messages:
                        kind = message.topic.value.removeprefix(UPLINK + "/")
                        if kind in ("alerts", "events", "telemetry"):
                            assert isinstance(message.payload, bytes)
                            body = json.loads(message.payload)
                            f.write(json.dumps({"kind": kind, "body": body, "at": time.monotonic()}) + "\n")
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)


class Counted(Central):
    """The uplink-side subscriber's arrivals, read back from its file."""

    def __init__(self, path: Path) -> None:
        super().__init__(url="")
        self.path = path
        self._offset = 0

    def refresh(self) -> None:
        if not self.path.exists():
            return
        with self.path.open() as f:
            f.seek(self._offset)
            for line in f:
                if not line.endswith("\n"):
                    break  # a line being written: read it next time
                self._offset += len(line.encode())
                item = json.loads(line)
                if item["kind"] == "ready":
                    self.connected = True
                    continue
                self.arrivals.append(Arrival(len(self.arrivals), item["kind"], item["body"], item["at"]))


# -- the scenario, on the edge side ----------------------------------------------------------------
def run(workdir: Path) -> dict[str, Any]:
    sh("ip", "link", "set", "lo", "up")
    holder = subprocess.Popen(["unshare", "-n", "sleep", "600"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        ours = Path("/proc/self/ns/net").readlink()
        while Path(f"/proc/{holder.pid}/ns/net").readlink() == ours:  # unshare has not switched yet
            if time.monotonic() > deadline:
                raise RuntimeError("the uplink-side namespace did not appear")
            time.sleep(0.01)
        enter = ("nsenter", "-t", str(holder.pid), "-n")
        sh("ip", "link", "add", "gw-edge", "type", "veth", "peer", "name", "gw-up", "netns", str(holder.pid))
        sh("ip", "addr", "add", f"{EDGE_IP}/30", "dev", "gw-edge")
        sh("ip", "link", "set", "gw-edge", "up")
        sh(*enter, "ip", "link", "set", "lo", "up")
        sh(*enter, "ip", "addr", "add", f"{UPLINK_IP}/30", "dev", "gw-up")
        sh(*enter, "ip", "link", "set", "gw-up", "up")
        return _scenario(workdir, enter)
    finally:
        holder.kill()
        holder.wait()


def _scenario(workdir: Path, enter: tuple[str, ...]) -> dict[str, Any]:
    device_broker = Mosquitto(
        workdir / "device-broker",
        users=[BrokerUser("edge-w1", "edge-secret", edge_acl("edge-w1")), BrokerUser("devices", "dev", DEVICES_ACL)],
    )
    uplink_broker = Mosquitto(
        workdir / "uplink-broker",
        users=[
            BrokerUser("edge-w1", "edge-uplink-secret", edge_acl("edge-w1")),
            BrokerUser("central", "central-secret", CENTRAL_ACL),
        ],
        host=UPLINK_IP,
        launcher=enter,
    )
    arrivals = workdir / "arrivals.jsonl"
    with device_broker, uplink_broker:
        counter = subprocess.Popen(
            [
                *enter,
                sys.executable,
                "-m",
                "tests.edge_reliability.netcut",
                "count",
                uplink_broker.url("central"),
                str(arrivals),
            ],
            start_new_session=True,
        )
        try:
            return _play(device_broker, uplink_broker, Counted(arrivals), workdir)
        finally:
            counter.terminate()
            counter.wait(10)


def _play(device_broker: Mosquitto, uplink_broker: Mosquitto, central: Counted, workdir: Path) -> dict[str, Any]:
    agent = _agent(device_broker.url("edge-w1"), uplink_broker.url("edge-w1"), workdir / "edge-w1-outbox.db")
    marks: dict[str, float] = {}

    def follow() -> bool:
        central.refresh()
        return True

    async def watch_link() -> None:
        """When the edge noticed the dead link, and when it was back."""
        while True:
            follow()
            if "cut" in marks and "noticed" not in marks and not agent.uplink.connected:
                marks["noticed"] = time.monotonic() - marks["cut"]
            if "healed" in marks and "reconnected" not in marks and agent.uplink.connected:
                marks["reconnected"] = time.monotonic() - marks["healed"]
            await asyncio.sleep(0.05)

    async def scenario() -> Devices:
        devices = Devices(device_broker.url("devices"))
        agent_task = asyncio.create_task(agent.run(install_signal_handlers=False))
        watcher = asyncio.create_task(watch_link())
        try:
            await wait_for(
                lambda: agent.ingest.stats.connected and agent.uplink.connected and central.connected, "connect", 20
            )
            device_task = asyncio.create_task(devices.run())
            await asyncio.sleep(3)
            await asyncio.to_thread(sh, "ip", "link", "set", "gw-edge", "down")
            marks["cut"] = time.monotonic()
            await asyncio.sleep(CUT_S)
            marks["depth_before_heal"] = float(agent.outbox.depth()["alerts"] + agent.outbox.depth()["events"])
            await asyncio.to_thread(sh, "ip", "link", "set", "gw-edge", "up")
            marks["healed"] = time.monotonic()
            await asyncio.sleep(3)
            devices.stop = True
            await device_task
            await wait_for(lambda: follow() and _expected_complete(central, devices), "every alert", 90, fail=False)
            marks["recovered_s"] = time.monotonic() - marks["healed"]
            await wait_for(
                lambda: agent.outbox.depth()["alerts"] == 0 and agent.outbox.depth()["events"] == 0, "drain", 60
            )
            await asyncio.sleep(1.5)  # late duplicates would arrive now
            follow()
            return devices
        finally:
            watcher.cancel()
            await agent.stop()
            await agent_task

    devices = asyncio.run(scenario())
    t = tally(central)
    redelivered = max(agent.ingest.stats.messages - devices.published, 0)
    during = [b for b in devices.bands if marks["cut"] <= devices.sos_at[b] < marks["healed"]]
    assert_complete(t, devices, redelivered, "network cut")
    assert len(t.alert_ids) == agent.alerts_sent, (len(t.alert_ids), agent.alerts_sent)
    assert during, "no SOS was pressed while the link was cut"
    assert "noticed" in marks, "the edge never noticed that its uplink was dead"
    return {
        "device_messages": devices.published,
        "cards": len(devices.cards),
        "sos": len(devices.bands),
        "sos_during_cut": len(during),
        "alerts": len(t.alert_ids),
        "alert_deliveries": sum(t.alert_ids.values()),
        "event_bodies": len(t.event_bodies),
        "duplicate_deliveries": t.duplicate_deliveries,
        "outbox_depth_before_heal": int(marks["depth_before_heal"]),
        "noticed_after_s": round(marks["noticed"], 1),
        "reconnected_after_heal_s": round(marks.get("reconnected", -1), 1),
        "complete_after_heal_s": round(marks["recovered_s"], 1),
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["count"]:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(count(argv[1], Path(argv[2])))
        return 0
    if argv[:1] == ["run"]:
        workdir = Path(argv[1])
        result = run(workdir)
        (workdir / "result.json").write_text(json.dumps(result))
        print(json.dumps(result))
        return 0
    print("usage: python -m tests.edge_reliability.netcut run WORKDIR | count URL FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
