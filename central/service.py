"""Central's domain layer: ingest, alert store queries, workflow, escalation, audit, KPIs, users.

The API and MQTT ingest call these methods from worker threads; each method is one or a few short
transactions. Events for SSE are published only after the transaction that caused them commits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from shapely.geometry import Point, Polygon
from sqlalchemy import and_, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central import audit as audit_log
from central import kpi as kpi_mod
from central.store.db import Database
from central.store.models import (
    Alert,
    AuditRecord,
    Command,
    DeviceEventRow,
    DeviceRow,
    EdgeRow,
    PositionRow,
    Received,
    Snapshot,
    Transition,
    UserRow,
    WalkTest,
    WorkflowEntry,
)
from central.users import hash_password, needs_rehash, verify_password
from central.workflow import (
    Actor,
    AlertFacts,
    WorkflowError,
    authorise_maintenance,
    decide,
    escalation_target,
    unshelve_due,
)
from central.workflow import Command as Cmd
from gridwatch.clock import Clock, SystemClock
from gridwatch.config.models import SiteConfig
from gridwatch.contract.base import ID_PATTERN, new_event_id, uuid7
from gridwatch.contract.enums import Condition, Level, Resolution, UserRole, WorkflowState, ZoneKind
from gridwatch.contract.uplink import (
    AlertTransition,
    CmdResult,
    DevicesBody,
    EventsBody,
    Heartbeat,
    HeartbeatWill,
    TelemetryBody,
)

__all__ = ["Actor", "CentralService", "Publish", "WorkflowError"]

log = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], None]
Events = list[tuple[str, dict[str, Any]]]
T = TypeVar("T")

SYSTEM = "system"
EVIDENCE_WINDOW = timedelta(seconds=60)
POSITION_FRESH = timedelta(seconds=60)
MAX_NOTE = 2000
MAX_LIMIT = 500
_ID = re.compile(ID_PATTERN)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _later(a: datetime, b: datetime) -> datetime:
    return a if a >= b else b


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise WorkflowError(422, f"`{name}` must be an aware datetime")


def _check_note(note: str | None, *, required: bool = False, name: str = "note") -> str | None:
    if note is not None and len(note) > MAX_NOTE:
        raise WorkflowError(422, f"`{name}` is longer than {MAX_NOTE} characters")
    if required and not (note and note.strip()):
        raise WorkflowError(422, f"`{name}` must not be empty")
    return note


def _check_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise WorkflowError(422, f"{kind} {value!r} is not a valid id")
    return value


def _enum(enum: type[Any], name: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise WorkflowError(422, f"`{name}` must be one of {choices}, got {value!r}") from None


def _encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise WorkflowError(422, "cursor is not one this server gave out") from None
    if not isinstance(data, dict):
        raise WorkflowError(422, "cursor is not one this server gave out")
    return data


def alert_item(a: Alert) -> dict[str, Any]:
    """An alert as CONTRACT §4.0 shapes it, plus detail, suppressed and workflow extras."""
    return {
        "id": a.id,
        "rule": a.rule,
        "level": a.level,
        "condition": a.condition,
        "workflow": a.workflow,
        "site": a.site,
        "edge": a.edge,
        "area": a.area,
        "grid": a.grid,
        "zone": a.zone,
        "subject": {"kind": a.subject_kind, "id": a.subject_id},
        "devices": list(a.devices),
        "title": a.title,
        "first_seen": _ts(a.first_seen),
        "last_change": _ts(a.last_change),
        "snapshot": a.snapshot,
        "escalated_to": a.escalated_to,
        "detail": a.detail,
        "suppressed": a.suppressed,
        "origin": a.origin,
        "resolution": a.resolution,
        "officer": a.officer,
        "shelved_until": _ts(a.shelved_until),
    }


def _entry_dict(e: WorkflowEntry) -> dict[str, Any]:
    return {
        **e.data,
        "ts": _ts(e.ts),
        "actor": e.actor,
        "action": e.action,
        "from": e.from_state,
        "to": e.to_state,
        "note": e.note,
    }


class CentralService:
    """Everything central does with its store; HTTP and MQTT are thin layers over this."""

    def __init__(
        self,
        db: Database,
        site: SiteConfig,
        *,
        clock: Clock | None = None,
        publish: Publish | None = None,
    ) -> None:
        self.db = db
        self.site = site
        self.clock: Clock = clock or SystemClock()
        self._publish: Publish = publish or (lambda event, data: None)
        self._started = self.clock.now()
        self._grids = site.grid_index()
        self._grid_shapes = {gid: Polygon(g.polygon) for gid, (_a, g) in self._grids.items()}
        self._people = {p.id: p for p in site.people}
        self._tag_person = {p.tag: p.id for p in site.people if p.tag}
        self._band_person = {p.band: p.id for p in site.people if p.band}
        self._supervisors = {a.id: a.supervisor for a in site.areas}

    # -- plumbing ------------------------------------------------------------------------------
    def _emit(self, events: Events) -> None:
        for name, data in events:
            try:
                self._publish(name, data)
            except Exception:  # a broken subscriber must not undo a committed change
                log.exception("publishing %s event failed", name)

    def _write(self, fn: Callable[[Session], T], attempts: int = 3) -> T:
        """Run `fn` in a write transaction; retry when a concurrent insert of the same key won."""
        for attempt in range(attempts):
            try:
                with self.db.write() as session:
                    return fn(session)
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _ingest(self, event_id: str, edge: str, kind: str, apply: Callable[[Session], Events]) -> bool:
        """Store one uplink body exactly once: the `received` row and its effects commit together."""
        for attempt in range(3):
            try:
                with self.db.write() as session:
                    session.add(Received(event_id=event_id, edge=edge, kind=kind, received_at=self.clock.now()))
                    session.flush()
                    events = apply(session)
            except IntegrityError:
                with self.db.read() as session:
                    if session.get(Received, event_id) is not None:
                        return False
                if attempt == 2:
                    raise
                continue
            self._emit(events)
            return True
        return False

    @staticmethod
    def _lock_alert(session: Session, alert_id: str) -> Alert:
        alert = session.execute(select(Alert).where(Alert.id == alert_id).with_for_update()).scalar_one_or_none()
        if alert is None:
            raise WorkflowError(404, f"no alert {alert_id!r}")
        return alert

    @staticmethod
    def _entry(
        session: Session,
        alert: Alert,
        ts: datetime,
        actor: str,
        action: str,
        before: str | None,
        after: str | None,
        note: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        session.add(
            WorkflowEntry(
                alert_id=alert.id,
                ts=ts,
                actor=actor,
                action=action,
                from_state=before,
                to_state=after,
                note=note,
                data=data or {},
            )
        )

    # -- ingest --------------------------------------------------------------------------------
    def ingest_alert(self, edge: str, t: AlertTransition) -> bool:
        if t.edge != edge:
            log.warning("alert %s names edge %r but came from edge %r; keeping the topic's", t.alert_id, t.edge, edge)
        return self._ingest(t.event_id, edge, "alert", lambda s: self._apply_transition(s, edge, t))

    def _apply_transition(self, session: Session, edge: str, t: AlertTransition) -> Events:
        now = self.clock.now()
        alert = session.execute(select(Alert).where(Alert.id == t.alert_id).with_for_update()).scalar_one_or_none()
        if alert is None:
            alert = Alert(
                id=t.alert_id,
                rule=t.rule,
                level=t.level.value,
                condition=t.state.value,
                workflow=WorkflowState.NEW.value,
                site=t.site,
                edge=edge,
                area=t.area,
                grid=t.grid,
                zone=t.zone,
                subject_kind=t.subject.kind.value,
                subject_id=t.subject.id,
                devices=list(t.devices),
                title=t.title,
                detail=dict(t.detail),
                snapshot=t.snapshot,
                suppressed=t.suppressed,
                origin="edge",
                first_seen=t.first_seen,
                edge_ts=t.ts,
                last_change=_later(t.ts, t.first_seen),
                escalation_step=0,
            )
            session.add(alert)
            session.flush()
            self._entry(
                session,
                alert,
                t.ts,
                f"edge:{edge}",
                "raised",
                None,
                WorkflowState.NEW.value,
                data={"level": t.level.value, "condition": t.state.value},
            )
        else:
            old_level = Level(alert.level)
            new_level = Level.max(old_level, t.level)
            if new_level is not old_level:
                alert.level = new_level.value
                self._entry(
                    session,
                    alert,
                    t.ts,
                    f"edge:{edge}",
                    "level_raised",
                    alert.workflow,
                    alert.workflow,
                    data={"level_from": old_level.value, "level_to": new_level.value},
                )
            if t.ts >= alert.edge_ts:  # a late, older transition must not undo a newer one
                if alert.condition != t.state.value:
                    self._entry(session, alert, t.ts, f"edge:{edge}", t.state.value, alert.workflow, alert.workflow)
                alert.condition = t.state.value
                alert.detail = dict(t.detail)
                alert.title = t.title
                alert.suppressed = t.suppressed
                alert.edge_ts = t.ts
                alert.devices = list(dict.fromkeys([*alert.devices, *t.devices]))
            alert.snapshot = t.snapshot or alert.snapshot
            alert.last_change = _later(alert.last_change, t.ts)
        session.add(
            Transition(
                event_id=t.event_id,
                alert_id=t.alert_id,
                ts=t.ts,
                received_at=now,
                level=t.level.value,
                condition=t.state.value,
                title=t.title,
                detail=dict(t.detail),
                snapshot=t.snapshot,
                suppressed=t.suppressed,
            )
        )
        session.flush()
        return [("alert", alert_item(alert))]

    def ingest_events(self, edge: str, body: EventsBody) -> bool:
        def apply(session: Session) -> Events:
            session.add_all(
                DeviceEventRow(event_id=body.event_id, edge=edge, ts=e.ts, device=e.device, kind=e.kind, data=e.data)
                for e in body.batch
            )
            return []

        return self._ingest(body.event_id, edge, "events", apply)

    def ingest_devices(self, edge: str, body: DevicesBody) -> bool:
        def apply(session: Session) -> Events:
            events: Events = []
            for d in body.devices:
                row = session.execute(select(DeviceRow).where(DeviceRow.id == d.id).with_for_update()).scalar()
                if row is None:
                    row = DeviceRow(id=d.id, dead_letters=0)
                    session.add(row)
                elif row.updated_at is not None and row.updated_at > body.ts:
                    continue  # an older report arriving late
                row.edge, row.family, row.online = edge, d.family.value, d.online
                row.last_seen, row.battery, row.dead_letters = d.last_seen, d.battery, d.dead_letters
                row.updated_at = body.ts
                session.flush()
                events.append(("device", self._device_dict(row)))
            return events

        return self._ingest(body.event_id, edge, "devices", apply)

    def ingest_heartbeat(self, edge: str, hb: Heartbeat | HeartbeatWill) -> None:
        now = self.clock.now()

        def apply(session: Session) -> Events:
            row = session.execute(select(EdgeRow).where(EdgeRow.id == edge).with_for_update()).scalar()
            if row is None:
                row = EdgeRow(id=edge, online=False, outbox={})
                session.add(row)
            events: Events = []
            if isinstance(hb, HeartbeatWill):
                row.online = False
                if row.offline_alert is None:
                    events += self._raise_edge_offline(session, row, now, "the edge's MQTT will reported it offline")
            else:
                row.online = True
                row.last_heartbeat = now
                row.version, row.uptime_s, row.config_hash = hb.version, hb.uptime_s, hb.config_hash
                row.outbox = hb.outbox.model_dump()
                if row.offline_alert is not None:
                    events += self._clear_edge_offline(session, row, now)
            session.flush()
            events.append(("edge", self._edge_dict(row)))
            return events

        self._emit(self._write(apply))

    def _edge_area(self, edge: str) -> str | None:
        try:
            areas = self.site.edge(edge).areas
        except KeyError:
            return None
        return areas[0] if len(areas) == 1 else None

    def _raise_edge_offline(self, session: Session, row: EdgeRow, now: datetime, reason: str) -> Events:
        alert = Alert(
            id=f"c-{uuid7().hex}",
            rule="edge.offline",
            level=Level.HIGH.value,
            condition=Condition.ACTIVE.value,
            workflow=WorkflowState.NEW.value,
            site=self.site.site.id,
            edge=row.id,
            area=self._edge_area(row.id),
            grid=None,
            zone=None,
            subject_kind="device",
            subject_id=row.id,
            devices=[],
            title=f"Edge {row.id} offline",
            detail={"reason": reason, "last_heartbeat": _ts(row.last_heartbeat)},
            snapshot=None,
            suppressed=None,
            origin="central",
            first_seen=now,
            edge_ts=now,
            last_change=now,
            escalation_step=0,
        )
        session.add(alert)
        session.flush()
        session.add(
            Transition(
                event_id=new_event_id(),
                alert_id=alert.id,
                ts=now,
                received_at=now,
                level=alert.level,
                condition=alert.condition,
                title=alert.title,
                detail=alert.detail,
                snapshot=None,
                suppressed=None,
            )
        )
        self._entry(session, alert, now, SYSTEM, "raised", None, alert.workflow, note=reason)
        row.offline_alert = alert.id
        audit_log.append(session, now, SYSTEM, "edge.offline", f"edge:{row.id}", {"alert": alert.id, "reason": reason})
        log.warning("edge %s is offline (%s); raised alert %s", row.id, reason, alert.id)
        return [("alert", alert_item(alert))]

    def _clear_edge_offline(self, session: Session, row: EdgeRow, now: datetime) -> Events:
        alert = session.get(Alert, row.offline_alert) if row.offline_alert else None
        row.offline_alert = None
        audit_log.append(session, now, SYSTEM, "edge.online", f"edge:{row.id}", {})
        if alert is None:
            return []
        alert.condition = Condition.CLEARED.value
        alert.edge_ts = now
        alert.last_change = _later(alert.last_change, now)
        session.add(
            Transition(
                event_id=new_event_id(),
                alert_id=alert.id,
                ts=now,
                received_at=now,
                level=alert.level,
                condition=alert.condition,
                title=alert.title,
                detail=alert.detail,
                snapshot=None,
                suppressed=None,
            )
        )
        self._entry(session, alert, now, SYSTEM, "cleared", alert.workflow, alert.workflow, note="heartbeat received")
        return [("alert", alert_item(alert))]

    def ingest_snapshot(self, edge: str, sha256: str, jpeg: bytes) -> bool:
        """Store a JPEG under its sha256. False if it was already stored or its bytes do not match the name."""
        actual = hashlib.sha256(jpeg).hexdigest()
        if actual != sha256:
            log.warning("snapshot from edge %s named %s hashes to %s; dropped", edge, sha256, actual)
            return False
        try:
            with self.db.write() as session:
                if session.get(Snapshot, sha256) is not None:
                    return False
                session.add(Snapshot(sha256=sha256, edge=edge, received_at=self.clock.now(), jpeg=jpeg))
        except IntegrityError:
            return False
        return True

    def register_command(
        self, request_id: str, name: str, body: dict[str, Any], actor: Actor, edge: str | None = None
    ) -> None:
        """Record a command the API sends to an edge (so its cmd_result can be tied to a grid) and audit it."""
        now = self.clock.now()
        grid = body.get("grid") if isinstance(body.get("grid"), str) else None

        def apply(session: Session) -> None:
            session.add(
                Command(
                    request_id=request_id, name=name, edge=edge, grid=grid, body=body, actor=actor.username, sent_at=now
                )
            )
            audit_log.append(session, now, actor.username, f"cmd.{name}", f"request:{request_id}", {"body": body})

        try:
            with self.db.write() as session:
                apply(session)
        except IntegrityError:
            raise WorkflowError(409, f"request id {request_id!r} was used before") from None

    def ingest_cmd_result(self, edge: str, r: CmdResult) -> None:
        now = self.clock.now()

        def apply(session: Session) -> None:
            row = session.execute(select(Command).where(Command.request_id == r.request_id).with_for_update()).scalar()
            if row is None:
                row = Command(request_id=r.request_id, edge=edge, body={})
                session.add(row)
            row.ok, row.result, row.result_at = r.ok, dict(r.result), now
            if row.grid is None and isinstance(r.result.get("grid"), str):
                row.grid = r.result["grid"]

        self._write(apply)

    def record_positions(self, edge: str, body: TelemetryBody) -> None:
        latest: dict[str, dict[str, Any]] = {}
        row: dict[str, Any]
        for p in body.batch:
            if p.m == "position" and "tag" in p.tags:
                tag = p.tags["tag"]
                x, y = p.fields.get("x"), p.fields.get("y")
                if not isinstance(x, int | float) or not isinstance(y, int | float):
                    continue
                z = p.fields.get("z")
                grid = p.tags.get("grid") or self._grid_at(float(x), float(y))
                row = {
                    "key": f"tag:{tag}",
                    "kind": "position",
                    "person": p.tags.get("person") or self._tag_person.get(tag),
                    "grid": grid,
                    "edge": edge,
                    "ts": p.ts,
                    "x": float(x),
                    "y": float(y),
                    "z": float(z) if isinstance(z, int | float) else None,
                    "lat": None,
                    "lon": None,
                    "acc_m": None,
                }
            elif p.m == "gps" and "band" in p.tags:
                band = p.tags["band"]
                lat, lon, acc = p.fields.get("lat"), p.fields.get("lon"), p.fields.get("acc_m")
                if not isinstance(lat, int | float) or not isinstance(lon, int | float):
                    continue
                row = {
                    "key": f"band:{band}",
                    "kind": "gps",
                    "person": p.tags.get("person") or self._band_person.get(band),
                    "grid": None,
                    "edge": edge,
                    "ts": p.ts,
                    "x": None,
                    "y": None,
                    "z": None,
                    "lat": float(lat),
                    "lon": float(lon),
                    "acc_m": float(acc) if isinstance(acc, int | float) else None,
                }
            else:
                continue
            current = latest.get(row["key"])
            if current is None or current["ts"] <= row["ts"]:
                latest[row["key"]] = row
        if not latest:
            return
        rows = list(latest.values())
        insert = pg_insert if self.db.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(PositionRow).values(rows)
        updated = {c: getattr(stmt.excluded, c) for c in rows[0] if c != "key"}
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"], set_=updated, where=PositionRow.ts <= stmt.excluded.ts
        )
        with self.db.write() as session:
            session.execute(stmt)

    def _grid_at(self, x: float, y: float) -> str | None:
        point = Point(x, y)
        return next((gid for gid, shape in self._grid_shapes.items() if shape.covers(point)), None)

    # -- queries -------------------------------------------------------------------------------
    def list_alerts(
        self,
        *,
        state: WorkflowState | str | None = None,
        level: Level | str | None = None,
        rule: str | None = None,
        site: str | None = None,
        area: str | None = None,
        grid: str | None = None,
        condition: Condition | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Alerts newest first by last_change; `since`/`until` bound last_change; `state` is the workflow state."""
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise WorkflowError(422, f"`limit` must be 1..{MAX_LIMIT}")
        _require_aware("since", since)
        _require_aware("until", until)
        query = select(Alert)
        for column, value in (
            (Alert.workflow, _enum(WorkflowState, "state", state)),
            (Alert.level, _enum(Level, "level", level)),
            (Alert.condition, _enum(Condition, "condition", condition)),
            (Alert.rule, rule),
            (Alert.site, site),
            (Alert.area, area),
            (Alert.grid, grid),
        ):
            if value is not None:
                query = query.where(column == str(value))
        if since is not None:
            query = query.where(Alert.last_change >= since)
        if until is not None:
            query = query.where(Alert.last_change < until)
        if cursor:
            c = _decode_cursor(cursor)
            try:
                after_ts, after_id = datetime.fromisoformat(c["t"]), str(c["id"])
            except (KeyError, TypeError, ValueError):
                raise WorkflowError(422, "cursor is not one this server gave out") from None
            query = query.where(
                or_(Alert.last_change < after_ts, and_(Alert.last_change == after_ts, Alert.id < after_id))
            )
        query = query.order_by(Alert.last_change.desc(), Alert.id.desc()).limit(limit + 1)
        with self.db.read() as session:
            rows = session.execute(query).scalars().all()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more and rows:
            last = rows[-1]
            next_cursor = _encode_cursor({"t": last.last_change.isoformat(), "id": last.id})
        return [alert_item(a) for a in rows], next_cursor

    def get_alert(self, alert_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            alert = session.get(Alert, alert_id)
            if alert is None:
                raise WorkflowError(404, f"no alert {alert_id!r}")
            transitions = (
                session.execute(
                    select(Transition).where(Transition.alert_id == alert_id).order_by(Transition.ts, Transition.id)
                )
                .scalars()
                .all()
            )
            entries = (
                session.execute(
                    select(WorkflowEntry).where(WorkflowEntry.alert_id == alert_id).order_by(WorkflowEntry.id)
                )
                .scalars()
                .all()
            )
            shas = list(dict.fromkeys(t.snapshot for t in transitions if t.snapshot))
            if alert.snapshot and alert.snapshot not in shas:
                shas.append(alert.snapshot)
            stored = (
                set(session.execute(select(Snapshot.sha256).where(Snapshot.sha256.in_(shas))).scalars())
                if shas
                else set()
            )
            events: Sequence[DeviceEventRow] = []
            if alert.devices:
                events = (
                    session.execute(
                        select(DeviceEventRow)
                        .where(
                            DeviceEventRow.device.in_(list(alert.devices)),
                            DeviceEventRow.ts >= alert.first_seen - EVIDENCE_WINDOW,
                            DeviceEventRow.ts <= alert.first_seen + EVIDENCE_WINDOW,
                        )
                        .order_by(DeviceEventRow.ts, DeviceEventRow.id)
                        .limit(500)
                    )
                    .scalars()
                    .all()
                )
        item = alert_item(alert)
        item["transitions"] = [
            {
                "event_id": t.event_id,
                "ts": _ts(t.ts),
                "received_at": _ts(t.received_at),
                "level": t.level,
                "condition": t.condition,
                "title": t.title,
                "detail": t.detail,
                "snapshot": t.snapshot,
                "suppressed": t.suppressed,
            }
            for t in transitions
        ]
        item["history"] = [_entry_dict(e) for e in entries]
        snap_ts = {t.snapshot: _ts(t.ts) for t in reversed(transitions) if t.snapshot}
        item["evidence"] = {
            "snapshots": [{"sha256": sha, "ts": snap_ts.get(sha), "stored": sha in stored} for sha in shas],
            "events": [
                {"ts": _ts(e.ts), "device": e.device, "kind": e.kind, "data": e.data, "edge": e.edge} for e in events
            ],
        }
        item["response_plan"] = self._plan_status(alert.rule, entries)
        return item

    def _plan_status(self, rule: str, entries: Sequence[WorkflowEntry]) -> dict[str, Any] | None:
        plan = self.site.response_plans.get(rule)
        if not plan:
            return None
        done: set[str] = set()
        for e in entries:
            if e.action == "resolve":
                done = set(e.data.get("steps_done", []))
        return {"rule": rule, "steps": [{"step": step, "done": step in done} for step in plan]}

    def positions(self) -> list[dict[str, Any]]:
        with self.db.read() as session:
            rows = session.execute(select(PositionRow).order_by(PositionRow.key)).scalars().all()
        return [self._position_dict(r) for r in rows]

    @staticmethod
    def _position_dict(r: PositionRow) -> dict[str, Any]:
        kind, source = r.key.split(":", 1)
        out: dict[str, Any] = {
            "person": r.person,
            kind: source,
            "kind": r.kind,
            "grid": r.grid,
            "ts": _ts(r.ts),
            "edge": r.edge,
        }
        if r.kind == "gps":
            out.update(lat=r.lat, lon=r.lon, acc_m=r.acc_m)
        else:
            out.update(x=r.x, y=r.y, z=r.z)
        return out

    def person_location(self, person_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            row = session.execute(
                select(PositionRow).where(PositionRow.person == person_id).order_by(PositionRow.ts.desc()).limit(1)
            ).scalar()
        if row is None:
            if person_id in self._people:
                raise WorkflowError(404, f"no position known for person {person_id!r}")
            raise WorkflowError(404, f"no person {person_id!r}")
        return self._position_dict(row)

    def headcount(self, grid_id: str) -> dict[str, Any]:
        if grid_id not in self._grids:
            raise WorkflowError(404, f"no grid {grid_id!r}")
        _area, grid = self._grids[grid_id]
        assigned = sorted(p.id for p in self.site.people if p.grid == grid_id and p.role.value != "staff")
        expected = grid.expected_headcount or len(assigned)
        with self.db.read() as session:
            call = session.execute(
                select(Command)
                .where(Command.grid == grid_id, Command.result.is_not(None), Command.ok.is_(True))
                .order_by(Command.result_at.desc())
                .limit(1)
            ).scalar()
            if call is not None and call.result is not None:
                result = call.result
                present_raw = result.get("present", [])
                present = sorted(present_raw) if isinstance(present_raw, list) else []
                count = present_raw if isinstance(present_raw, int) else len(present)
                missing = result.get("missing")
                if not isinstance(missing, list):
                    missing = [p for p in assigned if p not in present]
                return {
                    "grid": grid_id,
                    "expected": result.get("expected", expected),
                    "present": count,
                    "present_ids": present,
                    "missing": sorted(missing),
                    "source": "rollcall",
                    "request_id": call.request_id,
                    "ts": _ts(call.result_at),
                }
            fresh_after = self.clock.now() - POSITION_FRESH
            rows = (
                session.execute(
                    select(PositionRow).where(PositionRow.kind == "position", PositionRow.ts >= fresh_after)
                )
                .scalars()
                .all()
            )
        shape = self._grid_shapes[grid_id]
        inside = sorted(
            {
                r.person
                for r in rows
                if r.person and r.x is not None and r.y is not None and shape.covers(Point(r.x, r.y))
            }
        )
        present = [p for p in inside if p not in self._people or self._people[p].role.value != "staff"]
        return {
            "grid": grid_id,
            "expected": expected,
            "present": len(present),
            "present_ids": present,
            "missing": [p for p in assigned if p not in present],
            "source": "positions",
            "ts": _ts(self.clock.now()),
        }

    @staticmethod
    def _edge_dict(row: EdgeRow) -> dict[str, Any]:
        return {
            "id": row.id,
            "online": row.online,
            "last_seen": _ts(row.last_heartbeat),
            "version": row.version,
            "uptime_s": row.uptime_s,
            "config_hash": row.config_hash,
            "outbox": row.outbox,
            "offline_alert": row.offline_alert,
        }

    def edges(self) -> list[dict[str, Any]]:
        with self.db.read() as session:
            rows = {r.id: r for r in session.execute(select(EdgeRow)).scalars()}
        out = [self._edge_dict(r) for r in rows.values()]
        out += [
            {
                "id": e.id,
                "online": False,
                "last_seen": None,
                "version": None,
                "uptime_s": None,
                "config_hash": None,
                "outbox": {},
                "offline_alert": None,
            }
            for e in self.site.edges
            if e.id not in rows
        ]
        return sorted(out, key=lambda e: e["id"])

    @staticmethod
    def _device_dict(row: DeviceRow) -> dict[str, Any]:
        return {
            "id": row.id,
            "edge": row.edge,
            "family": row.family,
            "online": row.online,
            "last_seen": _ts(row.last_seen),
            "battery": row.battery,
            "dead_letters": row.dead_letters,
            "out_of_service_until": _ts(row.out_of_service_until),
            "out_of_service_reason": row.out_of_service_reason,
        }

    def devices(self) -> list[dict[str, Any]]:
        with self.db.read() as session:
            rows = {r.id: r for r in session.execute(select(DeviceRow)).scalars()}
        out = [self._device_dict(r) for r in rows.values()]
        out += [
            {
                "id": d.id,
                "edge": None,
                "family": d.family.value,
                "online": None,
                "last_seen": None,
                "battery": None,
                "dead_letters": 0,
                "out_of_service_until": None,
                "out_of_service_reason": None,
            }
            for d in self.site.devices
            if d.id not in rows
        ]
        return sorted(out, key=lambda d: d["id"])

    def snapshot(self, sha256: str) -> bytes | None:
        with self.db.read() as session:
            row = session.get(Snapshot, sha256)
        return None if row is None else bytes(row.jpeg)

    def ready(self) -> bool:
        return self.db.ping()

    # -- workflow (CONTRACT §4.1) ----------------------------------------------------------------
    def _act(
        self,
        alert_id: str,
        actor: Actor,
        command: Cmd,
        note: str | None,
        *,
        shelve_until: datetime | None = None,
        mutate: Callable[[Session, Alert, datetime], tuple[dict[str, Any], Events]] | None = None,
    ) -> dict[str, Any]:
        """One workflow command: decide, apply, history entry + audit record in one transaction, then publish."""
        now = self.clock.now()

        def apply(session: Session) -> tuple[dict[str, Any], Events]:
            alert = self._lock_alert(session, alert_id)
            before = alert.workflow
            facts = AlertFacts(WorkflowState(before), Condition(alert.condition), Level(alert.level))
            after = decide(facts, command, actor, now, shelve_until=shelve_until)
            data, events = mutate(session, alert, now) if mutate else ({}, [])
            alert.workflow = after.value
            alert.last_change = _later(alert.last_change, now)
            self._entry(session, alert, now, actor.username, command.value, before, after.value, note, data)
            audit_log.append(
                session,
                now,
                actor.username,
                f"alert.{command.value}",
                f"alert:{alert_id}",
                {"from": before, "to": after.value, "note": note, **data},
            )
            session.flush()
            item = alert_item(alert)
            return item, [("alert", item), *events]

        item, events = self._write(apply)
        self._emit(events)
        return item

    def ack(self, alert_id: str, actor: Actor, note: str | None = None) -> dict[str, Any]:
        return self._act(alert_id, actor, Cmd.ACK, _check_note(note))

    def dispatch(self, alert_id: str, actor: Actor, officer: str, note: str | None = None) -> dict[str, Any]:
        _check_id("officer", officer)

        def mutate(session: Session, alert: Alert, now: datetime) -> tuple[dict[str, Any], Events]:
            alert.officer = officer
            return {"officer": officer}, []

        return self._act(alert_id, actor, Cmd.DISPATCH, _check_note(note), mutate=mutate)

    def resolve(
        self,
        alert_id: str,
        actor: Actor,
        resolution: Resolution | str,
        note: str | None,
        steps_done: list[str] | None = None,
    ) -> dict[str, Any]:
        res: Resolution = _enum(Resolution, "resolution", resolution)
        if res is None:
            raise WorkflowError(422, "`resolution` is required")
        _check_note(note)
        done = list(steps_done or [])

        def mutate(session: Session, alert: Alert, now: datetime) -> tuple[dict[str, Any], Events]:
            plan = self.site.response_plans.get(alert.rule, [])
            unknown = [s for s in done if s not in plan]
            if unknown:
                raise WorkflowError(422, f"steps not in the response plan of {alert.rule}: {unknown}")
            alert.resolution = res.value
            data: dict[str, Any] = {"resolution": res.value, "steps_done": done}
            skipped = [s for s in plan if s not in done]
            if not skipped:
                return data, []
            target = f"area:{alert.area}" if alert.area else "command"
            self._entry(
                session,
                alert,
                now,
                actor.username,
                "steps_skipped",
                alert.workflow,
                alert.workflow,
                note,
                {"skipped": skipped, "notified": target},
            )
            audit_log.append(
                session,
                now,
                actor.username,
                "alert.steps_skipped",
                f"alert:{alert.id}",
                {"skipped": skipped, "notified": target},
            )
            notice = {
                "kind": "steps_skipped",
                "id": alert.id,
                "rule": alert.rule,
                "level": alert.level,
                "to": target,
                "supervisor": self._supervisors.get(alert.area or ""),
                "by": actor.username,
                "skipped": skipped,
                "ts": _ts(now),
            }
            return {**data, "steps_skipped": skipped}, [("escalation", notice)]

        return self._act(alert_id, actor, Cmd.RESOLVE, note, mutate=mutate)

    def close(self, alert_id: str, actor: Actor, note: str | None = None) -> dict[str, Any]:
        return self._act(alert_id, actor, Cmd.CLOSE, _check_note(note))

    def shelve(self, alert_id: str, actor: Actor, until: datetime, reason: str) -> dict[str, Any]:
        _require_aware("until", until)
        _check_note(reason, required=True, name="reason")

        def mutate(session: Session, alert: Alert, now: datetime) -> tuple[dict[str, Any], Events]:
            alert.shelved_from = alert.workflow
            alert.shelved_until = until
            return {"until": _ts(until)}, []

        return self._act(alert_id, actor, Cmd.SHELVE, reason, shelve_until=until, mutate=mutate)

    def comment(self, alert_id: str, actor: Actor, note: str) -> dict[str, Any]:
        return self._act(alert_id, actor, Cmd.COMMENT, _check_note(note, required=True))

    # -- time-driven: escalation, shelving, edge silence, maintenance expiry ---------------------
    def tick(self, now: datetime) -> None:
        """Run everything that happens because time passed; call every second or so."""
        self._unshelve_due(now)
        self._escalate_due(now)
        self._edges_silent(now)
        self._maintenance_expired(now)

    def _unshelve_due(self, now: datetime) -> None:
        with self.db.read() as session:
            due = (
                session.execute(
                    select(Alert.id).where(Alert.workflow == WorkflowState.SHELVED.value, Alert.shelved_until <= now)
                )
                .scalars()
                .all()
            )
        for alert_id in due:

            def apply(session: Session, alert_id: str = alert_id) -> Events:
                alert = self._lock_alert(session, alert_id)
                if not unshelve_due(WorkflowState(alert.workflow), alert.shelved_until, now):
                    return []
                back = alert.shelved_from or WorkflowState.NEW.value
                alert.workflow, alert.shelved_from, alert.shelved_until = back, None, None
                alert.last_change = _later(alert.last_change, now)
                self._entry(
                    session, alert, now, SYSTEM, "unshelve", WorkflowState.SHELVED.value, back, "shelve time ended"
                )
                audit_log.append(
                    session,
                    now,
                    SYSTEM,
                    "alert.unshelve",
                    f"alert:{alert_id}",
                    {"from": WorkflowState.SHELVED.value, "to": back},
                )
                session.flush()
                return [("alert", alert_item(alert))]

            self._emit(self._write(apply))

    def _escalation_due(self, alert: Alert, now: datetime) -> bool:
        """Step k is due at first_seen + (k+1) × the level's delay, so late ticks keep the schedule."""
        delay = timedelta(seconds=self.site.central.escalation.after(Level(alert.level)))
        return now >= alert.first_seen + delay * (alert.escalation_step + 1)

    def _escalate_due(self, now: datetime) -> None:
        with self.db.read() as session:
            candidates = (
                session.execute(
                    select(Alert).where(
                        Alert.workflow == WorkflowState.NEW.value, Alert.escalation_step < 2, Alert.suppressed.is_(None)
                    )
                )
                .scalars()
                .all()
            )
        for candidate in candidates:
            if not self._escalation_due(candidate, now):
                continue

            def apply(session: Session, alert_id: str = candidate.id) -> Events:
                alert = self._lock_alert(session, alert_id)
                events: Events = []
                while (
                    alert.workflow == WorkflowState.NEW.value
                    and alert.escalation_step < 2
                    and self._escalation_due(alert, now)
                ):
                    target = escalation_target(alert.escalation_step, alert.area)
                    if target is None:
                        break
                    before = alert.escalated_to
                    alert.escalation_step = 2 if target == "command" else alert.escalation_step + 1
                    alert.escalated_to, alert.escalated_at = target, now
                    alert.last_change = _later(alert.last_change, now)
                    data = {"escalated_to": target, "escalated_from": before, "level": alert.level}
                    self._entry(
                        session,
                        alert,
                        now,
                        SYSTEM,
                        "escalate",
                        alert.workflow,
                        alert.workflow,
                        f"not acknowledged; escalated to {target}",
                        data,
                    )
                    audit_log.append(session, now, SYSTEM, "alert.escalate", f"alert:{alert.id}", data)
                    supervisor = self._supervisors.get(alert.area or "") if target.startswith("area:") else None
                    events.append(
                        (
                            "escalation",
                            {
                                "kind": "unacknowledged",
                                "id": alert.id,
                                "rule": alert.rule,
                                "level": alert.level,
                                "to": target,
                                "supervisor": supervisor,
                                "title": alert.title,
                                "ts": _ts(now),
                            },
                        )
                    )
                session.flush()
                return [*events, ("alert", alert_item(alert))] if events else []

            self._emit(self._write(apply))

    def _edges_silent(self, now: datetime) -> None:
        limit = timedelta(seconds=self.site.central.edge_offline_s)
        with self.db.read() as session:
            rows = {
                r.id: (r.online, r.last_heartbeat, r.offline_alert) for r in session.execute(select(EdgeRow)).scalars()
            }
        silent = [
            eid
            for eid, (online, last, alert) in rows.items()
            if alert is None and online and (last is None or now - last > limit)
        ]
        if now - self._started > limit:  # configured edges never heard from since central started
            silent += [e.id for e in self.site.edges if e.id not in rows]
        for edge_id in silent:

            def apply(session: Session, edge_id: str = edge_id) -> Events:
                row = session.execute(select(EdgeRow).where(EdgeRow.id == edge_id).with_for_update()).scalar()
                if row is None:
                    row = EdgeRow(id=edge_id, online=True, outbox={})
                    session.add(row)
                elif (
                    row.offline_alert is not None
                    or not row.online
                    or (row.last_heartbeat is not None and now - row.last_heartbeat <= limit)
                ):
                    return []
                row.online = False
                seconds = int(limit.total_seconds())
                events = self._raise_edge_offline(session, row, now, f"no heartbeat for {seconds} s")
                session.flush()
                return [*events, ("edge", self._edge_dict(row))]

            self._emit(self._write(apply))

    def _maintenance_expired(self, now: datetime) -> None:
        with self.db.read() as session:
            due = session.execute(select(DeviceRow.id).where(DeviceRow.out_of_service_until <= now)).scalars().all()
        for device_id in due:

            def apply(session: Session, device_id: str = device_id) -> Events:
                row = session.get(DeviceRow, device_id)
                if row is None or row.out_of_service_until is None or row.out_of_service_until > now:
                    return []
                row.out_of_service_until, row.out_of_service_reason = None, None
                audit_log.append(
                    session,
                    now,
                    SYSTEM,
                    "device.in_service",
                    f"device:{device_id}",
                    {"reason": "out-of-service time ended"},
                )
                return [("device", self._device_dict(row))]

            self._emit(self._write(apply))

    # -- maintenance and walk tests (bookkeeping; the API sends the edge command) -----------------
    def _device_known(self, session: Session, device_id: str) -> DeviceRow:
        row = session.execute(select(DeviceRow).where(DeviceRow.id == device_id).with_for_update()).scalar()
        if row is None:
            if self.site.device(device_id) is None:
                raise WorkflowError(404, f"no device {device_id!r}")
            config = self.site.device(device_id)
            row = DeviceRow(id=device_id, family=config.family.value if config else None, dead_letters=0)
            session.add(row)
        return row

    def set_out_of_service(self, device_id: str, actor: Actor, until: datetime, reason: str) -> dict[str, Any]:
        authorise_maintenance(actor)
        _require_aware("until", until)
        _check_note(reason, required=True, name="reason")
        now = self.clock.now()
        if until <= now:
            raise WorkflowError(422, "`until` must be in the future")

        def apply(session: Session) -> dict[str, Any]:
            row = self._device_known(session, device_id)
            row.out_of_service_until, row.out_of_service_reason = until, reason
            audit_log.append(
                session,
                now,
                actor.username,
                "device.out_of_service",
                f"device:{device_id}",
                {"until": _ts(until), "reason": reason},
            )
            session.flush()
            return self._device_dict(row)

        item = self._write(apply)
        self._emit([("device", item)])
        return item

    def set_in_service(self, device_id: str, actor: Actor) -> dict[str, Any]:
        authorise_maintenance(actor)
        now = self.clock.now()

        def apply(session: Session) -> dict[str, Any]:
            row = self._device_known(session, device_id)
            row.out_of_service_until, row.out_of_service_reason = None, None
            audit_log.append(session, now, actor.username, "device.in_service", f"device:{device_id}", {})
            session.flush()
            return self._device_dict(row)

        item = self._write(apply)
        self._emit([("device", item)])
        return item

    def start_walk_test(self, zone_id: str, actor: Actor, minutes: float) -> dict[str, Any]:
        authorise_maintenance(actor)
        if self.site.zone(zone_id) is None:
            raise WorkflowError(404, f"no zone {zone_id!r}")
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0 < minutes <= 240:
            raise WorkflowError(422, "`minutes` must be more than 0 and at most 240")
        now = self.clock.now()
        until = now + timedelta(minutes=minutes)

        def apply(session: Session) -> dict[str, Any]:
            test = WalkTest(zone=zone_id, actor=actor.username, started=now, until=until)
            session.add(test)
            session.flush()
            audit_log.append(
                session, now, actor.username, "zone.walk_test", f"zone:{zone_id}", {"id": test.id, "until": _ts(until)}
            )
            return {"id": test.id, "zone": zone_id, "started": _ts(now), "until": _ts(until), "by": actor.username}

        return self._write(apply)

    # -- KPIs ----------------------------------------------------------------------------------
    def kpi(self, now: datetime, window_s: float = 86400) -> dict[str, Any]:
        _require_aware("now", now)
        if not 600 <= window_s <= 90 * 86400:
            raise WorkflowError(422, "`window_s` must be between 600 and 7776000")
        start = now - timedelta(seconds=window_s)
        perimeter = [z.id for z in self.site.zones if z.kind is ZoneKind.PERIMETER]
        with self.db.read() as session:
            alerts = (
                session.execute(select(Alert).where(Alert.first_seen >= start, Alert.first_seen <= now)).scalars().all()
            )
            standing = (
                session.execute(
                    select(Alert)
                    .where(
                        Alert.condition == Condition.ACTIVE.value,
                        Alert.first_seen < now - kpi_mod.STANDING_AFTER,
                        Alert.workflow != WorkflowState.CLOSED.value,
                        Alert.suppressed.is_(None),
                    )
                    .order_by(Alert.first_seen)
                )
                .scalars()
                .all()
            )
            tests = (
                session.execute(select(WalkTest).where(WalkTest.until >= start, WalkTest.started <= now))
                .scalars()
                .all()
            )
            actions = session.execute(
                select(WorkflowEntry.actor, WorkflowEntry.action, WorkflowEntry.ts, Alert.first_seen)
                .join(Alert, Alert.id == WorkflowEntry.alert_id)
                .where(
                    WorkflowEntry.ts >= start,
                    WorkflowEntry.ts <= now,
                    WorkflowEntry.actor != SYSTEM,
                    WorkflowEntry.action.in_([c.value for c in Cmd]),
                )
            ).all()
        alarms = [
            kpi_mod.AlarmRecord(
                a.id,
                a.rule,
                a.level,
                a.area,
                a.grid,
                a.zone,
                f"{a.subject_kind}:{a.subject_id}",
                a.first_seen,
                a.resolution,
            )
            for a in alerts
            if a.suppressed is None
        ]
        hits: dict[str, list[datetime]] = {}
        for a in alerts:
            if a.suppressed == "walk_test" and a.zone is not None:
                hits.setdefault(a.zone, []).append(a.first_seen)
        return kpi_mod.compute(
            now,
            window_s,
            alarms,
            [{"id": a.id, "rule": a.rule, "zone": a.zone, "first_seen": _ts(a.first_seen)} for a in standing],
            perimeter,
            [kpi_mod.WalkTestRecord(t.zone, t.started, t.until) for t in tests],
            hits,
            [kpi_mod.AckRecord(r.actor, r.action, r.ts, r.first_seen) for r in actions],
        )

    # -- audit ---------------------------------------------------------------------------------
    def audit(
        self, *, since: datetime | None = None, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Audit records newest first (by seq); the cursor continues with older ones."""
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise WorkflowError(422, f"`limit` must be 1..{MAX_LIMIT}")
        _require_aware("since", since)
        query = select(AuditRecord)
        if since is not None:
            query = query.where(AuditRecord.ts >= since)
        if cursor:
            seq = _decode_cursor(cursor).get("seq")
            if not isinstance(seq, int):
                raise WorkflowError(422, "cursor is not one this server gave out")
            query = query.where(AuditRecord.seq < seq)
        with self.db.read() as session:
            rows = session.execute(query.order_by(AuditRecord.seq.desc()).limit(limit + 1)).scalars().all()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor({"seq": rows[-1].seq}) if more and rows else None
        return [audit_log.to_dict(r) for r in rows], next_cursor

    def audit_verify(self) -> dict[str, Any]:
        with self.db.read() as session:
            return audit_log.verify(session)

    # -- users ---------------------------------------------------------------------------------
    def ensure_admin(self, password: str) -> None:
        """Create user `admin` (role admin) with this password unless it already exists."""
        _check_note(password, required=True, name="password")
        with self.db.read() as session:
            if session.get(UserRow, "admin") is not None:
                return
        try:
            self.create_user("admin", password, UserRole.ADMIN)
        except WorkflowError as exc:
            if exc.status != 409:  # another process created it first
                raise

    def create_user(self, username: str, password: str, role: UserRole | str, name: str = "") -> None:
        _check_id("username", username)
        _check_note(password, required=True, name="password")
        user_role: UserRole = _enum(UserRole, "role", role)
        now = self.clock.now()
        try:
            with self.db.write() as session:
                session.add(
                    UserRow(
                        username=username,
                        role=user_role.value,
                        name=name,
                        password_hash=hash_password(password),
                        created_at=now,
                    )
                )
                session.flush()
                audit_log.append(session, now, SYSTEM, "user.create", f"user:{username}", {"role": user_role.value})
        except IntegrityError:
            raise WorkflowError(409, f"user {username!r} exists") from None

    def authenticate(self, username: str, password: str) -> Actor | None:
        with self.db.read() as session:
            row = session.get(UserRow, username)
        if not verify_password(row.password_hash if row else None, password) or row is None:
            return None
        if needs_rehash(row.password_hash):
            with self.db.write() as session:
                fresh = session.get(UserRow, username)
                if fresh is not None:
                    fresh.password_hash = hash_password(password)
        return Actor(row.username, UserRole(row.role))

    def sync_config_users(self) -> None:
        """Create or update `central.users` from the config; a user without a password is skipped."""
        now = self.clock.now()
        for user in self.site.central.users:
            if not user.password:
                log.info("config user %s has no password (set its ${VAR}); not created", user.username)
                continue
            password = user.password

            def apply(session: Session, user: Any = user, password: str = password) -> None:
                row = session.execute(
                    select(UserRow).where(UserRow.username == user.username).with_for_update()
                ).scalar()
                if row is None:
                    session.add(
                        UserRow(
                            username=user.username,
                            role=user.role.value,
                            name=user.name,
                            password_hash=hash_password(password),
                            created_at=now,
                        )
                    )
                    session.flush()
                    audit_log.append(
                        session,
                        now,
                        SYSTEM,
                        "user.create",
                        f"user:{user.username}",
                        {"role": user.role.value, "source": "config"},
                    )
                    return
                changed: dict[str, Any] = {}
                if row.role != user.role.value:
                    changed["role"] = user.role.value
                    row.role = user.role.value
                if not verify_password(row.password_hash, password):
                    changed["password_changed"] = True
                    row.password_hash = hash_password(password)
                row.name = user.name or row.name
                if changed:
                    audit_log.append(
                        session, now, SYSTEM, "user.update", f"user:{user.username}", {**changed, "source": "config"}
                    )

            self._write(apply)
