"""The edge rule engine: readings, camera observations, ticks and commands in; alert transitions out.

Pure and deterministic apart from `state_path` (loaded here, written by `save()`): every time comes
from the `now` arguments, so tests drive it with explicit datetimes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from gridwatch.config.models import SiteConfig
from gridwatch.contract.enums import Condition, SubjectKind
from gridwatch.contract.readings import (
    AccessReading,
    CameraEventReading,
    PerimeterReading,
    PositionsReading,
    Reading,
    StatusReading,
    VitalsReading,
    WristbandEventReading,
    columns_of,
)
from gridwatch.contract.uplink import AlertTransition, ArmCmd, CmdResult, MaintenanceCmd, RollcallCmd, WalkTestCmd

from ..vision_types import CameraObservation
from .access import AccessRules
from .alerts import AlertBook
from .camera import CameraRules
from .context import Controls, SiteView
from .devices import DeviceRules
from .location import LocationRules
from .perimeter import PerimeterRules
from .wristband import WristbandRules

log = logging.getLogger(__name__)

STATE_VERSION = 1


class RuleEngine:
    """Every edge alert rule of contract §5 for the zones, devices and people one edge serves."""

    def __init__(
        self,
        site: SiteConfig,
        edge_id: str,
        *,
        state_path: Path | None = None,
        snapshotter: Callable[[str], str | None] | None = None,
    ) -> None:
        self.view = SiteView(site, edge_id)
        self.controls = Controls()
        self.book = AlertBook(self.view, self.controls, snapshotter)
        self.perimeter = PerimeterRules(self.view, self.controls, self.book)
        self.access = AccessRules(self.view, self.controls, self.book)
        self.location = LocationRules(self.view, self.controls, self.book)
        self.wristband = WristbandRules(self.view, self.controls, self.book)
        self.camera = CameraRules(self.view, self.controls, self.book, self.perimeter)
        self.devices = DeviceRules(self.view, self.controls, self.book)
        self.state_path = state_path
        if state_path is not None and state_path.exists():
            self._load(state_path)

    # -- inputs --------------------------------------------------------------------------------
    def on_readings(self, readings: Sequence[Reading], now: datetime) -> list[AlertTransition]:
        served = self.view.device_ids
        for r in readings:
            if isinstance(r, PerimeterReading):
                if r.device in served or r.detector in served:
                    self.devices.seen(r.device, now)
                    self.perimeter.on_reading(r, now)
            elif isinstance(r, AccessReading):
                if self.access.serves(r):
                    self.devices.seen(r.device, now)
                    self.access.on_reading(r, now)
            elif r.device not in served:
                continue
            elif isinstance(r, PositionsReading):
                self.devices.seen(r.device, now)
                self.location.on_positions(r, now)
                self._tag_batteries(r, now)
            elif isinstance(r, VitalsReading):
                self.devices.seen(r.device, now)
                self.wristband.on_vitals(r, now)
                if r.bat is not None:
                    person = self.view.by_band.get(r.band)
                    self.devices.battery(r.band, r.bat, now, grid=person.grid if person else None)
            elif isinstance(r, WristbandEventReading):
                self.devices.seen(r.device, now)
                self.wristband.on_event(r, now)
            elif isinstance(r, CameraEventReading):
                self.devices.seen(r.device, now)
                self.camera.on_event(r, now)
            elif isinstance(r, StatusReading):
                self.devices.status(r.device, r.online, now)
        return self.book.drain()

    def _tag_batteries(self, r: PositionsReading, now: datetime) -> None:
        """A tag's battery level reaches `devices.battery` when it is at or under the threshold, or
        when the tag's low-battery alert is active (a level above the threshold releases it)."""
        columns = columns_of(r.positions)
        threshold = self.view.param("device.low_battery", "threshold")
        low = columns.bat <= threshold  # NaN (the position carries no battery level) is never low
        alerted = {
            a.subject.id for a in self.book.of_rule("device.low_battery") if a.subject.kind == SubjectKind.DEVICE
        }
        if not alerted and not low.any():
            return  # no level raises an alert and there is none to release: most batches
        reported = ~np.isnan(columns.bat)
        tags, bats = columns.tag, columns.bat.tolist()
        if len(set(tags)) != len(tags):
            # a tag twice in one batch: its first level may raise the alert its second one releases
            for i in np.flatnonzero(reported).tolist():
                if bats[i] <= threshold or self.book.get("device.low_battery", SubjectKind.DEVICE, tags[i]):
                    self._tag_battery(tags[i], bats[i], now)
            return
        # each tag once: whether its alert is active depends on no other position of the batch
        due = low
        if alerted:
            due = low | (reported & np.array([tag in alerted for tag in tags], dtype=bool))
        for i in np.flatnonzero(due).tolist():
            self._tag_battery(tags[i], bats[i], now)

    def _tag_battery(self, tag: str, percent: float, now: datetime) -> None:
        person = self.view.by_tag.get(tag)
        self.devices.battery(tag, percent, now, grid=person.grid if person else None)

    def on_camera(self, camera_id: str, obs: CameraObservation, now: datetime) -> list[AlertTransition]:
        if obs.video_ok and camera_id in self.view.device_ids:
            self.devices.seen(camera_id, now)
        self.camera.on_observation(camera_id, obs, now)
        return self.book.drain()

    def on_tick(self, now: datetime) -> list[AlertTransition]:
        """Called every second: time-driven conditions, schedule changes, quiet-period clears, floods."""
        self.devices.on_tick(now)
        self.access.on_tick(now)
        self.location.on_tick(now)
        self.wristband.on_tick(now)
        self.camera.on_tick(now)
        self._schedules(now)
        self.book.sweep(now)
        return self.book.drain()

    def _schedules(self, now: datetime) -> None:
        for alert in self.book.of_rule("camera.motion"):
            zone = alert.zone
            if zone is None or not (self.controls.armed(self.view, zone, now) or self.controls.in_walk_test(zone, now)):
                self.book.release(alert.rule, alert.subject.kind, alert.subject.id, now)
        for alert in self.book.of_rule("wristband.curfew"):
            person = self.view.people.get(alert.subject.id)
            if person is None or not person.curfew.active(now, self.view.tz):
                self.book.release(alert.rule, alert.subject.kind, alert.subject.id, now)
        for zone in list(self.controls.arm):
            self.controls.armed(self.view, zone, now)  # drops overrides the schedule has overtaken

    # -- commands ------------------------------------------------------------------------------
    def on_command(self, name: str, cmd: BaseModel, now: datetime) -> tuple[CmdResult, list[AlertTransition]]:
        request_id = str(getattr(cmd, "request_id", "") or "unknown")
        if name == "rollcall" and isinstance(cmd, RollcallCmd):
            result = self._rollcall(cmd, now)
        elif name == "arm" and isinstance(cmd, ArmCmd):
            result = self._arm(cmd, now)
        elif name == "maintenance" and isinstance(cmd, MaintenanceCmd):
            result = self._maintenance(cmd, now)
        elif name == "walk_test" and isinstance(cmd, WalkTestCmd):
            result = self._walk_test(cmd, now)
        else:
            result = CmdResult(
                request_id=request_id,
                ok=False,
                result={"error": f"unknown command {name!r} or wrong body {type(cmd).__name__}"},
            )
        return result, self.book.drain()

    def _rollcall(self, cmd: RollcallCmd, now: datetime) -> CmdResult:
        if cmd.grid not in self.view.grid_ids:
            return CmdResult(
                request_id=cmd.request_id,
                ok=False,
                result={"grid": cmd.grid, "error": f"edge {self.view.edge_id} does not serve this grid"},
            )
        present, missing, extra = self.location.rollcall(cmd.grid, now)
        grid = self.view.grids[cmd.grid][1]
        expected = grid.expected_headcount or len(present) + len(missing)
        count = len(present) + len(extra)
        result: dict[str, Any] = {
            "grid": cmd.grid,
            "present": count,
            "expected": expected,
            "missing": missing,
            "extra": extra,
        }
        if count != expected:
            self.book.event(
                "location.headcount_mismatch",
                SubjectKind.ZONE,
                cmd.grid,
                now,
                grid=cmd.grid,
                title=f"Roll call {grid.name or cmd.grid}: {count} present, {expected} expected",
                detail=result,
                update=True,
            )
        else:
            self.book.clear_now("location.headcount_mismatch", SubjectKind.ZONE, cmd.grid, now)
        return CmdResult(request_id=cmd.request_id, ok=True, result=result)

    def _arm(self, cmd: ArmCmd, now: datetime) -> CmdResult:
        if cmd.zone not in self.view.zone_ids:
            return CmdResult(
                request_id=cmd.request_id,
                ok=False,
                result={"zone": cmd.zone, "error": f"edge {self.view.edge_id} does not serve this zone"},
            )
        self.controls.set_arm(self.view, cmd.zone, cmd.armed, now)
        return CmdResult(request_id=cmd.request_id, ok=True, result={"zone": cmd.zone, "armed": cmd.armed})

    def _maintenance(self, cmd: MaintenanceCmd, now: datetime) -> CmdResult:
        if cmd.device not in self.view.devices:
            return CmdResult(
                request_id=cmd.request_id, ok=False, result={"device": cmd.device, "error": "unknown device"}
            )
        if cmd.until is None or cmd.until <= now:
            self.controls.out_of_service.pop(cmd.device, None)
        else:
            self.controls.out_of_service[cmd.device] = cmd.until
        until = self.controls.out_of_service.get(cmd.device)
        return CmdResult(
            request_id=cmd.request_id,
            ok=True,
            result={
                "device": cmd.device,
                "out_of_service": until is not None,
                "until": until.isoformat() if until else None,
                "reason": cmd.reason,
            },
        )

    def _walk_test(self, cmd: WalkTestCmd, now: datetime) -> CmdResult:
        if cmd.zone not in self.view.zone_ids:
            return CmdResult(
                request_id=cmd.request_id,
                ok=False,
                result={"zone": cmd.zone, "error": f"edge {self.view.edge_id} does not serve this zone"},
            )
        if cmd.until is None or cmd.until <= now:
            self.controls.walk_tests.pop(cmd.zone, None)
        else:
            self.controls.walk_tests[cmd.zone] = cmd.until
        until = self.controls.walk_tests.get(cmd.zone)
        return CmdResult(
            request_id=cmd.request_id,
            ok=True,
            result={"zone": cmd.zone, "walk_test": until is not None, "until": until.isoformat() if until else None},
        )

    # -- state ---------------------------------------------------------------------------------
    def active_alerts(self) -> list[AlertTransition]:
        """The current (last) transition of every active alert, oldest first."""
        alerts = sorted(self.book.active.values(), key=lambda a: a.first_seen)
        return [self.book.transition(a, Condition.ACTIVE, a.updated or a.first_seen) for a in alerts]

    def save(self) -> None:
        """Write the state atomically (tmp file + os.replace) to `state_path`."""
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        with tmp.open("wb") as fh:
            fh.write(self.state_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)

    def state_bytes(self) -> bytes:
        """The whole state as JSON (what `save()` writes; the agent also keeps it in the outbox)."""
        data = {
            "version": STATE_VERSION,
            "edge": self.view.edge_id,
            "book": self.book.to_json(),
            "controls": self.controls.to_json(),
        }
        return json.dumps(data, separators=(",", ":")).encode()

    def restore(self, raw: bytes, source: str) -> None:
        """Load state produced by `state_bytes()`; damaged state is logged and ignored."""
        self._load_text(raw.decode("utf-8", errors="replace"), source)

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            log.error("rule engine state %s is unreadable (%s): starting with no active alerts", path, exc)
            return
        self._load_text(text, str(path))

    def _load_text(self, text: str, path: str) -> None:
        try:
            data = json.loads(text)
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"state version {data.get('version')!r}, expected {STATE_VERSION}")
            controls = Controls.from_json(data["controls"])
            book = AlertBook(self.view, controls, self.book.snapshotter)
            book.load_json(data["book"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # a damaged state file must not keep the edge from starting: start clean, say so loudly
            log.error("rule engine state %s is unreadable (%s): starting with no active alerts", path, exc)
            return
        self.controls.arm, self.controls.out_of_service = controls.arm, controls.out_of_service
        self.controls.walk_tests = controls.walk_tests
        self.book.active, self.book.floods = book.active, book.floods
