"""Device-broker ingest: one MQTT client, topic → device, drivers.parse, readings to a callback.

The edge subscribes QoS 1 to every topic of every device it serves. With `discover_unknown`
it also subscribes to `site/{site}/#` (instead of the served topics under it, so nothing
arrives twice) to see devices that publish but are not in the config: those become dead
letters with reason `unknown_device`, logged once per device id. Devices of the site that
another edge serves are ignored quietly. Bad bytes never stop the loop; a lost broker is
reconnected with backoff, and the persistent session keeps QoS 1 messages queued meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

import drivers
from gridwatch.clock import Clock, SystemClock
from gridwatch.config.broker import BrokerUrl
from gridwatch.config.models import Edge, SiteConfig
from gridwatch.contract import Reading
from gridwatch.mqtt import async_client, describe_connect_error

from .deadletter import DRIVER_BUG, UNKNOWN_DEVICE, DeadLetterStore
from .health import DeviceHealthTracker

log = logging.getLogger(__name__)

UNKNOWN_TOPIC = "unknown_topic"
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
SUBSCRIBE_CHUNK = 100
ACK_BATCH = 200  # at most this many messages are handled before their events are stored and they are acked

ReadingsCallback = Callable[[list[Reading]], None]


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
    ) -> None:
        self.site = site
        self.edge = edge
        self.broker = BrokerUrl.parse(broker_url)
        self.on_readings = on_readings
        self.before_ack = before_ack  # stores what the handled messages produced (the agent's pending events)
        self.deadletters = deadletters
        self.health = health
        self.clock = clock or SystemClock()
        self.client_id = client_id or f"gw-{edge.id}-ingest"
        self.stats = IngestStats()
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
                if "+" in topic or "#" in topic:
                    self._by_pattern.append((topic, ctx))
                else:
                    self._by_topic[topic] = ctx
        self.discovery = f"site/{site.site.id}/#" if discover_unknown else None
        self.subscriptions = self._subscriptions()
        self.stats.topics = len(self._by_topic) + len(self._by_pattern)
        self.stats.devices = len(self._served_ids)

    def _subscriptions(self) -> list[str]:
        topics = [*self._by_topic, *(p for p, _ in self._by_pattern)]
        if self.discovery is None:
            return sorted(set(topics))
        prefix = self.discovery[:-1]  # "site/{s}/": every topic under it arrives through the discovery filter
        outside = [t for t in topics if not t.startswith(prefix)]
        return sorted({self.discovery, *outside})

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
        try:
            self.on_readings(readings)
        except Exception:
            self.stats.callback_errors += 1
            log.exception("handling %d reading(s) from %s failed", len(readings), ctx.id)
        return readings

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
        """Read the broker for ever; reconnect with backoff; return only when cancelled."""
        backoff = BACKOFF_MIN_S
        while True:
            client = async_client(self.broker, self.client_id, persistent=True)
            # paho would PUBACK a QoS 1 message as soon as it arrives; a crash before the readings
            # reach the outbox would then lose it for good (the broker counts it delivered). We ack
            # only after handle() has run the rules and written the outbox, and `before_ack` has stored
            # the device events still waiting in the batcher (group commit, see _commit).
            client._client.manual_ack_set(True)
            try:
                async with client:
                    await self._subscribe(client)
                    self.stats.connected = True
                    self.stats.last_error = None
                    backoff = BACKOFF_MIN_S
                    unacked: list[aiomqtt.Message] = []
                    queued = client._queue  # aiomqtt's incoming queue, the one `client.messages` reads
                    async for message in client.messages:
                        # Messages already queued are taken right away until the next commit: the
                        # iterator would spend a task, a wait and a loop pass on each one.
                        while True:
                            self.handle(message.topic.value, _payload_bytes(message.payload))
                            unacked.append(message)
                            if len(client.messages) == 0 and len(unacked) < ACK_BATCH:
                                # one loop pass lets paho read what the socket already holds, so a
                                # commit (an fsync) covers all of it rather than a message or two
                                await asyncio.sleep(0)
                            if len(client.messages) == 0 or len(unacked) >= ACK_BATCH:
                                self._commit(client, unacked)
                                break
                            message = queued.get_nowait()
            except aiomqtt.MqttError as exc:
                was_connected = self.stats.connected
                self.stats.connected = False
                self.stats.reconnects += 1
                self.stats.last_error = describe_connect_error(exc, self.broker, f"edge {self.edge.id!r}")
                log.warning(
                    "device broker %s: %s; retrying in %.1f s",
                    "lost" if was_connected else "unavailable",
                    self.stats.last_error,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            finally:
                self.stats.connected = False

    def _commit(self, client: aiomqtt.Client, unacked: list[aiomqtt.Message]) -> None:
        """Store the pending device events (one outbox write for all), then acknowledge the messages."""
        if self.before_ack is not None:
            try:
                self.before_ack()
            except Exception:
                # not stored: leave them unacknowledged; the broker redelivers them after a reconnect
                log.exception("storing device events failed; %d message(s) stay unacknowledged", len(unacked))
                unacked.clear()
                return
        for message in unacked:
            client._client.ack(message.mid, message.qos)
        unacked.clear()

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        log.info("connected to device broker %s as %s", self.broker.redacted(), self.client_id)
        topics = self.subscriptions
        for start in range(0, len(topics), SUBSCRIBE_CHUNK):
            chunk = [(t, SubscribeOptions(qos=1)) for t in topics[start : start + SUBSCRIBE_CHUNK]]
            await client.subscribe(chunk)
        log.info(
            "subscribed %d topics for %d devices%s",
            self.stats.topics,
            self.stats.devices,
            f" (and {self.discovery} to spot unknown devices)" if self.discovery else "",
        )
