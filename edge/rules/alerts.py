"""Alert lifecycle: one stable alert_id per (rule, subject) activation, quiet-period clears, levels
that only go up, and flood grouping (contract §3.1, §5).

Rules speak in conditions: `activate` (condition true now), `release` (condition false from now;
the alert clears once it has stayed false for the rule's quiet period), `event` (both at once, for
event-type rules such as sos or door_forced) and `clear_now` (the rule knows it is over, e.g. a
held door closed). The book turns those into `AlertTransition`s, collected until `drain()`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gridwatch.contract import new_event_id
from gridwatch.contract.enums import Condition, Level, SubjectKind
from gridwatch.contract.uplink import AlertTransition, Subject

from .context import Controls, SiteView

Key = tuple[str, SubjectKind, str]
"""(rule, subject kind, subject id)"""

FLOOD_RULE = "system.flood"
FLOOD_WINDOW = timedelta(seconds=60)
SNAPSHOT_RULES = ("perimeter.", "camera.")
MAX_TITLE = 200


@dataclass(slots=True)
class Alert:
    """One active (not yet cleared) alert."""

    alert_id: str
    rule: str
    subject: Subject
    level: Level
    first_seen: datetime
    title: str
    detail: dict[str, Any]
    zone: str | None
    grid: str | None
    area: str | None
    devices: tuple[str, ...]
    camera: str | None = None
    snapshot: str | None = None
    cond: bool = True
    false_since: datetime | None = None
    updated: datetime | None = None  # time of the last transition

    @property
    def key(self) -> Key:
        return (self.rule, self.subject.kind, self.subject.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "rule": self.rule,
            "subject": self.subject.model_dump(mode="json"),
            "level": str(self.level),
            "first_seen": self.first_seen.isoformat(),
            "title": self.title,
            "detail": self.detail,
            "zone": self.zone,
            "grid": self.grid,
            "area": self.area,
            "devices": list(self.devices),
            "camera": self.camera,
            "snapshot": self.snapshot,
            "updated": self.updated.isoformat() if self.updated else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        # after a restart nobody knows whether the condition still holds: treat it as false from
        # the first sweep, so it clears unless a rule asserts it again (same alert_id then)
        return cls(
            alert_id=data["alert_id"],
            rule=data["rule"],
            subject=Subject.model_validate(data["subject"]),
            level=Level(data["level"]),
            first_seen=datetime.fromisoformat(data["first_seen"]),
            title=data["title"],
            detail=dict(data["detail"]),
            zone=data["zone"],
            grid=data["grid"],
            area=data["area"],
            devices=tuple(data["devices"]),
            camera=data["camera"],
            snapshot=data["snapshot"],
            cond=False,
            false_since=None,
            updated=datetime.fromisoformat(data["updated"]) if data.get("updated") else None,
        )


@dataclass(slots=True)
class Flood:
    """A (rule, zone) pair whose transitions are being held back until `until`."""

    until: datetime
    held: list[AlertTransition] = field(default_factory=list)
    count: int = 0


class AlertBook:
    """Every active alert of one edge, and the transitions produced since the last `drain()`."""

    def __init__(
        self,
        view: SiteView,
        controls: Controls,
        snapshotter: Callable[[str], str | None] | None = None,
    ) -> None:
        self.view = view
        self.controls = controls
        self.snapshotter = snapshotter
        self.active: dict[Key, Alert] = {}
        self.floods: dict[tuple[str, str], Flood] = {}
        self._recent: dict[tuple[str, str], deque[datetime]] = {}
        self._out: list[AlertTransition] = []

    # -- what rules call -----------------------------------------------------------------------
    def activate(
        self,
        rule: str,
        kind: SubjectKind,
        subject_id: str,
        now: datetime,
        *,
        title: str,
        level: Level | None = None,
        detail: dict[str, Any] | None = None,
        zone: str | None = None,
        grid: str | None = None,
        area: str | None = None,
        devices: tuple[str, ...] = (),
        camera: str | None = None,
        update: bool = False,
    ) -> Alert | None:
        """The condition holds at `now`. New alert → active transition; a higher level (or `update`)
        → another active transition with the same alert_id; otherwise only the condition is refreshed."""
        if not self.view.enabled(rule):
            return None
        wanted = level if level is not None else self.view.level(rule)
        key: Key = (rule, kind, subject_id)
        alert = self.active.get(key)
        if alert is None:
            alert = Alert(
                alert_id=new_event_id(),
                rule=rule,
                subject=Subject(kind=kind, id=subject_id),
                level=wanted,
                first_seen=now,
                title=title[:MAX_TITLE],
                detail=dict(detail or {}),
                zone=zone,
                grid=grid,
                area=area if area is not None else (self.view.zone_area(zone) or self.view.grid_area(grid)),
                devices=devices,
                camera=camera,
            )
            self.active[key] = alert
            self._emit(alert, Condition.ACTIVE, now)
            return alert
        alert.cond, alert.false_since = True, None
        raised = wanted.rank > alert.level.rank
        if raised or update:
            alert.level = Level.max(alert.level, wanted)
            alert.title = title[:MAX_TITLE]
            if detail is not None:
                alert.detail = dict(detail)
            alert.devices = tuple(dict.fromkeys((*alert.devices, *devices)))
            alert.camera = alert.camera or camera
            self._emit(alert, Condition.ACTIVE, now)
        return alert

    def event(self, rule: str, kind: SubjectKind, subject_id: str, now: datetime, **kw: Any) -> Alert | None:
        """An event-type condition: active now, clears a quiet period after the last event."""
        alert = self.activate(rule, kind, subject_id, now, **kw)
        if alert is not None:
            alert.cond, alert.false_since = False, now
        return alert

    def release(self, rule: str, kind: SubjectKind, subject_id: str, now: datetime) -> None:
        """The condition is false from `now` (the quiet period starts if it was true)."""
        alert = self.active.get((rule, kind, subject_id))
        if alert is not None and alert.cond:
            alert.cond, alert.false_since = False, now

    def clear_now(self, rule: str, kind: SubjectKind, subject_id: str, now: datetime) -> None:
        alert = self.active.pop((rule, kind, subject_id), None)
        if alert is not None:
            self._emit(alert, Condition.CLEARED, now)

    def get(self, rule: str, kind: SubjectKind, subject_id: str) -> Alert | None:
        return self.active.get((rule, kind, subject_id))

    def of_rule(self, rule: str) -> list[Alert]:
        return [a for a in self.active.values() if a.rule == rule]

    # -- what the engine calls -----------------------------------------------------------------
    def sweep(self, now: datetime) -> None:
        """Quiet-period clears, then the end of flood minutes (held transitions are released)."""
        for key, alert in list(self.active.items()):
            if alert.cond:
                continue
            if alert.false_since is None:  # restored from disk: the quiet period starts now
                alert.false_since = now
                continue
            if (now - alert.false_since).total_seconds() >= self.view.quiet_s(alert.rule, alert.zone):
                del self.active[key]
                self._emit(alert, Condition.CLEARED, now)
        for fkey, flood in list(self.floods.items()):
            if now < flood.until:
                continue
            del self.floods[fkey]
            self._out.extend(flood.held)
            rule, zone = fkey
            self._flood_alert(rule, zone, flood, now, ended=True)

    def drain(self) -> list[AlertTransition]:
        out, self._out = self._out, []
        return out

    # -- internals -----------------------------------------------------------------------------
    def transition(self, alert: Alert, state: Condition, now: datetime) -> AlertTransition:
        return AlertTransition(
            event_id=new_event_id(),
            alert_id=alert.alert_id,
            rule=alert.rule,
            level=alert.level,
            state=state,
            ts=now,
            first_seen=alert.first_seen,
            site=self.view.site_id,
            edge=self.view.edge_id,
            area=alert.area,
            grid=alert.grid,
            zone=alert.zone,
            subject=alert.subject,
            devices=alert.devices,
            title=alert.title,
            detail=alert.detail,
            snapshot=alert.snapshot,
            suppressed=self.controls.suppression(alert.rule, alert.zone, alert.devices, now),
        )

    def _emit(self, alert: Alert, state: Condition, now: datetime) -> None:
        alert.updated = now
        if state is Condition.ACTIVE and alert.camera and alert.rule.startswith(SNAPSHOT_RULES) and self.snapshotter:
            alert.snapshot = self.snapshotter(alert.camera) or alert.snapshot
        transition = self.transition(alert, state, now)
        if alert.zone is None or alert.rule == FLOOD_RULE:
            self._out.append(transition)
            return
        fkey = (alert.rule, alert.zone)
        flood = self.floods.get(fkey)
        if flood is not None:
            flood.held.append(transition)
            flood.count += 1
            return
        recent = self._recent.setdefault(fkey, deque())
        while recent and now - recent[0] >= FLOOD_WINDOW:
            recent.popleft()
        recent.append(now)
        limit = int(self.view.param(FLOOD_RULE, "max_per_minute", alert.zone))
        if len(recent) <= limit:
            self._out.append(transition)
            return
        # this one tips the minute over the limit: hold it back and raise one flood alert instead
        recent.clear()
        flood = Flood(until=now + FLOOD_WINDOW, held=[transition], count=limit + 1)
        self.floods[fkey] = flood
        self._flood_alert(alert.rule, alert.zone, flood, now, ended=False)

    def _flood_alert(self, rule: str, zone: str, flood: Flood, now: datetime, *, ended: bool) -> None:
        held = len(flood.held)
        detail = {"rule": rule, "transitions": flood.count, "held": held, "window_s": FLOOD_WINDOW.total_seconds()}
        title = f"Alert flood: {flood.count} {rule} transitions in a minute, {self.view.zone_name(zone)}"
        alert = self.activate(
            FLOOD_RULE, SubjectKind.ZONE, zone, now, title=title, detail=detail, zone=zone, update=ended
        )
        if alert is not None and ended:
            self.release(FLOOD_RULE, SubjectKind.ZONE, zone, now)

    # -- persistence ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "active": [a.to_json() for a in self.active.values()],
            "floods": [
                {
                    "rule": r,
                    "zone": z,
                    "until": f.until.isoformat(),
                    "count": f.count,
                    "held": [t.model_dump(mode="json") for t in f.held],
                }
                for (r, z), f in self.floods.items()
            ],
        }

    def load_json(self, data: dict[str, Any]) -> None:
        for item in data.get("active", []):
            alert = Alert.from_json(item)
            self.active[alert.key] = alert
        for item in data.get("floods", []):
            self.floods[(item["rule"], item["zone"])] = Flood(
                until=datetime.fromisoformat(item["until"]),
                count=int(item["count"]),
                held=[AlertTransition.model_validate(t) for t in item["held"]],
            )
