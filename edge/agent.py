"""The edge agent: wiring only. Ingest → rules → outbox → uplink, plus cameras, health and status.

Every alert transition is written to the durable outbox before anything else is done with
it (logging, counting, waking the uplink), so a crash right after `put` loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import sqlite3
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gridwatch import __version__
from gridwatch.clock import Clock, SystemClock
from gridwatch.config.models import Device, SiteConfig
from gridwatch.contract import (
    CMD_BODIES,
    AlertTransition,
    CmdResult,
    Family,
    Heartbeat,
    OutboxDepth,
    Reading,
    format_ts,
)

from .batching import Batcher
from .camera import CameraManager
from .deadletter import DeadLetterStore
from .health import DeviceHealthTracker
from .ingest import Ingest
from .outbox import HOT_MAX_ITEMS, Lane, Outbox
from .rules import RuleEngine
from .status import StatusServer
from .uplink import Uplink
from .vision_types import CameraObservation

log = logging.getLogger(__name__)

TICK_S = 0.25  # batch flush granularity; the rule engine ticks every RULE_TICK_S
RULE_TICK_S = 1.0
SAVE_EVERY_S = 30.0
RULES_STATE = "rules"  # key of the rule engine's state in the outbox database
OUTBOX_LOG_EVERY_S = 60.0
SNAPSHOT_MEMORY = 1000  # sha256s already queued, so one frame is sent once


class _Stop(Exception):
    """Raised inside the TaskGroup to end it on request."""


class EdgeAgent:
    """One edge box: `await run()` until `stop()`, SIGTERM or SIGINT."""

    def __init__(
        self,
        site: SiteConfig,
        edge_id: str,
        *,
        device_broker: str,
        uplink_broker: str,
        outbox_path: Path,
        status_bind: str | None,
        clock: Clock | None = None,
        config_hash: str = "",
        cameras: bool = True,
    ) -> None:
        self.site = site
        self.edge = site.edge(edge_id)
        self.clock: Clock = clock or SystemClock()
        self.config_hash = config_hash
        served = site.edge_device_ids(self.edge)
        self.devices: list[Device] = [d for d in site.devices if d.id in served]
        self.deadletters = DeadLetterStore()
        self.health = DeviceHealthTracker(self.devices)
        self.batcher = Batcher(site)
        self.outbox_path = Path(outbox_path)
        self.outbox = Outbox(self.outbox_path, max_bytes=int(self.edge.outbox_max_mb * 1024 * 1024))
        self._snapshots: OrderedDict[str, None] = OrderedDict()
        self._unstored: list[AlertTransition] = []  # alert transitions the outbox could not take yet
        self.unstored_dropped: dict[str, int] = {}  # non-alert items dropped on outbox write errors
        self.outbox_error: str | None = None
        camera_devices = [d for d in self.devices if d.family is Family.CAMERA and d.url]
        self.cameras: CameraManager | None = None
        if cameras and camera_devices:
            self.cameras = CameraManager(
                site, edge_id, camera_devices, on_observation=self._observation_from_thread, clock=self.clock
            )
        # The rule state lives in the outbox database and is written in the same transaction as
        # the alerts it raised: after a crash, a redelivered device message re-asserts the alert
        # it already raised (same alert_id) instead of opening a second one.
        self.rules = RuleEngine(site, edge_id, snapshotter=self._snapshot if self.cameras is not None else None)
        saved = self.outbox.get_state(RULES_STATE)
        legacy = self.outbox_path.with_name(self.outbox_path.stem + "-rules.json")  # before 0.1.0's outbox state
        if saved is not None:
            self.rules.restore(saved, f"{self.outbox_path}:{RULES_STATE}")
        elif legacy.exists():
            self.rules.restore(legacy.read_bytes(), str(legacy))
        self.ingest = Ingest(
            site,
            self.edge,
            device_broker,
            on_readings=self._on_readings,
            deadletters=self.deadletters,
            health=self.health,
            clock=self.clock,
            before_ack=self._flush_events,
            alert_count=lambda: self.alerts_sent,
        )
        self.uplink = Uplink(
            uplink_broker,
            site.site.id,
            edge_id,
            self.outbox,
            heartbeat=self.heartbeat,
            on_command=self._on_command,
        )
        self.status_server = StatusServer(status_bind, self.status) if status_bind else None
        self.alerts_sent = 0
        self.started_mono = self.clock.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._done: asyncio.Event | None = None
        self._closed = False

    # -- alerts first --------------------------------------------------------------------------
    def _emit(self, transitions: list[AlertTransition]) -> None:
        """Outbox first, then log and wake the uplink.

        If the outbox cannot be written (disk full, I/O error) the transitions are held in memory
        and retried every tick: the rule engine has already moved on, so dropping them here would
        lose the alert for good.
        """
        if not transitions:
            return
        for t in transitions:
            log.info("alert %s %s %s %s: %s", t.rule, t.level, t.state, t.subject.id, t.title)
        self._unstored.extend(transitions)
        self._store_held()

    def _store_held(self) -> None:
        if not self._unstored:
            return
        held = list(self._unstored)
        try:
            self.outbox.put_many(
                [(Lane.ALERTS, "alerts", t.model_dump_json().encode()) for t in held],
                state=(RULES_STATE, self.rules.state_bytes()),
            )
        except sqlite3.Error as exc:
            if self.outbox_error is None:
                log.error(
                    "OUTBOX WRITE FAILED (%s): %d alert transition(s) held in memory and retried every "
                    "second; free disk space at %s",
                    exc,
                    len(held),
                    self.outbox_path,
                )
            self.outbox_error = str(exc)
            return
        del self._unstored[: len(held)]
        if self.outbox_error is not None:
            log.warning("outbox writable again: %d held alert transition(s) stored", len(held))
            self.outbox_error = None
        self.alerts_sent += len(held)
        self.uplink.notify()

    def _save_rules(self) -> None:
        """Timers and commands change the rule state without an alert: save it now and then too."""
        try:
            self.outbox.set_state(RULES_STATE, self.rules.state_bytes())
        except (sqlite3.Error, OSError):
            log.exception("saving rule state failed")

    def _put(self, lane: Lane, items: list[tuple[Lane, str, bytes]]) -> None:
        """Write non-alert items; on a write failure count and drop them (they are not alerts)."""
        try:
            self.outbox.put_many(items)
        except sqlite3.Error as exc:
            self.unstored_dropped[lane.name.lower()] = self.unstored_dropped.get(lane.name.lower(), 0) + len(items)
            if self.outbox_error is None:
                log.error(
                    "OUTBOX WRITE FAILED (%s): %s dropped; free disk space at %s",
                    exc,
                    lane.name.lower(),
                    self.outbox_path,
                )
            self.outbox_error = str(exc)
            return
        self.uplink.notify()

    def _on_readings(self, readings: list[Reading]) -> None:
        now = self.clock.now()
        try:
            transitions = self.rules.on_readings(readings, now)
        except Exception:
            # a rule bug must not drop the events of these readings nor stop ingest
            log.exception("rule engine failed on %d reading(s) from %s", len(readings), readings[0].device)
            transitions = []
        self._emit(transitions)
        if self.batcher.add(readings):
            self._flush_batches()

    def _flush_batches(self) -> None:
        bodies = self.batcher.flush(self.clock.monotonic())
        if not bodies:
            return
        # one outbox transaction (one fsync) per lane, not one per body
        by_lane: dict[Lane, list[tuple[Lane, str, bytes]]] = {}
        for kind, body in bodies:
            lane = Lane.EVENTS if kind == "events" else Lane.TELEMETRY
            by_lane.setdefault(lane, []).append((lane, kind, body))
        for lane, items in by_lane.items():
            self._put(lane, items)

    def _flush_events(self) -> None:
        """Make the effects of handled messages durable: ingest acknowledges them only after this.

        Pending device events go to the outbox (alerts and the rule state are already there).
        """
        bodies = self.batcher.flush_events()
        if bodies:
            self._put(Lane.EVENTS, [(Lane.EVENTS, kind, body) for kind, body in bodies])
            self.uplink.notify()

    # -- cameras ---------------------------------------------------------------------------------
    def _observation_from_thread(self, camera_id: str, obs: CameraObservation) -> None:
        """Called from camera threads: hand the observation to the event loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._on_camera, camera_id, obs)

    def _on_camera(self, camera_id: str, obs: CameraObservation) -> None:
        try:
            transitions = self.rules.on_camera(camera_id, obs, self.clock.now())
        except Exception:
            log.exception("rule engine failed on an observation of camera %s", camera_id)
            return
        self._emit(transitions)

    def _snapshot(self, camera_id: str) -> str | None:
        """The snapshotter RuleEngine calls: queue the camera's latest JPEG once per sha256."""
        if self.cameras is None:
            return None
        jpeg = self.cameras.snapshot(camera_id)
        if not jpeg:
            return None
        sha = hashlib.sha256(jpeg).hexdigest()
        if sha not in self._snapshots:
            self._put(Lane.SNAPSHOTS, [(Lane.SNAPSHOTS, f"snapshots/{sha}", jpeg)])
            self._snapshots[sha] = None
            while len(self._snapshots) > SNAPSHOT_MEMORY:
                self._snapshots.popitem(last=False)
            self.uplink.notify()
        return sha

    # -- commands from central -------------------------------------------------------------------
    async def _on_command(self, name: str, body: dict[str, Any]) -> None:
        model = CMD_BODIES.get(name)
        request_id = body.get("request_id")
        if model is None:
            log.warning("central sent unknown command %r; refused", name)
            self._put_result(request_id, False, {"error": f"unknown command {name!r}"})
            return
        try:
            cmd = model.model_validate(body)
        except ValidationError as exc:
            log.warning("central sent a bad %r command: %s", name, exc.errors()[0]["msg"])
            self._put_result(request_id, False, {"error": f"bad {name} command: {exc.errors()[0]['msg']}"})
            return
        result, transitions = self.rules.on_command(name, cmd, self.clock.now())
        self._emit(transitions)
        self._save_rules()  # an arm override or a maintenance window must survive a restart
        self._put(Lane.CMD_RESULTS, [(Lane.CMD_RESULTS, "cmd_result", result.model_dump_json().encode())])
        self.uplink.notify()
        log.info("command %s %s: ok=%s", name, result.request_id, result.ok)

    def _put_result(self, request_id: object, ok: bool, result: dict[str, Any]) -> None:
        if not isinstance(request_id, str) or not 1 <= len(request_id) <= 64:
            return  # nobody to answer: central matches results by request_id
        body = CmdResult(request_id=request_id, ok=ok, result=result)
        self._put(Lane.CMD_RESULTS, [(Lane.CMD_RESULTS, "cmd_result", body.model_dump_json().encode())])
        self.uplink.notify()

    # -- periodic work ---------------------------------------------------------------------------
    def _tick_once(self, mono: float, last: dict[str, float]) -> None:
        now = self.clock.now()
        if mono - last["rules"] >= RULE_TICK_S:
            last["rules"] = mono
            self._store_held()
            try:
                self._emit(self.rules.on_tick(now))
            except Exception:
                log.exception("rule engine tick failed")
            devices = self.health.body_if_due(now)
            if devices is not None:
                self._put(Lane.DEVICES, [(Lane.DEVICES, "devices", devices.model_dump_json().encode())])
        if self.batcher.due(mono):
            self._flush_batches()
        try:
            self.outbox.spill_stale()  # telemetry the uplink has not taken within seconds goes to disk
        except sqlite3.Error as exc:
            if self.outbox_error is None:  # said once, as for every outbox write (status: outbox.write_error)
                log.error(
                    "OUTBOX WRITE FAILED (%s): telemetry waiting for the uplink stays in memory (at most %d "
                    "bodies, then new telemetry is dropped and counted); free disk space at %s",
                    exc,
                    HOT_MAX_ITEMS,
                    self.outbox_path,
                )
            self.outbox_error = str(exc)
        if mono - last["save"] >= SAVE_EVERY_S:
            last["save"] = mono
            self._save_rules()
        if mono - last["outbox_log"] >= OUTBOX_LOG_EVERY_S:
            last["outbox_log"] = mono
            depth = self.outbox.depth()
            waiting = sum(depth.values())
            if not self.uplink.connected:
                log.warning(
                    "uplink down: %s; outbox depth %d %s", self.uplink.last_error or "connecting", waiting, depth
                )
            elif waiting:
                log.info("outbox depth %d %s", waiting, depth)

    async def _ticker(self) -> None:
        mono = self.clock.monotonic()
        last = {"rules": mono - RULE_TICK_S, "save": mono, "outbox_log": mono}
        while True:
            self._tick_once(self.clock.monotonic(), last)
            await asyncio.sleep(TICK_S)

    # -- reports ---------------------------------------------------------------------------------
    def uptime_s(self) -> float:
        return max(0.0, self.clock.monotonic() - self.started_mono)

    def heartbeat(self) -> Heartbeat:
        depth = self.outbox.depth()
        return Heartbeat(
            ts=self.clock.now(),
            version=__version__,
            uptime_s=self.uptime_s(),
            config_hash=self.config_hash,
            outbox=OutboxDepth(
                alerts=depth.get("alerts", 0) + depth.get("cmd_results", 0),
                events=depth.get("events", 0) + depth.get("devices", 0) + depth.get("snapshots", 0),
                telemetry=depth.get("telemetry", 0),
            ),
        )

    def status(self) -> dict[str, Any]:
        """The /status JSON (also the source of /metrics)."""
        ingest = self.ingest.stats
        stats = self.batcher.stats
        active = self.rules.active_alerts()
        return {
            "site": self.site.site.id,
            "edge": self.edge.id,
            "version": __version__,
            "time": format_ts(self.clock.now()),
            "uptime_s": round(self.uptime_s(), 3),
            "config_hash": self.config_hash,
            "ingest": {
                "connected": ingest.connected,
                "broker": self.ingest.broker.redacted(),
                "messages": ingest.messages,
                "readings": ingest.readings,
                "dead_letters": ingest.dead_letters,
                "foreign": ingest.foreign,
                "reconnects": ingest.reconnects,
                "last_error": ingest.last_error,
                "topics": ingest.topics,
                "devices": ingest.devices,
            },
            "uplink": {
                "connected": self.uplink.connected,
                "broker": self.uplink.url.redacted(),
                "published": self.uplink.published,
                "reconnects": self.uplink.reconnects,
                "last_error": self.uplink.last_error,
            },
            "outbox": {
                "path": str(self.outbox_path),
                "depth": self.outbox.depth() if not self._closed else {},
                # sent, kept until central confirms it committed them (docs/protocol.md "Confirmations")
                "awaiting_confirmation": self.outbox.awaiting_confirmation() if not self._closed else {},
                "oldest_unconfirmed_s": self.outbox.oldest_unconfirmed_age() if not self._closed else None,
                "confirmations": self.outbox.confirms,
                "confirmed": self.outbox.confirmed,
                "resent_lost": self.outbox.requeued_overtaken,
                "resent_probes": self.outbox.requeued_probes,
                "telemetry_dropped": self.outbox.telemetry_dropped,
                # telemetry bodies the uplink did not take within seconds, written to disk (edge/outbox.py)
                "telemetry_spilled": self.outbox.spilled,
                "write_error": self.outbox_error,
                "alerts_held_in_memory": len(self._unstored),
                "dropped_on_write_error": dict(self.unstored_dropped),
            },
            "alerts": {
                "active": len(active),
                "active_by_rule": dict(Counter(a.rule for a in active)),
                "sent": self.alerts_sent,
            },
            "batching": {
                "events": stats.events,
                "points": stats.points,
                "downsampled": stats.downsampled,
                "shed": stats.shed,
                "bodies": stats.bodies,
            },
            "devices": self.health.summary(),
            "dead_letters": self.deadletters.summary(50),
            "cameras": self.cameras.stats() if self.cameras is not None else {},
        }

    # -- life cycle ------------------------------------------------------------------------------
    async def run(self, *, install_signal_handlers: bool = True) -> None:
        """Run until `stop()` (or SIGTERM/SIGINT); then save rule state and close the outbox."""
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._done = asyncio.Event()
        signals: list[signal.Signals] = []
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    self._loop.add_signal_handler(sig, self._request_stop, sig.name)
                    signals.append(sig)
                except (RuntimeError, ValueError):  # off the main thread, or a loop without Unix signals
                    pass  # not the main thread or not a Unix loop: stop() still works
        log.info(
            "edge %s of site %s starting: %d devices, %d cameras, outbox %s",
            self.edge.id,
            self.site.site.id,
            len(self.devices),
            0 if self.cameras is None else len([d for d in self.devices if d.family is Family.CAMERA]),
            self.outbox_path,
        )
        try:
            if self.status_server is not None:
                await self.status_server.start()
            if self.cameras is not None:
                self.cameras.start()
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.ingest.run(), name="ingest")
                    tg.create_task(self.uplink.run(), name="uplink")
                    tg.create_task(self._ticker(), name="ticker")
                    tg.create_task(self._wait_stop(), name="stop")
            except* _Stop:
                pass
        finally:
            for sig in signals:
                self._loop.remove_signal_handler(sig)
            await self._shutdown()
            self._done.set()

    def _request_stop(self, why: str = "stop()") -> None:
        log.info("edge %s stopping (%s)", self.edge.id, why)
        if self._stop_event is not None:
            self._stop_event.set()

    async def _wait_stop(self) -> None:
        assert self._stop_event is not None
        await self._stop_event.wait()
        raise _Stop

    async def stop(self) -> None:
        """Ask `run()` to finish and wait until it has."""
        self._request_stop()
        if self._done is not None:
            await self._done.wait()

    async def _shutdown(self) -> None:
        if self._closed:
            return
        if self.cameras is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.cameras.stop)
        try:
            self._flush_batches()
        except Exception:
            log.exception("flushing the last event batch failed")
        self._save_rules()
        if self.status_server is not None:
            await self.status_server.close()
        depth, awaiting = self.outbox.depth(), self.outbox.awaiting_confirmation()
        self.outbox.close()
        self._closed = True
        log.info(
            "edge %s stopped; %d item(s) stay in the outbox for next time, %d of them sent and awaiting central's "
            "confirmation",
            self.edge.id,
            sum(depth.values()) + sum(awaiting.values()),
            sum(awaiting.values()),
        )
