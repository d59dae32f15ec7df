"""The live stream across central processes, relayed through the uplink broker.

A console's SSE stream is served by whichever central process it connected to, but the changes
it must show are made anywhere: an ingest worker stores an edge's alert, a timer escalates it,
an operator on another API replica acknowledges it. Every central process therefore publishes
the stream events it produces on `gridwatch/central/v1/{site}/stream`, and every process that
serves consoles (roles `all` and `api`) re-broadcasts the events of the others to its own clients.

Like the stream itself this is best effort, never the record: the database is. Events go out
with QoS 1 while the broker is up; while it is not they wait in a bounded queue (the oldest are
dropped and counted), and a console that missed something re-reads the alert list when its
stream reconnects. Each message carries the id of the process that sent it; an MQTT 5 no-local
subscription keeps a process's own events from coming back, and the id check covers a broker
that ignores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from typing import Any

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from central.metrics import Metrics
from central.settings import Settings
from central.stream import Broadcaster
from gridwatch.config.broker import BrokerUrl
from gridwatch.mqtt import async_client, describe_connect_error

log = logging.getLogger(__name__)

TOPIC = "gridwatch/central/v1/{site}/stream"
BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


def relay_topic(site: str) -> str:
    return TOPIC.format(site=site)


class StreamRelay:
    """Sends this process's stream events to the broker and feeds the others' to its broadcaster."""

    def __init__(
        self,
        settings: Settings,
        broadcaster: Broadcaster,
        metrics: Metrics,
        *,
        receive: bool,
        queue_size: int = 10_000,
    ) -> None:
        self.settings = settings
        self.broadcaster = broadcaster
        self.metrics = metrics
        self.receive = receive
        self.origin = uuid.uuid4().hex
        self.topic = relay_topic(settings.site.site.id)
        self.connected = asyncio.Event()
        self._pending: deque[bytes] = deque(maxlen=queue_size)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- outgoing: called by the broadcaster from any thread --------------------------------------
    def send(self, event: str, text: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        payload = f'{{"origin":"{self.origin}","event":{json.dumps(event)},"data":{text}}}'.encode()
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown)
            loop.call_soon_threadsafe(self._enqueue, payload)

    def _enqueue(self, payload: bytes) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.metrics.relay_dropped.inc()  # the oldest gives way
        self._pending.append(payload)
        self._wake.set()

    # -- the connection ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, subscribe (if receiving), relay both ways; reconnect with backoff, forever."""
        self._loop = asyncio.get_running_loop()
        url = BrokerUrl.parse(self.settings.uplink_broker)
        identifier = f"{self.settings.mqtt_identifier}-stream-{self.origin[:12]}"
        attempt = 0
        while True:
            try:
                async with async_client(url, identifier, keepalive=10) as client:
                    if self.receive:
                        await client.subscribe(self.topic, options=SubscribeOptions(qos=1, noLocal=True))
                    self.connected.set()
                    attempt = 0
                    log.info("stream relay on %s (%s)", self.topic, "both ways" if self.receive else "sending")
                    sender = asyncio.create_task(self._send_loop(client), name="central-stream-relay-send")
                    try:
                        async for message in client.messages:
                            self._deliver(message.payload)
                    finally:
                        sender.cancel()
                        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                            await sender
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                attempt += 1
                log.warning(
                    "stream relay: %s; retrying in %.1f s",
                    describe_connect_error(exc, url, "central's stream relay"),
                    delay,
                )
                await asyncio.sleep(delay)

    async def _send_loop(self, client: aiomqtt.Client) -> None:
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            payload = self._pending[0]
            await client.publish(self.topic, payload, qos=1)
            self.metrics.relayed.labels("sent").inc()
            if self._pending and self._pending[0] is payload:
                self._pending.popleft()

    def _deliver(self, payload: Any) -> None:
        try:
            body = json.loads(payload)
            origin, event, data = body["origin"], body["event"], body["data"]
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("stream relay: ignored a message that is not a relayed event (%s)", exc)
            return
        if origin == self.origin or not isinstance(event, str):
            return
        self.metrics.relayed.labels("received").inc()
        self.broadcaster.publish(event, data, relay=False)
