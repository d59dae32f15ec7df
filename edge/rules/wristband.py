"""Wristband rules: strap, SOS, fall, heart rate, temperature, GPS geofence and curfew."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gridwatch.config.models import Person
from gridwatch.contract.devices import GpsFix
from gridwatch.contract.enums import Level, StrapState, SubjectKind, WristbandEvent, ZoneKind
from gridwatch.contract.readings import VitalsReading, WristbandEventReading

from .alerts import AlertBook
from .context import Controls, SiteView
from .geo import GpsPolygon, inside_exclusion, outside_inclusion

STALE_S = 120.0
"""A vital sign older than this no longer keeps a duration rule going (the band went quiet)."""


@dataclass(slots=True)
class Vital:
    value: float
    at: datetime  # when the last reading arrived
    since: datetime | None = None  # when the value first left the normal range


class WristbandRules:
    def __init__(self, view: SiteView, controls: Controls, book: AlertBook) -> None:
        self.view, self.controls, self.book = view, controls, book
        self.hr: dict[str, Vital] = {}
        self.temp: dict[str, Vital] = {}
        self.strap_open: dict[str, tuple[str, ...]] = {}  # band -> devices
        # GPS zones are not tied to one edge's floor plan: every inclusion/exclusion zone of the site counts
        self.inclusion = [
            GpsPolygon.from_ring(z.gps_polygon)
            for z in view.site.zones
            if z.kind == ZoneKind.INCLUSION and z.gps_polygon
        ]
        self.exclusion = {
            z.id: GpsPolygon.from_ring(z.gps_polygon)
            for z in view.site.zones
            if z.kind == ZoneKind.EXCLUSION and z.gps_polygon
        }
        self.home = {z.id: GpsPolygon.from_ring(z.gps_polygon) for z in view.site.zones if z.gps_polygon}

    def _person(self, band: str) -> Person | None:
        return self.view.by_band.get(band)

    def _subject(self, band: str) -> tuple[SubjectKind, str, str, str | None]:
        """(kind, id, human name, grid) of a band's wearer, or the band itself if nobody wears it."""
        person = self._person(band)
        if person is None:
            return SubjectKind.DEVICE, band, f"band {band}", None
        return SubjectKind.PERSON, person.id, self.view.person_name(person), person.grid

    def on_event(self, r: WristbandEventReading, now: datetime) -> None:
        kind, sid, name, grid = self._subject(r.band)
        devices = (r.band, r.device)
        if r.event == WristbandEvent.SOS:
            self.book.event("wristband.sos", kind, sid, now, grid=grid, devices=devices, title=f"SOS from {name}")
        elif r.event == WristbandEvent.FALL:
            self.book.event("wristband.fall", kind, sid, now, grid=grid, devices=devices, title=f"Fall: {name}")
        elif r.event == WristbandEvent.STRAP_OPEN:
            self._strap(r.band, True, devices, now)
        elif r.event == WristbandEvent.STRAP_CLOSED:
            self._strap(r.band, False, devices, now)

    def _strap(self, band: str, is_open: bool, devices: tuple[str, ...], now: datetime) -> None:
        kind, sid, name, grid = self._subject(band)
        if is_open:
            self.strap_open[band] = devices
            self.book.activate(
                "wristband.strap_open",
                kind,
                sid,
                now,
                grid=grid,
                devices=devices,
                title=f"Wristband strap opened: {name}",
                detail={"band": band},
            )
        else:
            self.strap_open.pop(band, None)
            self.book.release("wristband.strap_open", kind, sid, now)

    def on_vitals(self, r: VitalsReading, now: datetime) -> None:
        devices = (r.band, r.device)
        if r.strap is not None:
            self._strap(r.band, r.strap == StrapState.OPEN, devices, now)
        if r.hr is not None:
            p = self.view.params("wristband.heart_rate")
            self._track(self.hr, r.band, r.hr, not float(p["low"]) <= r.hr <= float(p["high"]), now)
        if r.temp is not None:
            self._track(self.temp, r.band, r.temp, r.temp >= self.view.param("wristband.temperature", "threshold"), now)
        if r.gps is not None:
            self._gps(r.band, r.gps, devices, now)
        self._evaluate(r.band, now)

    @staticmethod
    def _track(table: dict[str, Vital], band: str, value: float, abnormal: bool, now: datetime) -> None:
        vital = table.get(band)
        since = (vital.since if vital is not None and vital.since is not None else now) if abnormal else None
        table[band] = Vital(value, now, since)

    def on_tick(self, now: datetime) -> None:
        for band in set(self.hr) | set(self.temp):
            self._evaluate(band, now)
        for band, devices in self.strap_open.items():
            kind, sid, _, _ = self._subject(band)
            if self.book.get("wristband.strap_open", kind, sid) is not None:
                self.book.activate("wristband.strap_open", kind, sid, now, title="", devices=devices)

    def _evaluate(self, band: str, now: datetime) -> None:
        kind, sid, name, grid = self._subject(band)
        devices = (band,)
        hr = self.hr.get(band)
        p = self.view.params("wristband.heart_rate")
        if hr is not None and hr.since is not None and (now - hr.at).total_seconds() <= STALE_S:
            if (now - hr.since).total_seconds() >= float(p["duration_s"]):
                critical = not float(p["critical_low"]) <= hr.value <= float(p["critical_high"])
                base = self.view.level("wristband.heart_rate")
                self.book.activate(
                    "wristband.heart_rate",
                    kind,
                    sid,
                    now,
                    grid=grid,
                    devices=devices,
                    level=Level.max(base, Level.HIGH) if critical else base,
                    title=f"Heart rate {hr.value:.0f} bpm, {name}",
                    detail={"hr": hr.value, "since": hr.since.isoformat(), "critical": critical},
                )
        else:
            self.book.release("wristband.heart_rate", kind, sid, now)
        temp = self.temp.get(band)
        if temp is not None and temp.since is not None and (now - temp.at).total_seconds() <= STALE_S:
            if (now - temp.since).total_seconds() >= self.view.param("wristband.temperature", "duration_s"):
                self.book.activate(
                    "wristband.temperature",
                    kind,
                    sid,
                    now,
                    grid=grid,
                    devices=devices,
                    title=f"Body temperature {temp.value:.1f} °C, {name}",
                    detail={"temp": temp.value, "since": temp.since.isoformat()},
                )
        else:
            self.book.release("wristband.temperature", kind, sid, now)

    def _gps(self, band: str, gps: GpsFix, devices: tuple[str, ...], now: datetime) -> None:
        kind, sid, name, grid = self._subject(band)
        fix = {"lat": gps.lat, "lon": gps.lon, "acc_m": gps.acc_m}
        excluded = [zid for zid, z in self.exclusion.items() if inside_exclusion(z, gps.lat, gps.lon, gps.acc_m)]
        if excluded:
            self.book.activate(
                "wristband.geofence",
                kind,
                sid,
                now,
                grid=grid,
                devices=devices,
                title=f"{name} inside exclusion zone {self.view.zone_name(excluded[0])}",
                detail={**fix, "exclusion": excluded},
            )
        elif outside_inclusion(self.inclusion, gps.lat, gps.lon, gps.acc_m):
            self.book.activate(
                "wristband.geofence",
                kind,
                sid,
                now,
                grid=grid,
                devices=devices,
                title=f"{name} outside every inclusion zone",
                detail=fix,
            )
        else:
            self.book.release("wristband.geofence", kind, sid, now)
        person = self._person(band)
        home = self.home.get(person.home_zone or "") if person is not None else None
        if person is None or home is None or person.curfew.is_never:
            return
        if person.curfew.active(now, self.view.tz) and home.signed_distance(gps.lat, gps.lon) > gps.acc_m:
            self.book.activate(
                "wristband.curfew",
                kind,
                sid,
                now,
                grid=grid,
                devices=devices,
                title=f"{name} outside {self.view.zone_name(person.home_zone)} during curfew",
                detail=fix,
            )
        else:
            self.book.release("wristband.curfew", kind, sid, now)
