"""Device-broker ingest: two MQTT sessions, topic → device, drivers.parse, readings to a callback.

The edge subscribes QoS 1 to every topic of every device it serves, in two *lanes*, each a broker
session of its own: `bulk` for RTLS positions and wristband telemetry, `alarms` for everything
else (perimeter, access, camera, wristband events, statuses). A broker delivers one session's
messages in order, so in a single session an alarm waits behind every position queued before it;
in its own session it waits behind other alarms only, while the two lanes share the event loop a
batch at a time (HOLD_LOOP_S). With `discover_unknown` each lane also subscribes to its families'
wildcards under `site/{site}/` (`perimeter/#`, `access/#`, `camera/#`, `wristband/+/event`,
`wristband/+/status`; `rtls/#`, `wristband/+/telemetry`) instead of the served topics under them,
so nothing arrives twice, to see devices that publish but are not in the config: those become
dead letters with reason `unknown_device`, logged once per device id (devices of a family the
contract does not name are not seen). Devices of the site that another edge serves are ignored
quietly. Bad bytes never stop the loop; a lost broker is reconnected with backoff, and the
persistent sessions keep QoS 1 messages queued meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiomqtt
import paho.mqtt.client as paho

import drivers
from gridwatch.clock import Clock, SystemClock
from gridwatch.config.broker import BrokerUrl
from gridwatch.config.models import Edge, SiteConfig
from gridwatch.contract import Family, PositionsReading, Reading
from gridwatch.contract.readings import PositionColumns, Positions, columns_of
from gridwatch.mqtt import async_client, describe_connect_error

from .deadletter import DRIVER_BUG, UNKNOWN_DEVICE, DeadLetterStore
from .health import DeviceHealthTracker

log = logging.getLogger(__name__)

UNKNOWN_TOPIC = "unknown_topic"
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
SUBSCRIBE_CHUNK = 100
ACK_BATCH = 200  # at most this many messages are handled before their events are stored and they are acked
READ_AHEAD = ACK_BATCH  # packets paho may read ahead in one loop pass (its own reader takes one per pass)
HOLD_LOOP_S = 0.01  # under load ingest hands the event loop back at least this often, and at once after an alert
RUN_POSITIONS = 2_000  # consecutive RTLS batches are joined up to this many positions (_JoinedBatches)

# The device broker is read with MQTT 3.1.1: the edge subscribes, and what devices publish (any
# version) reaches a 3.1.1 subscriber unchanged. paho's MQTT 5 parsing builds and clears a
# Properties object for every PUBLISH and PUBACK, which cost about as much CPU as everything the
# edge itself does with a message (bench/edge_pipeline.py). The session outlives a disconnect the
# same way: clean session off, kept for the broker's persistent_client_expiration (7 d in our configs).
DEVICE_PROTOCOL = aiomqtt.ProtocolVersion.V311

ReadingsCallback = Callable[[list[Reading]], None]
LaneName = Literal["alarms", "bulk"]


@dataclass(slots=True)
class _Lane:
    """One broker session of ingest: its client id, its subscriptions and its connection state."""

    name: LaneName
    client_id: str
    subscriptions: list[str] = field(default_factory=list)
    # filters an earlier version's session under this client id may still hold: unsubscribed on connect
    stale: list[str] = field(default_factory=list)
    connected: bool = False
    reconnects: int = 0
    last_error: str | None = None


def _lane_of(family: Family, topic: str, site_id: str, device: Any) -> LaneName:
    """`bulk` for an RTLS gateway's topics and a wristband's telemetry topic, `alarms` for the rest."""
    if family is Family.RTLS or (family is Family.WRISTBAND and topic == drivers.data_topic(site_id, device)):
        return "bulk"
    return "alarms"


def _discovery(site_id: str) -> dict[LaneName, list[str]]:
    """Per lane, the wildcards that see every default topic of its families (see the module doc)."""

    def under(family: Family) -> str:
        return drivers.family_prefix(site_id, family)

    return {
        "alarms": [
            f"{under(Family.PERIMETER_IR)}/#",
            f"{under(Family.ACCESS)}/#",
            f"{under(Family.CAMERA)}/#",
            f"{under(Family.WRISTBAND)}/+/event",
            f"{under(Family.WRISTBAND)}/+/status",
        ],
        "bulk": [f"{under(Family.RTLS)}/#", f"{under(Family.WRISTBAND)}/+/telemetry"],
    }


@dataclass(slots=True)
class IngestStats:
    connected: bool = False
    messages: int = 0
    readings: int = 0
    dead_letters: int = 0
    foreign: int = 0  # messages of devices another edge serves (discovery subscription)
    callback_errors: int = 0
    reconnects: int = 0
    last_error: str | None = None
    topics: int = 0
    devices: int = 0


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


def _topic_of(message: paho.MQTTMessage) -> str:
    try:
        return message.topic
    except UnicodeDecodeError:  # brokers refuse such topics; should one pass, it becomes an unknown topic
        return repr(message._topic)


class _Inbox:
    """Messages paho has decoded and the ingest loop has not taken yet.

    aiomqtt turns every message into its own Message, queues it and wakes the reading task with a
    future per message, and paho reads one packet per event-loop pass: together that cost more CPU
    than parsing the message. Here paho's messages are kept as they are; the first of a burst also
    goes through aiomqtt (one item in `client.messages`, which is also how a lost connection
    surfaces), and `take` lets paho read the packets the socket already holds before handing them
    out, so one outbox commit and one loop pass cover a batch.
    """

    def __init__(self, mqtt: paho.Client) -> None:
        self._mqtt = mqtt
        self._messages: list[paho.MQTTMessage] = []
        self._wake = mqtt.on_message  # aiomqtt's: queues a message for `client.messages`
        mqtt.on_message = self._on_message

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._messages.append(message)
        if len(self._messages) == 1 and self._wake is not None:
            self._wake(client, userdata, message)

    def put_back(self, messages: list[paho.MQTTMessage]) -> None:
        """Messages taken but not handled yet: they come first again, in their order."""
        self._messages[:0] = messages

    def take(self, limit: int) -> list[paho.MQTTMessage]:
        """Up to `limit` messages, after reading what the socket already holds (at most READ_AHEAD packets)."""
        messages = self._messages
        for _ in range(READ_AHEAD):
            if len(messages) >= limit:
                break
            before = len(messages)
            try:
                rc = self._mqtt.loop_read()
            except Exception:  # aiomqtt's own reader meets the same error on its next pass and disconnects
                break
            if rc != paho.MQTT_ERR_SUCCESS or len(messages) == before:
                break  # an error (paho has already handled the disconnect) or nothing complete was waiting
        taken = messages[:limit]
        del messages[:limit]
        return taken


class _JoinedBatches:
    """Consecutive RTLS batches of one gateway, handed to the callback as one reading.

    The rules and the batcher cost per call as well as per position: in-process, batches of 100
    cost the agent 11.1-11.6 µs a position one by one and 6.2-7.7 µs joined 20 at a time
    (bench/edge_pipeline.py measures the whole agent). A batch joins the run only when it is its
    message's only reading, comes from the same gateway with the same clock verdict, and names no
    tag twice nor one the run already holds: every tag is then once in the joined reading, which
    keeps the rules and the batcher on their whole-array paths and gives the same transitions of
    each alert, the same points and the same rule state as the batches one by one
    (tests/edge/test_ingest_runs.py). Alerts of different rules within one run may come in another
    interleaving: the location rule sees the whole run before the tags' battery levels are checked.
    """

    __slots__ = ("_count", "_readings", "_tags")

    def __init__(self) -> None:
        self._readings: list[PositionsReading] = []
        self._tags: set[str] = set()
        self._count = 0

    def add(self, readings: list[Reading]) -> bool:
        """Join `readings` to the run if they are one batch that may join it; False otherwise."""
        if len(readings) != 1 or not isinstance(readings[0], PositionsReading):
            return False
        reading = readings[0]
        tags = columns_of(reading.positions).tag
        if self._readings:
            first = self._readings[0]
            if (
                reading.device != first.device
                or reading.clock_skew != first.clock_skew
                or self._count + len(tags) > RUN_POSITIONS
            ):
                return False
        new = set(tags)
        if len(new) != len(tags) or not self._tags.isdisjoint(new):
            return False
        self._readings.append(reading)
        self._tags |= new
        self._count += len(tags)
        return True

    def take(self) -> list[Reading]:
        """The run as one reading (the last batch's, with every position of the run), and start over."""
        readings, self._readings = self._readings, []
        self._tags = set()
        self._count = 0
        if len(readings) <= 1:
            return list(readings)
        columns = PositionColumns.concat([columns_of(r.positions) for r in readings])
        return [readings[-1].model_copy(update={"positions": Positions(columns=columns)})]


def _device_in_topic(topic: str) -> str:
    """The device id a default-shaped topic names (`site/{s}/{family}/{device}/…`), else the topic."""
    parts = topic.split("/")
    if len(parts) >= 5 and parts[0] == "site":
        return parts[3]
    return topic


class Ingest:
    """Reads the edge's device broker and turns messages into readings or dead letters."""

    def __init__(
        self,
        site: SiteConfig,
        edge: Edge,
        broker_url: str,
        *,
        on_readings: ReadingsCallback,
        deadletters: DeadLetterStore,
        health: DeviceHealthTracker | None = None,
        clock: Clock | None = None,
        discover_unknown: bool = True,
        client_id: str | None = None,
        before_ack: Callable[[], None] | None = None,
        alert_count: Callable[[], int] | None = None,
    ) -> None:
        self.site = site
        self.edge = edge
        self.broker = BrokerUrl.parse(broker_url)
        self.on_readings = on_readings
        self.before_ack = before_ack  # stores what the handled messages produced (the agent's pending events)
        self.alert_count = alert_count  # alert transitions stored so far: a change ends the batch early
        self.deadletters = deadletters
        self.health = health
        self.clock = clock or SystemClock()
        self.client_id = client_id or f"gw-{edge.id}-ingest"
        self.stats = IngestStats()
        topic_lane: dict[str, LaneName] = {}
        self._site_devices = {d.id for d in site.devices}
        served = sorted(site.edge_device_ids(edge))
        self._by_topic: dict[str, drivers.DeviceContext] = {}
        self._by_pattern: list[tuple[str, drivers.DeviceContext]] = []
        self._served_ids: set[str] = set()
        for device_id in served:
            device = site.device(device_id)
            if device is None:
                continue
            self._served_ids.add(device_id)
            ctx = drivers.DeviceContext.from_config(device)
            for topic in drivers.device_topics(site.site.id, device):
                topic_lane[topic] = _lane_of(device.family, topic, site.site.id, device)
                if "+" in topic or "#" in topic:
                    self._by_pattern.append((topic, ctx))
                else:
                    self._by_topic[topic] = ctx
        self.discover_unknown = discover_unknown
        self.lanes = self._lanes(site.site.id, topic_lane)
        self.subscriptions = sorted({t for lane in self.lanes for t in lane.subscriptions})
        self.stats.topics = len(self._by_topic) + len(self._by_pattern)
        self.stats.devices = len(self._served_ids)

    def _lanes(self, site_id: str, topic_lane: dict[str, LaneName]) -> list[_Lane]:
        """The two sessions and what each subscribes; a lane with nothing to read is left out.

        A served topic that one lane's discovery wildcards already cover is not subscribed again,
        and goes to that lane whatever its family (a topic override may put a device anywhere);
        any other topic is subscribed by its family's lane.
        """
        wildcards = _discovery(site_id) if self.discover_unknown else {"alarms": [], "bulk": []}
        chosen: dict[LaneName, set[str]] = {name: set(filters) for name, filters in wildcards.items()}
        for topic, lane in topic_lane.items():
            concrete = "+" not in topic and "#" not in topic
            covered = concrete and any(
                aiomqtt.Topic(topic).matches(f) for filters in wildcards.values() for f in filters
            )
            if not covered:
                chosen[lane].add(topic)
        alarms = _Lane("alarms", self.client_id, sorted(chosen["alarms"]))
        bulk = _Lane("bulk", f"{self.client_id}-bulk", sorted(chosen["bulk"]))
        # the alarms lane keeps the session id ingest had before the lanes: that session may still
        # hold the old `site/{s}/#` filter and bulk topics, which would deliver positions twice
        alarms.stale = sorted(({f"site/{site_id}/#"} | set(bulk.subscriptions)) - set(alarms.subscriptions))
        return [lane for lane in (alarms, bulk) if lane.subscriptions]

    # -- message handling (sync, also used directly by tests) ---------------------------------
    def context_for(self, topic: str) -> drivers.DeviceContext | None:
        ctx = self._by_topic.get(topic)
        if ctx is not None:
            return ctx
        for pattern, pctx in self._by_pattern:
            if aiomqtt.Topic(topic).matches(pattern):
                return pctx
        return None

    def handle(self, topic: str, payload: bytes) -> list[Reading]:
        """Parse one message; readings go to the callback, bad input to the dead letters."""
        readings = self._read(topic, payload)
        self._deliver(readings)
        return readings

    def _read(self, topic: str, payload: bytes) -> list[Reading]:
        """`handle` without the callback: readings (health updated), or [] after a dead letter."""
        now = self.clock.now()
        self.stats.messages += 1
        ctx = self.context_for(topic)
        if ctx is None:
            device_id = _device_in_topic(topic)
            if device_id in self._site_devices and device_id not in self._served_ids:
                self.stats.foreign += 1
                return []
            reason = UNKNOWN_TOPIC if device_id in self._served_ids else UNKNOWN_DEVICE
            if device_id in self._served_ids and self.health is not None:
                self.health.on_traffic(device_id, now)
            message = (
                f"device {device_id!r} is not in the site config"
                if reason == UNKNOWN_DEVICE
                else f"topic {topic!r} is not one of device {device_id!r}'s topics"
            )
            self._dead(device_id, topic, payload, reason, message, now)
            return []
        if self.health is not None:
            self.health.on_traffic(ctx.id, now)
        try:
            readings = drivers.parse(ctx, topic, payload, now)
        except drivers.DriverError as exc:
            self._dead(ctx.id, topic, payload, exc.reason, exc.message, now)
            return []
        except Exception as exc:  # a driver bug must not stop the edge; keep the bytes to reproduce it
            log.exception("driver for %s failed on a message on %s", ctx.id, topic)
            self._dead(ctx.id, topic, payload, DRIVER_BUG, f"{type(exc).__name__}: {exc}", now)
            return []
        if not readings:
            return []
        self.stats.readings += len(readings)
        if self.health is not None:
            for reading in readings:
                self.health.on_reading(reading, now)
        return readings

    def _deliver(self, readings: list[Reading]) -> None:
        if not readings:
            return
        try:
            self.on_readings(readings)
        except Exception:
            self.stats.callback_errors += 1
            log.exception("handling %d reading(s) from %s failed", len(readings), readings[0].device)

    def _dead(self, device: str, topic: str, payload: bytes, reason: str, message: str, now: Any) -> None:
        self.stats.dead_letters += 1
        first = self.deadletters.add(
            device=device, topic=topic, payload=payload, reason=reason, message=message, ts=now
        )
        if self.health is not None:
            self.health.on_dead_letter(device)
        if first:
            if reason == UNKNOWN_DEVICE:
                log.warning(
                    "device %r publishes on %s but is not in the site config; its messages are dead letters "
                    "(reported once)",
                    device,
                    topic,
                )
            else:
                log.warning("dead letter from %s on %s: %s: %s (first of its kind)", device, topic, reason, message)

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Read the broker for ever, one session per lane; reconnect with backoff; return only when cancelled."""
        if not self.lanes:
            log.warning("edge %s serves no device topics: ingest has nothing to read", self.edge.id)
            await asyncio.Event().wait()
        await asyncio.gather(*(self._run_lane(lane) for lane in self.lanes))

    def _lane_state(self) -> None:
        self.stats.connected = all(lane.connected for lane in self.lanes)
        self.stats.reconnects = sum(lane.reconnects for lane in self.lanes)
        errors = [f"{lane.name} lane: {lane.last_error}" for lane in self.lanes if lane.last_error]
        self.stats.last_error = "; ".join(errors) or None

    async def _run_lane(self, lane: _Lane) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            client = async_client(self.broker, lane.client_id, persistent=True, protocol=DEVICE_PROTOCOL)
            mqtt = client._client  # the paho client under aiomqtt
            # paho would PUBACK a QoS 1 message as soon as it arrives; a crash before the readings
            # reach the outbox would then lose it for good (the broker counts it delivered). We ack
            # only after handle() has run the rules and written the outbox, and `before_ack` has stored
            # the device events still waiting in the batcher (group commit, see _commit).
            mqtt.manual_ack_set(True)
            inbox = _Inbox(mqtt)  # set before connecting: a resumed session delivers at once
            try:
                async with client:
                    await self._subscribe(client, lane)
                    lane.connected = True
                    lane.last_error = None
                    self._lane_state()
                    backoff = BACKOFF_MIN_S
                    # `client.messages` yields one wake-up per burst and raises MqttError when the
                    # connection drops; the messages themselves are in `inbox`
                    async for _wake in client.messages:
                        while batch := inbox.take(ACK_BATCH):
                            handled = self._handle_for_a_while(batch)
                            if handled < len(batch):
                                inbox.put_back(batch[handled:])
                            self._commit(mqtt, batch[:handled])
                            await asyncio.sleep(0)  # let the other lane, the uplink and the ticker run
            except aiomqtt.MqttError as exc:
                was_connected = lane.connected
                lane.connected = False
                lane.reconnects += 1
                lane.last_error = describe_connect_error(exc, self.broker, f"edge {self.edge.id!r}")
                self._lane_state()
                log.warning(
                    "device broker %s (%s lane): %s; retrying in %.1f s",
                    "lost" if was_connected else "unavailable",
                    lane.name,
                    lane.last_error,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            finally:
                lane.connected = False
                self._lane_state()

    def _handle_for_a_while(self, batch: list[paho.MQTTMessage]) -> int:
        """Handle messages of `batch` in order for up to HOLD_LOOP_S, or until one raises an alert
        (`alert_count` moved); at least one. Returns how many.

        While ingest runs, nothing else on the event loop does: an alert raised by the first message
        of a batch of 200 RTLS batches would wait for the other 199 before the uplink could send it
        (bench/chain.py measured p50 263 ms at 3,000 msg/s that way). Batches stay large otherwise:
        each ends with a commit, and smaller ones cost more throughput than they saved latency.
        Consecutive RTLS batches reach the callback joined (`_JoinedBatches`); their alerts are
        stored when the run is handed over, before this returns.
        """
        deadline = time.monotonic() + HOLD_LOOP_S
        count = self.alert_count
        alerts = count() if count is not None else 0
        run = _JoinedBatches()
        handled = len(batch)
        for n, message in enumerate(batch, 1):
            readings = self._read(_topic_of(message), _payload_bytes(message.payload))
            if readings and not run.add(readings):
                self._deliver(run.take())  # what came before goes first
                if not run.add(readings):
                    self._deliver(readings)
            if time.monotonic() >= deadline or (count is not None and count() != alerts):
                handled = n  # an alert is stored: let the uplink send it before the rest of the batch
                break
        self._deliver(run.take())
        return handled

    def _commit(self, mqtt: paho.Client, handled: list[paho.MQTTMessage]) -> None:
        """Store the pending device events (one outbox write for all), then acknowledge the messages."""
        if self.before_ack is not None:
            try:
                self.before_ack()
            except Exception:
                # not stored: leave them unacknowledged; the broker redelivers them after a reconnect
                log.exception("storing device events failed; %d message(s) stay unacknowledged", len(handled))
                return
        for message in handled:
            mqtt.ack(message.mid, message.qos)

    async def _subscribe(self, client: aiomqtt.Client, lane: _Lane) -> None:
        log.info("connected to device broker %s as %s (%s lane)", self.broker.redacted(), lane.client_id, lane.name)
        if lane.stale:
            await client.unsubscribe(lane.stale)
        topics = lane.subscriptions
        for start in range(0, len(topics), SUBSCRIBE_CHUNK):
            chunk = [(t, 1) for t in topics[start : start + SUBSCRIBE_CHUNK]]  # QoS 1, under MQTT 3.1.1 and 5
            await client.subscribe(chunk)
        log.info(
            "%s lane: subscribed %d filters%s",
            lane.name,
            len(topics),
            " (family wildcards: devices not in the config are seen too)" if self.discover_unknown else "",
        )
