"""The uplink against a real Mosquitto: delivery, a broker outage mid-stream, heartbeat, will, commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt

from edge.outbox import Lane, Outbox
from edge.uplink import Uplink
from gridwatch.broker import Mosquitto, edge_acl
from gridwatch.contract import (
    CONFIRM_CMD,
    AlertTransition,
    ConfirmCmd,
    Heartbeat,
    HeartbeatWill,
    OutboxDepth,
    new_event_id,
    parse_uplink,
    uplink_topic,
)
from gridwatch.mqtt import async_client

SITE = "s1"
EDGE = "edge-a1"
CENTRAL_URL_USER = "central"


def alert_body(n: int) -> bytes:
    now = datetime.now(UTC)
    return (
        AlertTransition.model_validate(
            {
                "event_id": new_event_id(),
                "alert_id": f"al-{n}",
                "rule": "perimeter.intrusion",
                "level": "high",
                "state": "active",
                "ts": now,
                "first_seen": now,
                "site": SITE,
                "edge": EDGE,
                "zone": "perim-north",
                "subject": {"kind": "zone", "id": "perim-north"},
                "devices": ["ir-n-03"],
                "title": f"Perimeter beam break {n}",
            }
        )
        .model_dump_json()
        .encode()
    )


def heartbeat_of(box: Outbox) -> Callable[[], Heartbeat]:
    started = datetime.now(UTC)

    def beat() -> Heartbeat:
        depth = box.depth()
        now = datetime.now(UTC)
        return Heartbeat(
            ts=now,
            version="test",
            uptime_s=(now - started).total_seconds(),
            config_hash="cafe",
            outbox=OutboxDepth(alerts=depth["alerts"], events=depth["events"], telemetry=depth["telemetry"]),
        )

    return beat


class Collector:
    """A central-like subscriber: persistent session (clean_start False), reconnects after any error.

    With `confirm`, it also confirms what it received on `cmd/confirm`, batched, as central does.
    """

    def __init__(self, url: str, topic: str, identifier: str, *, confirm: bool = False) -> None:
        self.url = url
        self.topic = topic
        self.identifier = identifier
        self.confirm = confirm
        self.messages: list[tuple[str, bytes]] = []
        self.event_ids: set[str] = set()
        self.connects = 0
        self.subscribed = asyncio.Event()
        self.arrived = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with async_client(self.url, self.identifier, persistent=True) as client:
                    self.connects += 1
                    await client.subscribe(self.topic, qos=1)
                    self.subscribed.set()
                    pending: list[str] = []
                    async with running(*([self._confirm(client, pending)] if self.confirm else [])):
                        async for message in client.messages:
                            payload = message.payload
                            assert isinstance(payload, bytes)
                            self.messages.append((message.topic.value, payload))
                            event_id = json.loads(payload).get("event_id")
                            if event_id is not None:
                                self.event_ids.add(event_id)
                                pending.append(event_id)
                            self.arrived.set()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    @staticmethod
    async def _confirm(client: aiomqtt.Client, pending: list[str]) -> None:
        while True:
            await asyncio.sleep(0.05)
            if pending:
                body = ConfirmCmd(alerts=pending[:5000]).model_dump_json().encode()
                del pending[:5000]
                await client.publish(uplink_topic(SITE, EDGE, "cmd", CONFIRM_CMD), body, qos=1)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.arrived.wait(), 0.2)


@contextlib.asynccontextmanager
async def running(*coros: Coroutine[Any, Any, None]) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result


def event_ids(messages: list[tuple[str, bytes]]) -> list[str]:
    return [json.loads(payload)["event_id"] for _, payload in messages]


def test_uplink_delivers_2000_alerts_and_empties_the_outbox(fresh_mosquitto: Mosquitto, tmp_path: Path) -> None:
    edge_url = fresh_mosquitto.add_user(EDGE, edge_acl(EDGE))
    box = Outbox(tmp_path / "outbox.db")

    async def main() -> None:
        collector = Collector(fresh_mosquitto.url("central"), uplink_topic(SITE, EDGE, "alerts"), "central-t1")
        uplink = Uplink(edge_url, SITE, EDGE, box, heartbeat=heartbeat_of(box))
        async with running(collector.run()):
            await asyncio.wait_for(collector.subscribed.wait(), 10)
            bodies = [alert_body(n) for n in range(2000)]
            box.put_many((Lane.ALERTS, "alerts", b) for b in bodies)
            async with running(uplink.run()):
                uplink.notify()
                await collector.wait_for(lambda: len(collector.messages) >= 2000 and len(box) == 0, 20)
        got = event_ids(collector.messages)
        assert set(got) == {json.loads(b)["event_id"] for b in bodies}
        assert len(got) == 2000  # no outage: no duplicates either
        assert all(isinstance(parse_uplink("alerts", payload), AlertTransition) for _, payload in collector.messages)
        assert box.depth()["alerts"] == 0
        assert uplink.published == 2000
        assert uplink.reconnects == 0

    asyncio.run(main())
    box.close()


def test_broker_outage_mid_stream_loses_no_alert(fresh_mosquitto: Mosquitto, tmp_path: Path) -> None:
    edge_url = fresh_mosquitto.add_user(EDGE, edge_acl(EDGE))
    box = Outbox(tmp_path / "outbox.db")
    total = 3000

    async def main() -> None:
        collector = Collector(fresh_mosquitto.url("central"), uplink_topic(SITE, EDGE, "alerts"), "central-t2")
        # a small window and slow trickle of puts keep the uplink mid-stream when the broker goes
        uplink = Uplink(edge_url, SITE, EDGE, box, heartbeat=heartbeat_of(box), window=50)
        expected: set[str] = set()

        async def producer() -> None:
            for start in range(0, total, 100):
                bodies = [alert_body(n) for n in range(start, start + 100)]
                expected.update(json.loads(b)["event_id"] for b in bodies)
                await asyncio.to_thread(box.put_many, [(Lane.ALERTS, "alerts", b) for b in bodies])
                uplink.notify()
                await asyncio.sleep(0.05)

        async with running(collector.run()):
            await asyncio.wait_for(collector.subscribed.wait(), 10)
            async with running(uplink.run(), producer()):
                await collector.wait_for(lambda: len(collector.messages) >= 300, 20)
                assert uplink.published < total, "the outage must come mid-stream"
                await asyncio.to_thread(fresh_mosquitto.stop)
                await asyncio.sleep(2.0)
                assert not uplink.connected
                await asyncio.to_thread(fresh_mosquitto.start)
                await collector.wait_for(
                    lambda: len(expected) == total and collector.event_ids >= expected and len(box) == 0, 15
                )
            got = event_ids(collector.messages)
            assert set(got) == expected
            duplicates = len(got) - len(set(got))
            print(f"received {len(got)} messages for {total} alerts: {duplicates} duplicates")
            assert uplink.reconnects >= 1
            assert collector.connects >= 2
            assert box.depth()["alerts"] == 0

    asyncio.run(main())
    box.close()


def test_heartbeat_arrives_with_outbox_depth(fresh_mosquitto: Mosquitto, tmp_path: Path) -> None:
    edge_url = fresh_mosquitto.add_user(EDGE, edge_acl(EDGE))
    box = Outbox(tmp_path / "outbox.db")

    async def main() -> None:
        collector = Collector(fresh_mosquitto.url("central"), uplink_topic(SITE, EDGE, "heartbeat"), "central-t3")
        uplink = Uplink(edge_url, SITE, EDGE, box, heartbeat=heartbeat_of(box), heartbeat_s=0.2)
        async with running(collector.run()):
            await asyncio.wait_for(collector.subscribed.wait(), 10)
            async with running(uplink.run()):
                await collector.wait_for(lambda: len(collector.messages) >= 3, 10)
        bodies = [parse_uplink("heartbeat", payload) for _, payload in collector.messages]
        beats = [b for b in bodies if isinstance(b, Heartbeat)]
        assert len(beats) >= 3 and all(b.version == "test" and b.outbox.alerts == 0 for b in beats)
        # the only other body allowed is the goodbye of the clean stop at the end
        assert all(b == HeartbeatWill(state="offline") for b in bodies if not isinstance(b, Heartbeat))

    asyncio.run(main())
    box.close()


_UPLINK_PROCESS = """
import asyncio, sys
from datetime import UTC, datetime
from pathlib import Path
from edge.outbox import Outbox
from edge.uplink import Uplink
from gridwatch.contract import Heartbeat, OutboxDepth

