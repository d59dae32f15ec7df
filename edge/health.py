"""Per-device health as the edge sees it: last seen, online, battery, dead letters (contract §3 `devices`).

A device is online after its status topic says so or after any message from it; it is offline
after its status/will says `offline` or after 3× its expected interval of silence. Batteries
come from readings that carry one for a configured device (a band or tag that is itself a
device); gateways report no battery of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from gridwatch.config.models import Device
from gridwatch.contract import (
    DeviceHealth,
    DevicesBody,
    Family,
    PositionsReading,
    Reading,
    StatusReading,
    VitalsReading,
    format_ts,
    new_event_id,
)
from gridwatch.contract.readings import columns_of

SILENCE_FACTOR = 3
RESEND_EVERY_S = 60.0


@dataclass(slots=True)
class _State:
    id: str
    family: Family
    expected_interval_s: float | None
    online: bool = False
    last_seen: datetime | None = None
    battery: float | None = None
    dead_letters: int = 0
    said_offline: bool = False  # status/will said offline; only a message or `online` undoes it


class DeviceHealthTracker:
    """Health of the devices one edge serves; `body_if_due` yields a DevicesBody on change and every 60 s."""

    def __init__(self, devices: list[Device], *, resend_every_s: float = RESEND_EVERY_S) -> None:
        self._states: dict[str, _State] = {
            d.id: _State(d.id, d.family, d.expected_interval_s) for d in sorted(devices, key=lambda d: d.id)
        }
        self._resend_every_s = resend_every_s
        self._changed = True  # the first body goes out at once
        self._last_sent: datetime | None = None

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._states

    # -- inputs ------------------------------------------------------------------------------
    def on_traffic(self, device_id: str, now: datetime) -> None:
        """Any message from the device, good or bad: it is alive."""
        state = self._states.get(device_id)
        if state is None:
            return
        state.last_seen = now
        state.said_offline = False
        if not state.online:
            state.online = True
            self._changed = True

    def on_reading(self, reading: Reading, now: datetime) -> None:
        """A parsed reading: status changes online; readings carrying a battery update it."""
        if isinstance(reading, StatusReading):
            state = self._states.get(reading.device)
            if state is None:
                return
            if state.online != reading.online:
                self._changed = True
            state.online = reading.online
            state.said_offline = not reading.online
            if reading.online:
                state.last_seen = now
            return
        if isinstance(reading, VitalsReading) and reading.bat is not None:
            self._set_battery(reading.band, reading.bat)
        elif isinstance(reading, PositionsReading):
            # the batch's columns, read as they are: no Position object is made for this
            columns = columns_of(reading.positions)
            tags, bats = columns.tag, columns.bat
            if self._states.keys().isdisjoint(tags):  # the usual batch: none of its tags is a device here
                return
            for i in np.flatnonzero(~np.isnan(bats)).tolist():  # NaN: the position has no battery level
                self._set_battery(tags[i], float(bats[i]))

    def on_dead_letter(self, device_id: str) -> None:
        state = self._states.get(device_id)
        if state is not None:
            state.dead_letters += 1
            self._changed = True

    def _set_battery(self, device_id: str, battery: float) -> None:
        state = self._states.get(device_id)
        if state is None:
            return
        # whole percent steps only, so a jittery gauge does not resend the body every message
        if state.battery is None or round(state.battery) != round(battery):
            self._changed = True
        state.battery = battery

    # -- time --------------------------------------------------------------------------------
    def tick(self, now: datetime) -> None:
        """Mark devices silent for 3× their expected interval offline."""
        for state in self._states.values():
            if not state.online or state.expected_interval_s is None or state.last_seen is None:
                continue
            if now - state.last_seen > timedelta(seconds=SILENCE_FACTOR * state.expected_interval_s):
                state.online = False
                self._changed = True

    # -- outputs -----------------------------------------------------------------------------
    def health(self) -> list[DeviceHealth]:
        return [
            DeviceHealth(
                id=s.id,
                family=s.family,
                online=s.online,
                last_seen=s.last_seen,
                battery=None if s.battery is None else max(0.0, min(100.0, s.battery)),
                dead_letters=s.dead_letters,
            )
            for s in self._states.values()
        ]

    def body(self, now: datetime) -> DevicesBody:
        self._changed = False
        self._last_sent = now
        return DevicesBody(event_id=new_event_id(), ts=now, devices=tuple(self.health()))

    def body_if_due(self, now: datetime) -> DevicesBody | None:
        """A DevicesBody when something changed or `resend_every_s` passed since the last one."""
        self.tick(now)
        stale = self._last_sent is None or (now - self._last_sent).total_seconds() >= self._resend_every_s
        if self._changed or stale:
            return self.body(now)
        return None

    def summary(self) -> dict[str, Any]:
        """JSON for /status."""
        devices = [
            {
                "id": s.id,
                "family": str(s.family),
                "online": s.online,
                "last_seen": format_ts(s.last_seen) if s.last_seen else None,
                "battery": s.battery,
                "dead_letters": s.dead_letters,
            }
            for s in self._states.values()
        ]
        return {
            "count": len(devices),
            "online": sum(1 for d in devices if d["online"]),
            "devices": devices,
        }
