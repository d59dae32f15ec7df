"""One MQTT connection per simulated device, each carrying that device's will.

A real detector, door controller or gateway holds its own connection to the device broker, says
`online` on its status topic (retained) when it connects and leaves a will of `offline` on the same
topic (contract §2). When it loses power or its cable is cut it cannot say goodbye: the broker
notices the dead connection and publishes the will, and that is how the edge hears of it.

The player's readings still travel over one shared publisher (`simulators.player.MqttPublisher`):
what matters about a device's own connection is its status and its will, and a few hundred idle
sessions cost the broker little, while a few hundred busy publishers would cost the player a lot.

- `up(device)`: connect (or reconnect) with the will set, then publish `online`, retained.
- `say_offline(device)`: the device reports `offline` itself and disconnects cleanly (no will).
- `crash(device)`: the connection dies without a DISCONNECT packet; the broker publishes the will.

Sessions reconnect on their own after a broker restart and repeat their current status.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from gridwatch.config import BrokerUrl
from gridwatch.mqtt import sync_client

log = logging.getLogger("gridwatch.sim")

KEEPALIVE_S = 10
"""A device that vanishes without closing its socket is declared dead after 1.5× this (MQTT keep-alive)."""


@dataclass(frozen=True)
class StatusTopic:
    topic: str
    online: bytes
    offline: bytes


class DeviceSessions:
    def __init__(self, url: str | BrokerUrl, prefix: str) -> None:
        self.url = BrokerUrl.parse(url) if isinstance(url, str) else url
        self.prefix = prefix
        self._clients: dict[str, paho.Client] = {}
        self._lock = threading.Lock()

    def __contains__(self, device: str) -> bool:
        with self._lock:
            return device in self._clients

    def up(self, device: str, status: StatusTopic) -> None:
        """Connect as `device` with its will set; `online` is published (retained) on every connect.

        A device that already has a session says `online` again on it (a keep-alive): tearing the
        session down would drop a connection that may still be opening, and the broker would
        publish its will.
        """
        with self._lock:
            live = self._clients.get(device)
        if live is not None:
            live.publish(status.topic, status.online, qos=1, retain=True)  # queued by paho until connected
            return
        client = sync_client(self.url, f"{self.prefix}-{device}", will=(status.topic, status.offline))

        def on_connect(c: paho.Client, _u: object, _f: object, rc: ReasonCode, _p: object = None) -> None:
            if rc.is_failure:
                log.warning("device %s: broker %s refused its session: %s", device, self.url.redacted(), rc)
                return
            c.publish(status.topic, status.online, qos=1, retain=True)

        client.on_connect = on_connect
        client.connect_async(self.url.host, self.url.port, keepalive=KEEPALIVE_S)
        client.loop_start()  # paho's own thread: connects, keeps alive and reconnects with backoff
        with self._lock:
            self._clients[device] = client

    def say_offline(self, device: str, status: StatusTopic) -> None:
        """The device reports `offline` itself, then disconnects cleanly (the broker drops its will)."""
        with self._lock:
            client = self._clients.pop(device, None)
        if client is None:
            return
        info = client.publish(status.topic, status.offline, qos=1, retain=True)
        with contextlib.suppress(RuntimeError, ValueError):  # not connected yet: the will says the same
            info.wait_for_publish(5)
        _goodbye([client])

    def crash(self, device: str) -> bool:
        """Kill the device's connection without a DISCONNECT packet; False if it had none."""
        with self._lock:
            client = self._clients.pop(device, None)
        if client is None:
            return False
        client.loop_stop()  # no more keep-alives, no reconnect
        sock = client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # the broker reads end-of-stream: a dead client, will sent
            sock.close()
        return True

    def close(self) -> None:
        """Disconnect every session cleanly: the devices stay `online` (retained), as at the end of a play."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        _goodbye(clients)


def _goodbye(clients: list[paho.Client], timeout: float = 5.0) -> None:
    """Send each a DISCONNECT and wait until it is on the wire, so the broker drops the will.

    Stopping paho's thread right after `disconnect()` may close the socket before the packet is
    written; the broker then sees a dead client and publishes the will (`offline`) — in a
    takeover, after the new session already said `online`.
    """
    gone: list[threading.Event] = []
    for client in clients:
        event = threading.Event()
        gone.append(event)
        if client.is_connected():
            client.on_disconnect = lambda *_args, e=event: e.set()
            client.disconnect()
        else:
            event.set()  # never connected (or already lost): nothing to say goodbye on
            client.disconnect()
    deadline = time.monotonic() + timeout
    for event in gone:
        event.wait(max(0.0, deadline - time.monotonic()))
    for client in clients:
        client.loop_stop()
