"""Access-control rules: forced and held doors, denial bursts, after-hours grants, anti-passback."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from gridwatch.contract.enums import AccessEvent, Direction, SubjectKind
from gridwatch.contract.readings import AccessReading

from .alerts import AlertBook
from .context import Controls, SiteView


class AccessRules:
    def __init__(self, view: SiteView, controls: Controls, book: AlertBook) -> None:
        self.view, self.controls, self.book = view, controls, book
        self.last_grant: dict[str, datetime] = {}  # door -> ts of the last grant
        self.open_since: dict[str, tuple[datetime, tuple[str, ...]]] = {}  # door -> (since, devices)
        self.denials: dict[str, deque[datetime]] = {}
        self.passback: dict[tuple[str, str], Direction] = {}  # (door group, card) -> last direction

    def serves(self, r: AccessReading) -> bool:
        return r.door in self.view.door_ids or r.device in self.view.device_ids

    def _door_zone(self, door: str) -> str | None:
        d = self.view.doors.get(door)
        return d.zone if d is not None else None

    def held_after_s(self, door: str) -> float:
        """RULES default | site params | zone thresholds | the door's own `held_after_s` if set."""
        d = self.view.doors.get(door)
        value = self.view.param("access.door_held", "held_after_s", self._door_zone(door))
        if d is not None and "held_after_s" in d.model_fields_set:
            value = d.held_after_s
        return value

    def on_reading(self, r: AccessReading, now: datetime) -> None:
        if not self.serves(r):
            return
        door, zone = r.door, self._door_zone(r.door)
        devices = tuple(dict.fromkeys(d for d in (r.device, r.reader) if d is not None))
        name = self.view.door_name(door)
        match r.event:
            case AccessEvent.GRANTED:
                self.last_grant[door] = r.ts
                self._after_hours(r, now, name, zone, devices)
                self._anti_passback(r, now, name, zone, devices)
            case AccessEvent.DENIED:
                window = self.view.param("access.denied_burst", "window_s", zone)
                history = self.denials.setdefault(door, deque())
                history.append(r.ts)
                while history and (r.ts - history[0]).total_seconds() > window:
                    history.popleft()
                count = int(self.view.param("access.denied_burst", "count", zone))
                if len(history) >= count:
                    self.book.event(
                        "access.denied_burst",
                        SubjectKind.DOOR,
                        door,
                        now,
                        zone=zone,
                        devices=devices,
                        title=f"{len(history)} card denials in {window:g} s, {name}",
                        detail={"denials": len(history), "window_s": window, "card": r.card},
                    )
            case AccessEvent.DOOR_OPEN:
                self.open_since.setdefault(door, (now, devices))
                grant = self.last_grant.get(door)
                window = self.view.param("access.door_forced", "grant_window_s", zone)
                if grant is None or not timedelta(0) <= r.ts - grant <= timedelta(seconds=window):
                    self._forced(door, now, name, zone, devices, "opened without a grant")
            case AccessEvent.DOOR_FORCED:
                self.open_since.setdefault(door, (now, devices))
                self._forced(door, now, name, zone, devices, "reported forced by the controller")
            case AccessEvent.DOOR_HELD:
                since, _ = self.open_since.setdefault(door, (now, devices))
                self._held(door, since, now)
            case AccessEvent.DOOR_CLOSED:
                self.open_since.pop(door, None)
                self.book.clear_now("access.door_held", SubjectKind.DOOR, door, now)
            case AccessEvent.TAMPER:
                # no access tamper rule in contract §5; the event still goes up as a device event
                pass

    def _forced(
        self, door: str, now: datetime, name: str, zone: str | None, devices: tuple[str, ...], why: str
    ) -> None:
        self.book.event(
            "access.door_forced",
            SubjectKind.DOOR,
            door,
            now,
            title=f"Door forced open, {name}",
            detail={"why": why},
            zone=zone,
            devices=devices,
        )

    def _after_hours(
        self, r: AccessReading, now: datetime, name: str, zone: str | None, devices: tuple[str, ...]
    ) -> None:
        d = self.view.doors.get(r.door)
        if d is None or d.schedule.active(r.ts, self.view.tz):
            return
        local = r.ts.astimezone(self.view.tz).strftime("%a %H:%M")
        self.book.event(
            "access.after_hours",
            SubjectKind.DOOR,
            r.door,
            now,
            title=f"Access granted outside hours ({local}), {name}",
            detail={"card": r.card, "schedule": list(d.schedule.source)},
            zone=zone,
            devices=devices,
        )

    def _anti_passback(
        self, r: AccessReading, now: datetime, name: str, zone: str | None, devices: tuple[str, ...]
    ) -> None:
        if r.card is None or r.direction is None:
            return
        d = self.view.doors.get(r.door)
        group = (d.group if d is not None else None) or r.door
        key = (group, r.card)
        previous = self.passback.get(key)
        self.passback[key] = r.direction
        if r.direction == Direction.IN and previous == Direction.IN:
            self.book.event(
                "access.anti_passback",
                SubjectKind.DOOR,
                r.door,
                now,
                title=f"Anti-passback: card {r.card} entered twice without leaving, {name}",
                detail={"card": r.card, "group": group},
                zone=zone,
                devices=devices,
            )

    def on_tick(self, now: datetime) -> None:
        for door, (since, _) in list(self.open_since.items()):
            if (now - since).total_seconds() >= self.held_after_s(door):
                self._held(door, since, now)

    def _held(self, door: str, since: datetime, now: datetime) -> None:
        seconds = (now - since).total_seconds()
        _, devices = self.open_since.get(door, (since, ()))
        self.book.activate(
            "access.door_held",
            SubjectKind.DOOR,
            door,
            now,
            zone=self._door_zone(door),
            devices=devices,
            title=f"Door held open, {self.view.door_name(door)}",
            detail={
                "open_since": since.isoformat(),
                "held_after_s": self.held_after_s(door),
                "open_s": round(seconds, 1),
            },
        )
