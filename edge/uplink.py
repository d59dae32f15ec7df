"""Drain the outbox to the uplink broker (QoS 1), send heartbeats and receive central's commands.

An outbox item is acknowledged only after the broker's PUBACK for it: aiomqtt's `publish` at
QoS 1 returns when paho's on_publish fired. Up to `window` publishes are in flight at once. When
the connection drops, in-flight publishes are abandoned and their items are published again on
the next connection: duplicates are possible (central dedups by event_id), losses are not.

The broker's PUBACK is not the end for alerts, events, device reports, snapshots and command
results: once central has shown it confirms (`cmd/confirm`, docs/protocol.md), the outbox keeps
them until central says it committed them, and once a second the drain loop sends again what
looks lost (`Outbox.requeue_lost`): what a broker crash between its PUBACK and its next autosave
would otherwise lose for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
from pydantic import ValidationError

from edge.outbox import Outbox, OutboxItem
from gridwatch.config.broker import BrokerUrl
from gridwatch.contract import CONFIRM_CMD, ConfirmCmd, Heartbeat, HeartbeatWill, UplinkKind, uplink_topic
from gridwatch.mqtt import async_client, describe_connect_error

__all__ = ["Uplink"]

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0
POLL_S = 0.5
PUBLISH_TIMEOUT_S = 30.0
REQUEUE_EVERY_S = 1.0
CONFIRM_GRACE_S = 10.0  # an overtaken item may be in another ingest worker's backlog for this long
CONFIRM_PROBE_S = 15.0  # the newest unconfirmed item is sent again after this long (doubling)

CommandHandler = Callable[[str, dict[str, Any]], Awaitable[None]]


class _PublishFailed(Exception):
    """A QoS 1 publish did not complete: the connection is presumed broken."""


class Uplink:
    """One edge's connection to the uplink broker; `run()` forever, `notify()` after each put."""

    def __init__(
        self,
        url: str,
        site: str,
        edge: str,
        outbox: Outbox,
        *,
        heartbeat: Callable[[], Heartbeat],
        on_command: CommandHandler | None = None,
        window: int = 200,
        heartbeat_s: float = 5.0,
        confirm_grace_s: float = CONFIRM_GRACE_S,
        confirm_probe_s: float = CONFIRM_PROBE_S,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.url = BrokerUrl.parse(url)
        self.site = site
        self.edge = edge
        self.outbox = outbox
        self.heartbeat = heartbeat
        self.on_command = on_command
        self.window = window
        self.heartbeat_s = heartbeat_s
        self.confirm_grace_s = confirm_grace_s
        self.confirm_probe_s = confirm_probe_s
        self.confirms_received = 0
        self.identifier = f"gridwatch-edge-{site}-{edge}"
        self.connected = False
        self.published = 0
        self.last_error: str | None = None
        self.reconnects = 0
        self.commands = 0
        self.bad_commands = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    # -- public ---------------------------------------------------------------------------
    def topic(self, suffix: str, *rest: str) -> str:
        """The full uplink topic of an outbox item's `topic_suffix` (e.g. "alerts", "snapshots/<sha>")."""
        return uplink_topic(self.site, self.edge, suffix, *rest)

    def notify(self) -> None:
        """Wake the drain loop now (new items were put); safe to call from any thread."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wake.set)

    async def run(self) -> None:
        """Connect, drain, heartbeat and listen forever; broker errors are logged and retried with backoff."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        delay = BACKOFF_START_S
        first = True
        while True:
            if not first:
                self.reconnects += 1
            first = False
            client = self._client()
            try:
                async with client:
                    self.connected = True
                    self.last_error = None
                    delay = BACKOFF_START_S
                    log.info("uplink connected to %s as %s", self.url.redacted(), self.identifier)
                    try:
                        await self._session(client)
                    except asyncio.CancelledError:
                        await self._say_goodbye(client)
                        raise
            except aiomqtt.MqttError as exc:
                self.last_error = describe_connect_error(exc, self.url, f"edge {self.edge!r}")
                log.warning("uplink: %s; retrying in about %.1f s", self.last_error, delay)
            except _PublishFailed as exc:
                self.last_error = f"publish to {self.url.redacted()} failed: {exc}"
                log.warning("uplink: %s; reconnecting", self.last_error)
            except OSError as exc:
                self.last_error = describe_connect_error(exc, self.url, f"edge {self.edge!r}")
                log.warning("uplink: %s; retrying in about %.1f s", self.last_error, delay)
            finally:
                self.connected = False
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _say_goodbye(self, client: aiomqtt.Client) -> None:
        """A clean stop disconnects normally, so the broker keeps the will: say offline ourselves.

        Central then raises edge.offline at once instead of after its heartbeat timeout.
        """
        body = HeartbeatWill(state="offline").model_dump_json().encode()
        with contextlib.suppress(aiomqtt.MqttError, OSError, TimeoutError):
            await asyncio.wait_for(client.publish(self.topic(UplinkKind.HEARTBEAT), body, qos=1), timeout=2.0)
            log.info("uplink: told central this edge is going offline")

    # -- one connection -------------------------------------------------------------------
    def _client(self) -> aiomqtt.Client:
        will = aiomqtt.Will(
            self.topic(UplinkKind.HEARTBEAT),
            HeartbeatWill(state="offline").model_dump_json().encode(),
            qos=1,
        )
        client = async_client(self.url, self.identifier, persistent=True, will=will, max_inflight=self.window)
        # aiomqtt warns on every publish beyond 10 pending; `window` pending publishes are our design
        client.pending_calls_threshold = self.window + 10
        return client

    async def _session(self, client: aiomqtt.Client) -> None:
        """Run the three loops of one connection until one of them fails."""
        await client.subscribe(self.topic(UplinkKind.CMD, "+"), qos=1)
        tasks = [
            asyncio.create_task(self._drain(client), name="uplink-drain"),
            asyncio.create_task(self._heartbeats(client), name="uplink-heartbeat"),
            asyncio.create_task(self._commands(client), name="uplink-commands"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise the failure that ended the session
            raise aiomqtt.MqttError("uplink session ended")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Keep up to `window` outbox items in flight; ack each after its PUBACK."""
        assert self._wake is not None
        wake = self._wake
        inflight: dict[int, asyncio.Task[None]] = {}
        done_ids: list[int] = []
        failure: list[BaseException] = []

        async def publish(item: OutboxItem) -> None:
            try:
                await client.publish(self.topic(item.topic_suffix), item.payload, qos=1, timeout=PUBLISH_TIMEOUT_S)
            except Exception as exc:
                failure.append(exc)
            else:
                done_ids.append(item.id)
                self.published += 1
            wake.set()

        next_requeue = 0.0
        loop = asyncio.get_running_loop()
        try:
            while True:
                if self.outbox.confirms and loop.time() >= next_requeue:
                    next_requeue = loop.time() + REQUEUE_EVERY_S
                    await self._requeue_lost()
                if failure:
                    raise _PublishFailed(str(failure[0]) or type(failure[0]).__name__)
                if done_ids:
                    acked, done_ids[:] = list(done_ids), []
                    await asyncio.to_thread(self.outbox.ack, acked)
                    for item_id in acked:
                        inflight.pop(item_id, None)
                free = self.window - len(inflight)
                items: list[OutboxItem] = []
                if free > 0:
                    items = await asyncio.to_thread(self.outbox.peek, free, set(inflight))
                    for item in items:
                        inflight[item.id] = asyncio.create_task(publish(item))
                if done_ids or failure:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), POLL_S)
                wake.clear()
        finally:
            for task in inflight.values():
                task.cancel()
            await asyncio.gather(*inflight.values(), return_exceptions=True)
            if done_ids:  # PUBACKed before the connection went: never send them again
                self.outbox.ack(done_ids)

    async def _requeue_lost(self) -> None:
        requeued = await asyncio.to_thread(
            self.outbox.requeue_lost, grace_s=self.confirm_grace_s, probe_s=self.confirm_probe_s
        )
        if requeued.overtaken:
            log.warning(
                "uplink: %d item(s) acknowledged by the broker were never confirmed by central, though later "
                "ones were: lost between the broker and central (a broker crash?); sending them again",
                requeued.overtaken,
            )
        if requeued.probed:
            log.info("uplink: the newest unconfirmed item waited too long; sent again to ask central")

    async def _confirm(self, body: dict[str, Any]) -> None:
        try:
            confirm = ConfirmCmd.model_validate(body)
        except ValidationError as exc:
            self.bad_commands += 1
            log.warning("uplink: ignoring a bad confirmation from central: %s", exc.errors()[0]["msg"])
            return
        self.confirms_received += 1
        await asyncio.to_thread(self.outbox.confirm, confirm.keys())

    async def _heartbeats(self, client: aiomqtt.Client) -> None:
        topic = self.topic(UplinkKind.HEARTBEAT)
        while True:
            try:
                body = self.heartbeat().model_dump_json().encode()
            except Exception:
                log.exception("uplink: the heartbeat callback failed; skipping this heartbeat")
            else:
                await client.publish(topic, body, qos=0)
            await asyncio.sleep(self.heartbeat_s)

    async def _commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            name = message.topic.value.rsplit("/", 1)[-1]
            payload = message.payload
            try:
                body = json.loads(payload if isinstance(payload, bytes | bytearray | str) else b"")
                if not isinstance(body, dict):
                    raise ValueError("the body is not a JSON object")
            except ValueError as exc:
                self.bad_commands += 1
                log.warning("uplink: ignoring command %r with a bad body: %s", name, exc)
                continue
            if name == CONFIRM_CMD:  # handled here: it is about the outbox, and answered by nothing
                await self._confirm(body)
                continue
            self.commands += 1
            if self.on_command is None:
                log.info("uplink: no handler for command %r; ignored", name)
                continue
            try:
                await self.on_command(name, body)
            except Exception:
                log.exception("uplink: the handler of command %r failed", name)