def beat():
    return Heartbeat(ts=datetime.now(UTC), version="child", uptime_s=0.0, config_hash="x",
                     outbox=OutboxDepth(alerts=0, events=0, telemetry=0))

asyncio.run(Uplink(sys.argv[1], "s1", "edge-a1", Outbox(Path(sys.argv[2])), heartbeat=beat, heartbeat_s=0.2).run())
"""


def test_will_says_offline_when_the_uplink_process_dies(fresh_mosquitto: Mosquitto, tmp_path: Path) -> None:
    edge_url = fresh_mosquitto.add_user(EDGE, edge_acl(EDGE))

    async def main() -> None:
        collector = Collector(fresh_mosquitto.url("central"), uplink_topic(SITE, EDGE, "heartbeat"), "central-t4")
        async with running(collector.run()):
            await asyncio.wait_for(collector.subscribed.wait(), 10)
            proc = subprocess.Popen(
                [sys.executable, "-c", _UPLINK_PROCESS, edge_url, str(tmp_path / "child.db")], env={**os.environ}
            )
            try:
                await collector.wait_for(lambda: len(collector.messages) >= 1, 15)
                assert isinstance(parse_uplink("heartbeat", collector.messages[0][1]), Heartbeat)
                proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
                await collector.wait_for(
                    lambda: any(isinstance(parse_uplink("heartbeat", p), HeartbeatWill) for _, p in collector.messages),
                    10,
                )
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        last = parse_uplink("heartbeat", collector.messages[-1][1])
        assert last == HeartbeatWill(state="offline")
        assert json.loads(collector.messages[-1][1]) == {"state": "offline"}

    asyncio.run(main())


def test_command_reaches_on_command_and_bad_json_is_ignored(fresh_mosquitto: Mosquitto, tmp_path: Path) -> None:
    edge_url = fresh_mosquitto.add_user(EDGE, edge_acl(EDGE))
    box = Outbox(tmp_path / "outbox.db")

    async def main() -> None:
        received: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

        async def on_command(name: str, body: dict[str, Any]) -> None:
            await received.put((name, body))

        collector = Collector(fresh_mosquitto.url("central"), uplink_topic(SITE, EDGE, "heartbeat"), "central-t5")
        uplink = Uplink(edge_url, SITE, EDGE, box, heartbeat=heartbeat_of(box), on_command=on_command, heartbeat_s=0.2)
        async with running(collector.run(), uplink.run()):
            # a heartbeat is published only after the cmd subscription is in place
            await collector.wait_for(lambda: len(collector.messages) >= 1, 10)
            async with async_client(fresh_mosquitto.url("central"), "central-cmd") as central:
                await central.publish(uplink_topic(SITE, EDGE, "cmd", "rollcall"), b"{not json", qos=1)
                await central.publish(uplink_topic(SITE, EDGE, "cmd", "arm"), b"[1, 2]", qos=1)
                body = {"request_id": "r-1", "grid": "g-3"}
                await central.publish(uplink_topic(SITE, EDGE, "cmd", "rollcall"), json.dumps(body), qos=1)
            name, got = await asyncio.wait_for(received.get(), 10)
            assert (name, got) == ("rollcall", body)
            assert received.empty()
            assert uplink.bad_commands == 2
            assert uplink.connected and uplink.reconnects == 0

    asyncio.run(main())
    box.close()


def test_a_clean_stop_says_offline_at_once(fresh_mosquitto: Mosquitto, tmp_path: Path) -> None:
    """A clean disconnect discards the will, so the uplink publishes the offline body itself."""
    edge_url = fresh_mosquitto.add_user(EDGE, edge_acl(EDGE))
    box = Outbox(tmp_path / "outbox.db")

    async def main() -> None:
        collector = Collector(fresh_mosquitto.url("central"), uplink_topic(SITE, EDGE, "heartbeat"), "central-t9")
        uplink = Uplink(edge_url, SITE, EDGE, box, heartbeat=heartbeat_of(box), heartbeat_s=0.2)
        async with running(collector.run()):
            await asyncio.wait_for(collector.subscribed.wait(), 10)
            async with running(uplink.run()):
                await collector.wait_for(lambda: len(collector.messages) >= 1, 10)
            # running() cancelled the uplink: a clean stop
            await collector.wait_for(lambda: any(b"offline" in p for _, p in collector.messages), 5)
        last = parse_uplink("heartbeat", collector.messages[-1][1])
        assert isinstance(last, HeartbeatWill) and last.state == "offline"

    asyncio.run(main())
    box.close()


def test_a_broker_crash_after_its_puback_loses_nothing_once_central_confirms(
    fresh_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The broker PUBACKs 1,000 alerts for an offline central and is SIGKILLed before it saves them.

    Without confirmations every one of them is gone (the edge deleted each on its PUBACK). With
    them, the edge keeps them, its probe reaches central once both are back, central's answer
    overtakes the rest, and every alert arrives.
    """
    fresh_mosquitto.autosave_s = 3600  # nothing queued is saved before the crash: the loss is certain
    fresh_mosquitto.restart()
    edge_url = fresh_mosquitto.add_user(EDGE, edge_acl(EDGE))
    box = Outbox(tmp_path / "outbox.db")
    total = 1000

    async def main() -> None:
        topic = uplink_topic(SITE, EDGE, "alerts")
        central = Collector(fresh_mosquitto.url("central"), topic, "central-crash", confirm=True)
        uplink = Uplink(
            edge_url, SITE, EDGE, box, heartbeat=heartbeat_of(box), confirm_grace_s=0.5, confirm_probe_s=1.0
        )
        first = alert_body(-1)
        async with running(uplink.run()):
            async with running(central.run()):  # one confirmed alert: the edge learns that central confirms
                await asyncio.wait_for(central.subscribed.wait(), 10)
                box.put(Lane.ALERTS, "alerts", first)
                uplink.notify()
                await central.wait_for(lambda: box.confirms and len(box) == 0, 10)
            # central is offline (its session queues); the broker PUBACKs every alert, then crashes
            bodies = [alert_body(n) for n in range(total)]
            expected = {json.loads(b)["event_id"] for b in bodies}
            box.put_many((Lane.ALERTS, "alerts", b) for b in bodies)
            uplink.notify()
            await central.wait_for(lambda: box.awaiting_confirmation()["alerts"] == total, 20)
            assert box.depth()["alerts"] == 0 and uplink.published == total + 1
            await asyncio.to_thread(fresh_mosquitto.kill)
            await asyncio.to_thread(fresh_mosquitto.start)
            async with running(central.run()):
                await central.wait_for(lambda: central.event_ids >= expected and len(box) == 0, 60)
        got = event_ids(central.messages)
        assert set(got) - {json.loads(first)["event_id"]} == expected
        # the broker lost all of them: each went again, the newest as a probe, the rest overtaken by it
        assert box.requeued_probes >= 1
        assert box.requeued_overtaken + box.requeued_probes >= total
        print(
            f"broker crash: {total} alerts lost by the broker after its PUBACK, all delivered again "
            f"({box.requeued_probes} probe(s), {box.requeued_overtaken} overtaken); {len(got) - len(set(got))} "
            "duplicates for central's dedup"
        )

    asyncio.run(main())
    box.close()
