"""The uplink subscriber: parse every edge message, hand it to the service, then acknowledge it.

Delivery guarantee: the client turns paho's automatic PUBACK off (`manual_ack`), handles messages
one at a time in arrival order and acknowledges a QoS 1 message only after the service has
committed it (and the time-series points are queued). The session is persistent
(clean_start=False, stable client id), so a message that was not acknowledged when central
stopped or lost the broker is delivered again; the service drops repeats by `event_id` (a
UNIQUE/primary key in the database, so any number of workers may race on the same event).

Three modes (docs/scale-out.md):

- ``direct`` (role "all"): one persistent session `{mqtt_identifier}` on `gridwatch/v1/{site}/+/+`
  and `…/+/snapshots/+`; it also answers the API's waiting commands and publishes commands.
- ``shared`` (role "ingest", or "all" with GRIDWATCH_INGEST_SHARED=1): the same topics through the
  MQTT 5 shared subscription `$share/gridwatch-central-{site}/…`, so the broker splits the uplink
  between every worker of the site. Client id `{mqtt_identifier}-ingest-{worker}`; with a worker id
  (GRIDWATCH_INGEST_WORKER / --worker) the session is persistent, without one the client id is
  unique per process and the session is clean (Mosquitto keeps queueing a shared group's share for
  an offline persistent member, so a random id must not leave a session behind).
- ``commands`` (role "api", and next to ``shared`` in role "all"): a plain, non-shared, clean
  session on `gridwatch/v1/{site}/+/cmd_result` that completes the requests this process waits for
  and publishes its commands. cmd_results are stored (idempotently) by every listener that gets
  them, before a waiting request is answered.

Lanes (``direct`` and ``shared``): the central app reads the uplink in two sessions, so that an
alarm never waits behind telemetry, e.g. behind the backlog a broker queued while central was down.
The *alarms* lane (`{identifier}`, the session id ingest had before the lanes) subscribes to
alerts, events, device reports, heartbeats and command results by kind; the *bulk* lane
(`{identifier}-bulk`) to everything (`…/+/+` and snapshots) and acknowledges at once, unread, the
kinds the alarms lane handles, so a kind no lane names (an edge bug) is still seen and counted as
malformed. The alarms lane drops its old `…/+/+` and snapshot filters when it connects: a session
left by a version without lanes would otherwise receive telemetry twice. ``lane="all"`` (the
default) is the single session of before.

Confirmations (``direct`` and ``shared``): what this process has committed — or recognised as a
repeat of something committed — is confirmed to its edge on `…/{edge}/cmd/confirm`, batched every
`CONFIRM_EVERY_S` (docs/protocol.md "Confirmations"). The edge keeps alerts, events, device
reports, snapshots and command results until then, so a broker that loses messages after its
PUBACK (a crash before its autosave, a full queue) costs a resend, not an alarm. Nothing rejected
is confirmed, nor anything the database would not take: the edge keeps those and sends them again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import socket
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import aiomqtt
from pydantic import ValidationError

from central.commands import Commands
from central.metrics import Metrics
from central.service import CentralService
from central.settings import Settings
from central.tsdb import TimeSeriesStore, TsPoint, point_from_alert, points_from_devices, points_from_telemetry
from gridwatch.config.broker import BrokerUrl
from gridwatch.contract.uplink import (
    CONFIRM_CMD,
    AlertTransition,
    CmdResult,
    ConfirmCmd,
    DevicesBody,
    EventsBody,
    Heartbeat,
    HeartbeatWill,
    TelemetryBody,
    UplinkKind,
    parse_uplink,
    split_uplink_topic,
    uplink_topic,
)
from gridwatch.mqtt import async_client, describe_connect_error

log = logging.getLogger(__name__)

Mode = Literal["direct", "shared", "commands"]
Lane = Literal["all", "alarms", "bulk"]
ALARM_KINDS = (UplinkKind.ALERTS, UplinkKind.EVENTS, UplinkKind.DEVICES, UplinkKind.HEARTBEAT, UplinkKind.CMD_RESULT)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_RETRIES = 3  # transient failures (a locked database) are retried before the message is given up
CONFIRM_EVERY_S = 0.05  # confirmations are batched per edge for this long
_CONFIRM_MAX = 5_000  # ids per confirmation message (ConfirmCmd allows 10,000 per kind)


class Malformed(ValueError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Ingest:
    """Owns one uplink broker connection: subscribes, processes, acknowledges, reconnects with backoff."""

    def __init__(
        self,
        settings: Settings,
        service: CentralService,
        tsdb: TimeSeriesStore | None,
        commands: Commands,
        metrics: Metrics,
        *,
        mode: Mode | None = None,
        full: bool = True,
        primary: bool = True,
        lane: Lane = "all",
    ) -> None:
        self.settings = settings
        self.site = settings.site
        self.service = service
        self.tsdb = tsdb
        self.commands = commands
        self.metrics = metrics
        if mode is None:  # the older switch: full=False is the API's cmd_result listener
            mode = ("shared" if settings.shared_ingest else "direct") if full else "commands"
        self.mode: Mode = mode
        self.full = mode != "commands"
        if lane != "all" and not self.full:
            raise ValueError("only ingest (direct or shared) has lanes")
        self.lane: Lane = lane
        # the process's main connection: it drives broker_connected and counts rejected messages
        # (a secondary cmd_result listener would count them a second time)
        self.primary = primary
        self.connected = False
        self.identifier = self._identifier()
        self._rejected_edges: set[tuple[str, str]] = set()  # (edge, reason) already logged
        # edge → kind → ids committed and not yet confirmed; only filled while a connection can send them
        self._to_confirm: dict[str, dict[str, list[str]]] = {}
        self._confirming = False

    def _identifier(self) -> str:
        suffix = "-bulk" if self.lane == "bulk" else ""
        base = self.settings.mqtt_identifier
        if self.mode == "direct":
            return base + suffix
        if self.mode == "commands":
            return f"{base}-api-{uuid.uuid4().hex[:8]}"
        if self.settings.ingest_worker:
            return f"{base}-ingest-{self.settings.ingest_worker}{suffix}"
        host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:24]
        return f"{base}-ingest-{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}{suffix}"

    @property
    def persistent(self) -> bool:
        return self.mode == "direct" or (self.mode == "shared" and bool(self.settings.ingest_worker))

    @property
    def publishes_commands(self) -> bool:
        """Whether this connection sends the API's commands and completes their waits."""
        return self.mode != "shared" and self.lane != "bulk"

    def _shared(self, topics: list[str]) -> list[str]:
        if self.mode == "shared":
            return [f"$share/{self.settings.share_group}/{t}" for t in topics]
        return topics

    def _everything(self) -> list[str]:
        root = f"gridwatch/v1/{self.site.site.id}"
        return self._shared([f"{root}/+/+", f"{root}/+/{UplinkKind.SNAPSHOTS}/+"])

    def topics(self) -> list[str]:
        root = f"gridwatch/v1/{self.site.site.id}"
        if self.mode == "commands":
            return [f"{root}/+/{UplinkKind.CMD_RESULT}"]
        if self.lane == "alarms":
            return self._shared([f"{root}/+/{kind}" for kind in ALARM_KINDS])
        return self._everything()

    def stale_topics(self) -> list[str]:
        """Filters a session of this id may hold from a version without lanes: dropped on connect."""
        return self._everything() if self.lane == "alarms" else []

    def _other_lanes(self, topic: str) -> bool:
        """In the bulk lane: a message of a kind the alarms lane handles (acknowledged unread)."""
        if self.lane != "bulk":
            return False
        parts = split_uplink_topic(topic)
        return parts is not None and not parts[3] and parts[0] == self.site.site.id and parts[2] in ALARM_KINDS

    def _client(self) -> aiomqtt.Client:
        client = async_client(self.settings.uplink_broker, self.identifier, persistent=self.persistent)
        # paho would PUBACK as soon as the message is queued; we ack after processing (see module doc).
        client._client.manual_ack_set(True)
        return client

    async def run(self) -> None:
        """Run until cancelled; never raises on broker or message trouble."""
        url = BrokerUrl.parse(self.settings.uplink_broker)
        backoff = 1.0
        while True:
            client = self._client()
            try:
                async with client:
                    if self.stale_topics():
                        await client.unsubscribe(self.stale_topics())
                    for topic in self.topics():
                        await client.subscribe(topic, qos=1)
                    self._set_connected(True, client)
                    log.info(
                        "ingest (%s%s, client id %s%s) connected to %s, subscribed to %s",
                        self.mode,
                        "" if self.lane == "all" else f", {self.lane} lane",
                        self.identifier,
                        ", persistent session" if self.persistent else "",
                        url.redacted(),
                        ", ".join(self.topics()),
                    )
                    backoff = 1.0
                    confirmer = asyncio.create_task(self._confirm_loop(client), name="ingest-confirm")
                    self._confirming = self.full
                    try:
                        async for message in client.messages:
                            topic = message.topic.value
                            if not self._other_lanes(topic):
                                payload = message.payload
                                data = payload if isinstance(payload, bytes) else str(payload or "").encode()
                                await self.process(topic, data)
                            client._client.ack(message.mid, message.qos)
                    finally:
                        confirmer.cancel()
                        await asyncio.gather(confirmer, return_exceptions=True)
            except aiomqtt.MqttError as exc:
                log.warning("%s; retrying in %.0f s", describe_connect_error(exc, url, "central"), backoff)
            finally:
                # unsent confirmations are dropped: the edges send those items again and get them confirmed then
                self._confirming = False
                self._to_confirm.clear()
                self._set_connected(False, None)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    def _set_connected(self, up: bool, client: aiomqtt.Client | None) -> None:
        self.connected = up
        if self.primary and self.lane != "bulk":
            self.metrics.broker_connected.set(1 if up else 0)
        if not self.publishes_commands:
            return
        if client is None:
            self.commands.attach(None)
            return

        async def publish(topic: str, payload: bytes) -> None:
            await client.publish(topic, payload, qos=1)

        self.commands.attach(publish)

    async def process(self, topic: str, payload: bytes) -> None:
        """Handle one uplink message; malformed input is counted and logged, never raised."""
        kind = "unknown"
        try:
            edge, kind, body = self._parse(topic, payload)
        except Malformed as exc:
            self._reject(topic, payload, exc)
            return
        for attempt in range(1, _RETRIES + 1):
            try:
                await self._dispatch(edge, kind, body)
                if self.primary:
                    self.metrics.ingested.labels(kind).inc()
                if self._confirming:
                    self._note_committed(edge, kind, body)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if attempt == _RETRIES:
                    self.metrics.ingest_errors.labels(kind).inc()
                    log.exception(
                        "giving up on uplink %s message from edge '%s' after %d attempts", kind, edge, attempt
                    )
                    return
                await asyncio.sleep(0.2 * attempt)

    def _note_committed(self, edge: str, kind: str, body: Any) -> None:
        """Remember to confirm a committed (or repeated) message to its edge; see the module doc."""
        if kind == UplinkKind.SNAPSHOTS:
            key = body[0]
        elif isinstance(body, AlertTransition | EventsBody | DevicesBody):
            key = body.event_id
        elif isinstance(body, CmdResult):
            key = body.request_id
        else:  # telemetry and heartbeats are not confirmed
            return
        self._to_confirm.setdefault(edge, {}).setdefault(kind, []).append(key)

    async def _confirm_loop(self, client: aiomqtt.Client) -> None:
        """Every CONFIRM_EVERY_S, send each edge one `cmd/confirm` with what was committed meanwhile."""
        while True:
            await asyncio.sleep(CONFIRM_EVERY_S)
            if self._to_confirm:
                pending, self._to_confirm = self._to_confirm, {}
                for edge, by_kind in pending.items():
                    await self._send_confirm(client, edge, by_kind)

    async def _send_confirm(self, client: aiomqtt.Client, edge: str, by_kind: dict[str, list[str]]) -> None:
        topic = uplink_topic(self.site.site.id, edge, UplinkKind.CMD, CONFIRM_CMD)
        while any(by_kind.values()):
            part = {kind: ids[:_CONFIRM_MAX] for kind, ids in by_kind.items() if ids}
            by_kind = {kind: ids[_CONFIRM_MAX:] for kind, ids in by_kind.items()}
            body = ConfirmCmd.model_validate(part).model_dump_json(exclude_defaults=True).encode()
            try:
                await client.publish(topic, body, qos=1)
            except aiomqtt.MqttError as exc:
                # the edge resends what stays unconfirmed; its repeat is confirmed then
                log.warning("confirming %d item(s) to edge '%s' failed: %s", sum(map(len, part.values())), edge, exc)
                return
            self.metrics.confirmed.inc(sum(map(len, part.values())))

    def _reject(self, topic: str, payload: bytes, exc: Malformed) -> None:
        """Count every rejected message; log the first one per (edge, reason) as a warning, the rest at debug."""
        if not self.primary:
            return
        self.metrics.malformed.labels(exc.reason).inc()
        parts = split_uplink_topic(topic)
        edge = parts[1] if parts is not None else "?"
        key = (edge, exc.reason)
        if key in self._rejected_edges:
            log.debug("rejected uplink message on %s (%d bytes): %s: %s", topic, len(payload), exc.reason, exc)
            return
        self._rejected_edges.add(key)
        log.warning(
            "rejected uplink message on %s (%d bytes): %s: %s (further '%s' rejections from edge '%s' are only "
            "counted in gridwatch_central_ingest_malformed_total)",
            topic,
            len(payload),
            exc.reason,
            exc,
            exc.reason,
            edge,
        )

    def _parse(self, topic: str, payload: bytes) -> tuple[str, str, Any]:
        parts = split_uplink_topic(topic)
        if parts is None:
            raise Malformed("topic", "not an uplink topic")
        site, edge, kind, rest = parts
        if site != self.site.site.id:
            raise Malformed("foreign_site", f"site '{site}' is not this central's site '{self.site.site.id}'")
        if kind == UplinkKind.SNAPSHOTS:
            sha = rest[0] if len(rest) == 1 else ""
            if not _SHA256.match(sha):
                raise Malformed("snapshot_name", "snapshot topic does not end in a lowercase hex sha256")
            if hashlib.sha256(payload).hexdigest() != sha:
                raise Malformed("snapshot_hash", "snapshot bytes do not hash to the sha256 in the topic")
            return edge, kind, (sha, payload)
        if rest:
            raise Malformed("topic", f"unexpected topic levels after '{kind}'")
        try:
            body = parse_uplink(kind, payload)
        except KeyError:
            raise Malformed("unknown_kind", f"no uplink body is defined for '{kind}'") from None
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            reason = "not_json" if first["type"] == "json_invalid" else "schema"
            raise Malformed(reason, f"{where}: {first['msg']}" if where else first["msg"]) from None
        if isinstance(body, AlertTransition):
            if body.site != site:
                raise Malformed("site_mismatch", f"alert names site '{body.site}', topic says '{site}'")
            if body.edge != edge:
                raise Malformed("edge_mismatch", f"alert names edge '{body.edge}', topic says '{edge}'")
        return edge, kind, body

    async def _dispatch(self, edge: str, kind: str, body: Any) -> None:
        service = self.service
        if kind == UplinkKind.SNAPSHOTS:
            sha, jpeg = body
            if not await asyncio.to_thread(service.ingest_snapshot, edge, sha, jpeg):
                self.metrics.duplicates.labels(kind).inc()
        elif isinstance(body, CmdResult):
            # stored first (an idempotent upsert by request_id, so a result seen by two listeners is
            # harmless), then handed to a waiting request: whoever reads the headcount after the
            # roll-call answer must find the answer stored
            await asyncio.to_thread(service.ingest_cmd_result, edge, body)
            if self.publishes_commands:  # this process may be the one waiting for it
                self.commands.resolve(edge, body)
        elif isinstance(body, AlertTransition):
            if await asyncio.to_thread(service.ingest_alert, edge, body):
                self.metrics.alerts.labels(str(body.level)).inc()
                await self._write([point_from_alert(body)])
            else:
                self.metrics.duplicates.labels(kind).inc()
        elif isinstance(body, EventsBody):
            if not await asyncio.to_thread(service.ingest_events, edge, body):
                self.metrics.duplicates.labels(kind).inc()
        elif isinstance(body, DevicesBody):
            if await asyncio.to_thread(service.ingest_devices, edge, body):
                await self._write(points_from_devices(self.site.site.id, body))
            else:
                self.metrics.duplicates.labels(kind).inc()
        elif isinstance(body, TelemetryBody):
            await asyncio.to_thread(service.record_positions, edge, body)
            await self._write(points_from_telemetry(self.site.site.id, body))
        elif isinstance(body, Heartbeat | HeartbeatWill):
            await asyncio.to_thread(service.ingest_heartbeat, edge, body)

    async def _write(self, points: Sequence[TsPoint]) -> None:
        if not points or self.tsdb is None:
            return
        try:
            await self.tsdb.write(points)
        except Exception:  # the time-series store is best effort; the alert itself is already committed
            log.exception("time-series store rejected %d points", len(points))
