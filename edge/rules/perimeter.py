"""Perimeter rules: intrusion (with beam and camera correlation), detector tamper and fault."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from gridwatch.contract.enums import Level, PerimeterState, SubjectKind
from gridwatch.contract.readings import PerimeterReading

from .alerts import AlertBook
from .context import Controls, SiteView

HISTORY = timedelta(seconds=120)
"""How long beam breaks and camera motion are kept for correlation (longer than any sane window)."""


class PerimeterRules:
    def __init__(self, view: SiteView, controls: Controls, book: AlertBook) -> None:
        self.view, self.controls, self.book = view, controls, book
        self.breaks: dict[str, deque[tuple[datetime, str, int]]] = {}  # zone -> (ts, detector, beam)
        self.motion: dict[str, deque[tuple[datetime, str]]] = {}  # zone -> (ts, camera)

    def zone_of(self, reading: PerimeterReading) -> str | None:
        return self.view.device_zone(reading.detector) or self.view.device_zone(reading.device)

    def on_reading(self, r: PerimeterReading, now: datetime) -> None:
        zone = self.zone_of(r)
        if zone is None or zone not in self.view.zone_ids:
            return
        devices = tuple(dict.fromkeys((r.detector, r.device)))
        name = self.view.device_name(r.detector)
        if r.state == PerimeterState.ALARM:
            self._beam_break(zone, r, now)
        elif r.state == PerimeterState.TAMPER:
            self.book.event(
                "perimeter.tamper",
                SubjectKind.DEVICE,
                r.detector,
                now,
                zone=zone,
                devices=devices,
                title=f"Perimeter detector tamper, {name} ({self.view.zone_name(zone)})",
                detail={"beam": r.beam},
            )
        elif r.state in (PerimeterState.FAULT, PerimeterState.LOW_BATTERY):
            what = "low battery" if r.state == PerimeterState.LOW_BATTERY else "trouble"
            self.book.event(
                "perimeter.fault",
                SubjectKind.DEVICE,
                r.detector,
                now,
                zone=zone,
                devices=devices,
                title=f"Perimeter detector {what}, {name} ({self.view.zone_name(zone)})",
                detail={"state": str(r.state), "beam": r.beam},
            )

    def _beam_break(self, zone: str, r: PerimeterReading, now: datetime) -> None:
        history = self.breaks.setdefault(zone, deque())
        history.append((r.ts, r.detector, r.beam))
        _trim(history, r.ts)
        if not (self.controls.armed(self.view, zone, now) or self.controls.in_walk_test(zone, now)):
            return  # a disarmed zone raises nothing (the break is still kept for correlation)
        self._evaluate(zone, r.ts, now, new_break=True)

    def on_camera_motion(self, zone: str, camera: str, ts: datetime, now: datetime) -> None:
        """Qualifying camera motion in `zone`: kept for correlation; raises a matching intrusion to high."""
        history = self.motion.setdefault(zone, deque())
        history.append((ts, camera))
        _trim(history, ts)
        if self.book.get("perimeter.intrusion", SubjectKind.ZONE, zone) is not None:
            self._evaluate(zone, ts, now, new_break=False)

    def _evaluate(self, zone: str, ts: datetime, now: datetime, *, new_break: bool) -> None:
        p = self.view.params("perimeter.intrusion", zone)
        corr = timedelta(seconds=float(p["correlation_s"]))
        cam_window = timedelta(seconds=float(p["camera_window_s"]))
        beams: dict[tuple[str, int], datetime] = {}
        for z in (zone, *self.view.zones[zone].neighbours):
            for bts, det, beam in self.breaks.get(z, ()):
                if abs(bts - ts) <= corr:
                    beams[(det, beam)] = max(bts, beams.get((det, beam), bts))
        own = [b for b in self.breaks.get(zone, ()) if abs(b[0] - ts) <= max(corr, cam_window)]
        if not own:
            return
        cameras = sorted(
            {cam for cts, cam in self.motion.get(zone, ()) if any(abs(cts - b[0]) <= cam_window for b in own)}
        )
        detectors = sorted({det for det, _ in beams})
        high = len(beams) >= int(p["beams_for_high"]) or bool(cameras)
        base = self.view.level("perimeter.intrusion")
        level = Level.max(base, Level.HIGH) if high else base
        count = len(beams)
        why = f"{count} beam{'s' if count != 1 else ''}" + (", camera motion" if cameras else "")
        existing = self.book.get("perimeter.intrusion", SubjectKind.ZONE, zone)
        if existing is None and not new_break:
            return
        update = existing is not None and (
            count > int(existing.detail.get("beams", 0)) or len(cameras) > len(existing.detail.get("cameras", []))
        )
        detail = {
            "beams": count,
            "detectors": detectors,
            "cameras": cameras,
            "armed": self.controls.armed(self.view, zone, now),
        }
        if self.controls.in_walk_test(zone, now):
            detail["walk_test"] = True
        self.book.event(
            "perimeter.intrusion",
            SubjectKind.ZONE,
            zone,
            now,
            level=level,
            zone=zone,
            update=update,
            title=f"Perimeter beam break, {self.view.zone_name(zone)} ({why})",
            detail=detail,
            devices=tuple(dict.fromkeys((*detectors, *cameras))),
            camera=cameras[0] if cameras else self.view.camera_for(zone),
        )


def _trim(history: deque[tuple[datetime, str, int]] | deque[tuple[datetime, str]], latest: datetime) -> None:
    while history and latest - history[0][0] > HISTORY:
        history.popleft()
