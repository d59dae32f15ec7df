"""Device health rules: offline (silence or status/will) and low battery."""

from __future__ import annotations

from datetime import datetime

from gridwatch.contract.enums import Level, SubjectKind

from .alerts import AlertBook
from .context import Controls, SiteView


class DeviceRules:
    def __init__(self, view: SiteView, controls: Controls, book: AlertBook) -> None:
        self.view, self.controls, self.book = view, controls, book
        self.last_seen: dict[str, datetime] = {}
        self.said_offline: set[str] = set()
        self.started: datetime | None = None
        self.watched = {
            d: dev.expected_interval_s
            for d, dev in view.devices.items()
            if d in view.device_ids and dev.expected_interval_s is not None
        }

    def seen(self, device: str, now: datetime) -> None:
        """Anything from the device proves it is alive (unless its status says otherwise)."""
        self.last_seen[device] = now
        if device not in self.said_offline:
            self.book.release("device.offline", SubjectKind.DEVICE, device, now)

    def status(self, device: str, online: bool, now: datetime) -> None:
        if online:
            self.said_offline.discard(device)
            self.seen(device, now)
        else:
            self.said_offline.add(device)
            self._offline(device, now, "the device reported offline (status or MQTT will)")

    def on_tick(self, now: datetime) -> None:
        if self.started is None:
            self.started = now  # silence is measured from when the engine first ran
        factor = self.view.param("device.offline", "interval_factor")
        for device, interval in self.watched.items():
            last = self.last_seen.get(device, self.started)
            if device in self.said_offline:
                self._offline(device, now, "the device reported offline (status or MQTT will)")
            elif (now - last).total_seconds() >= factor * interval:
                self._offline(device, now, f"silent since {last.isoformat()} (expected every {interval:g} s)")

    def _offline(self, device: str, now: datetime, why: str) -> None:
        base = self.view.level("device.offline")
        level = Level.max(base, Level.HIGH) if self.view.is_perimeter_device(device) else base
        self.book.activate(
            "device.offline",
            SubjectKind.DEVICE,
            device,
            now,
            level=level,
            zone=self.view.device_zone(device),
            devices=(device,),
            title=f"Device offline: {self.view.device_name(device)}",
            detail={"why": why},
        )

    def battery(
        self, device: str, percent: float, now: datetime, *, zone: str | None = None, grid: str | None = None
    ) -> None:
        """A battery level from any reading (tags, bands, detectors); subject is the battery's device."""
        threshold = self.view.param("device.low_battery", "threshold", zone)
        if percent <= threshold:
            if self.book.get("device.low_battery", SubjectKind.DEVICE, device) is None:
                self.book.activate(
                    "device.low_battery",
                    SubjectKind.DEVICE,
                    device,
                    now,
                    zone=zone,
                    grid=grid,
                    devices=(device,),
                    title=f"Battery low ({percent:.0f}%): {self.view.device_name(device)}",
                    detail={"battery": percent, "threshold": threshold},
                )
            else:
                self.book.activate("device.low_battery", SubjectKind.DEVICE, device, now, title="")
        else:
            self.book.release("device.low_battery", SubjectKind.DEVICE, device, now)
