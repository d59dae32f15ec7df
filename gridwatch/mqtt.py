"""One way to open an MQTT connection from a broker URL, shared by edge, central and simulators."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridwatch.config.broker import BrokerUrl

# paho never sets TCP_NODELAY, which costs 9-17 ms per message at low rates (MEASURED.md).
NODELAY: tuple[tuple[int, int, int], ...] = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


def tls_context(url: BrokerUrl) -> ssl.SSLContext | None:
    """System trust store for mqtts://; `GRIDWATCH_MQTT_CAFILE` may name a private CA."""
    if not url.tls:
        return None
    import os

    cafile = os.environ.get("GRIDWATCH_MQTT_CAFILE") or None
    return ssl.create_default_context(cafile=cafile)


def async_client(
    url: BrokerUrl | str,
    identifier: str,
    *,
    persistent: bool = False,
    will: aiomqtt.Will | None = None,
    max_inflight: int = 200,
    max_queued_outgoing: int = 10_000,
    keepalive: int = 15,
    session_expiry_s: int = 7 * 24 * 3600,
    socket_options: Iterable[tuple[int, int, int]] = NODELAY,
    protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V5,
) -> aiomqtt.Client:
    """An aiomqtt client (MQTT 5 unless `protocol` says otherwise) for `url`.

    `persistent=True` asks the broker to keep the session (subscriptions and unacknowledged
    QoS 1 messages) across disconnects: for `session_expiry_s` on MQTT 5; on MQTT 3.1.1
    (clean session off) for the broker's `persistent_client_expiration`, which every broker
    config we ship sets to the same 7 days.
    The outgoing queue is bounded well under paho's 65,535 message-id limit (MEASURED.md).
    """
    broker = BrokerUrl.parse(url) if isinstance(url, str) else url
    properties = None
    v5 = protocol == aiomqtt.ProtocolVersion.V5
    if persistent and v5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = session_expiry_s
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password,
        identifier=identifier,
        protocol=protocol,
        # MQTT 5 names it clean start, 3.1.1 clean session (paho refuses the other one's flag)
        clean_start=not persistent if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
        clean_session=None if v5 else not persistent,
        properties=properties,
        will=will,
        keepalive=keepalive,
        max_inflight_messages=max_inflight,
        max_queued_outgoing_messages=max_queued_outgoing,
        tls_context=tls_context(broker),
        socket_options=list(socket_options),
        timeout=10,
    )


def sync_client(url: BrokerUrl | str, identifier: str, *, will: tuple[str, bytes] | None = None) -> paho.Client:
    """A connected-on-demand paho client (MQTT 5) for simulators and benchmarks; call `connect_url`."""
    broker = BrokerUrl.parse(url) if isinstance(url, str) else url
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=identifier, protocol=paho.MQTTv5)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    ctx = tls_context(broker)
    if ctx is not None:
        client.tls_set_context(ctx)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)

    def _nodelay(_client: paho.Client, _userdata: object, sock: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    client.on_socket_open = _nodelay
    client.max_queued_messages_set(50_000)
    return client


def describe_connect_error(exc: BaseException, url: BrokerUrl, who: str) -> str:
    """A log line an engineer can act on for a failed broker connection."""
    text = str(exc)
    if "Not authorized" in text or "Bad user name or password" in text or "135" in text or "134" in text:
        return f"broker {url.redacted()} refused the credentials of {who}: check the user and password in the URL"
    if "Connection refused" in text or "111" in text:
        return f"broker {url.redacted()} refused the connection: is it running and listening on port {url.port}?"
    return f"cannot reach broker {url.redacted()} as {who}: {text}"
