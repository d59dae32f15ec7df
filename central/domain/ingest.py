"""Storing what edges send: alert transitions, device events and health, heartbeats, snapshots,
command results and latest positions.

Every body with an `event_id` is stored exactly once (see `Core.ingest_once`), because MQTT QoS 1
and the edge outbox both redeliver. Messages may arrive late and out of order, so each write keeps
the newer of what is stored and what arrived instead of trusting arrival order.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from shapely.geometry import Point
from sqlalchemy import Table, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central import audit as audit_log
from central.domain.core import Core, Events, insert_entry, later
from central.domain.edge_offline import clear_edge_offline, raise_edge_offline
from central.domain.views import alert_item, device_dict, edge_dict
from central.store.models import (
    Alert,
    Base,
    Command,
    DeviceEventRow,
    DeviceRow,
    EdgeRow,
    PositionRow,
    Snapshot,
)
from central.workflow import Actor, WorkflowError
from gridwatch.contract.enums import Level, WorkflowState
from gridwatch.contract.uplink import (
    AlertTransition,
    CmdResult,
    DevicesBody,
    EventsBody,
    Heartbeat,
    HeartbeatWill,
    TelemetryBody,
    TelemetryPoint,
)

log = logging.getLogger(__name__)

ALERTS: Table = Base.metadata.tables["alerts"]
TRANSITIONS: Table = Base.metadata.tables["alert_transitions"]


class Uplink:
    """The write side of the uplink: one method per message kind `central.ingest` receives."""

    def __init__(self, core: Core) -> None:
        self.core = core

    # -- alerts ----------------------------------------------------------------------------------
    def ingest_alert(self, edge: str, t: AlertTransition) -> bool:
        """Store one alert transition; False if its `event_id` was stored before."""
        if t.edge != edge:
            log.warning("alert %s names edge %r but came from edge %r; keeping the topic's", t.alert_id, t.edge, edge)
        return self.core.ingest_once(t.event_id, edge, "alert", lambda s: self._apply_transition(s, edge, t))

    def _apply_transition(self, session: Session, edge: str, t: AlertTransition) -> Events:
        # Core INSERTs for the new rows (alert, history line, transition): one statement each, in
        # foreign-key order, instead of the ORM unit of work flushing each (most of ingest's time)
        now = self.core.clock.now()
        alert = session.execute(select(Alert).where(Alert.id == t.alert_id).with_for_update()).scalar_one_or_none()
        if alert is None:
            values: dict[str, Any] = {
                "id": t.alert_id,
                "rule": t.rule,
                "level": t.level.value,
                "condition": t.state.value,
                "workflow": WorkflowState.NEW.value,
                "shelved_from": None,
                "shelved_until": None,
                "site": t.site,
                "edge": edge,
                "area": t.area,
                "grid": t.grid,
                "zone": t.zone,
                "subject_kind": t.subject.kind.value,
                "subject_id": t.subject.id,
                "devices": list(t.devices),
                "title": t.title,
                "detail": dict(t.detail),
                "snapshot": t.snapshot,
                "suppressed": t.suppressed,
                "origin": "edge",
                "first_seen": t.first_seen,
                "edge_ts": t.ts,
                "last_change": later(t.ts, t.first_seen),
                "escalated_to": None,
                "escalation_step": 0,
                "escalated_at": None,
                "resolution": None,
                "officer": None,
            }
            session.execute(insert(ALERTS), values)
            item = alert_item(Alert(**values))  # transient: only read for the event
            insert_entry(
                session,
                t.alert_id,
                t.ts,
                f"edge:{edge}",
                "raised",
                None,
                WorkflowState.NEW.value,
                data={"level": t.level.value, "condition": t.state.value},
            )
        else:
            self._update_alert(session, alert, edge, t)
        session.execute(
            insert(TRANSITIONS),
            {
                "event_id": t.event_id,
                "alert_id": t.alert_id,
                "ts": t.ts,
                "received_at": now,
                "level": t.level.value,
                "condition": t.state.value,
                "title": t.title,
                "detail": dict(t.detail),
                "snapshot": t.snapshot,
                "suppressed": t.suppressed,
            },
        )
        if alert is not None:
            session.flush()  # the alert's UPDATE
            item = alert_item(alert)
        return [("alert", item)]

    @staticmethod
    def _update_alert(session: Session, alert: Alert, edge: str, t: AlertTransition) -> None:
        """A further transition: the level only rises; condition and detail follow the newest `ts`."""
        old_level = Level(alert.level)
        new_level = Level.max(old_level, t.level)
        if new_level is not old_level:
            alert.level = new_level.value
            insert_entry(
                session,
                alert.id,
                t.ts,
                f"edge:{edge}",
                "level_raised",
                alert.workflow,
                alert.workflow,
                data={"level_from": old_level.value, "level_to": new_level.value},
            )
        if t.ts >= alert.edge_ts:  # a late, older transition must not undo a newer one
            if alert.condition != t.state.value:
                insert_entry(session, alert.id, t.ts, f"edge:{edge}", t.state.value, alert.workflow, alert.workflow)
            alert.condition = t.state.value
            alert.detail = dict(t.detail)
            alert.title = t.title
            alert.suppressed = t.suppressed
            alert.edge_ts = t.ts
            alert.devices = list(dict.fromkeys([*alert.devices, *t.devices]))
        alert.snapshot = t.snapshot or alert.snapshot
        alert.last_change = later(alert.last_change, t.ts)

    # -- device events and health, edge heartbeats -----------------------------------------------
    def ingest_events(self, edge: str, body: EventsBody) -> bool:
        """Store a batch of raw device events (the evidence shown with an alert)."""

        def apply(session: Session) -> Events:
            session.add_all(
                DeviceEventRow(event_id=body.event_id, edge=edge, ts=e.ts, device=e.device, kind=e.kind, data=e.data)
                for e in body.batch
            )
            return []

        return self.core.ingest_once(body.event_id, edge, "events", apply)

    def ingest_devices(self, edge: str, body: DevicesBody) -> bool:
        """Update device health; a report older than the stored one is skipped per device."""

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
                events.append(("device", device_dict(row)))
            return events

        return self.core.ingest_once(body.event_id, edge, "devices", apply)

    def ingest_heartbeat(self, edge: str, hb: Heartbeat | HeartbeatWill) -> None:
        """Record an edge's heartbeat (clears its edge.offline) or its will (raises edge.offline)."""
        core = self.core
        now = core.clock.now()

        def apply(session: Session) -> Events:
            row = session.execute(select(EdgeRow).where(EdgeRow.id == edge).with_for_update()).scalar()
            if row is None:
                row = EdgeRow(id=edge, online=False, outbox={})
                session.add(row)
            events: Events = []
            if isinstance(hb, HeartbeatWill):
                row.online = False
                if row.offline_alert is None:
                    reason = "the edge's MQTT will reported it offline"
                    events += raise_edge_offline(session, core.site, row, now, reason)
            else:
                row.online = True
                row.last_heartbeat = now
                row.version, row.uptime_s, row.config_hash = hb.version, hb.uptime_s, hb.config_hash
                row.outbox = hb.outbox.model_dump()
                if row.offline_alert is not None:
                    events += clear_edge_offline(session, row, now)
            session.flush()
            events.append(("edge", edge_dict(row)))
            return events

        core.emit(core.write(apply))

    # -- snapshots and commands ------------------------------------------------------------------
    def ingest_snapshot(self, edge: str, sha256: str, jpeg: bytes) -> bool:
        """Store a JPEG under its sha256. False if it was already stored or its bytes do not match the name."""
        actual = hashlib.sha256(jpeg).hexdigest()
        if actual != sha256:
            log.warning("snapshot from edge %s named %s hashes to %s; dropped", edge, sha256, actual)
            return False
        try:
            with self.core.db.write() as session:
                if session.get(Snapshot, sha256) is not None:
                    return False
                session.add(Snapshot(sha256=sha256, edge=edge, received_at=self.core.clock.now(), jpeg=jpeg))
        except IntegrityError:
            return False
        return True

    def register_command(
        self, request_id: str, name: str, body: dict[str, Any], actor: Actor, edge: str | None = None
    ) -> None:
        """Record a command the API sends to an edge (so its cmd_result can be tied to a grid) and audit it."""
        now = self.core.clock.now()
        grid = body.get("grid") if isinstance(body.get("grid"), str) else None
        try:
            with self.core.db.write() as session:
                session.add(
                    Command(
                        request_id=request_id,
                        name=name,
                        edge=edge,
                        grid=grid,
                        body=body,
                        actor=actor.username,
                        sent_at=now,
                    )
                )
                audit_log.append(session, now, actor.username, f"cmd.{name}", f"request:{request_id}", {"body": body})
        except IntegrityError:
            raise WorkflowError(409, f"request id {request_id!r} was used before") from None

    def ingest_cmd_result(self, edge: str, r: CmdResult) -> None:
        """Attach an edge's answer to its command (a result may beat the command's own record)."""
        now = self.core.clock.now()

        def apply(session: Session) -> None:
            row = session.execute(select(Command).where(Command.request_id == r.request_id).with_for_update()).scalar()
            if row is None:
                row = Command(request_id=r.request_id, edge=edge, body={})
                session.add(row)
            row.ok, row.result, row.result_at = r.ok, dict(r.result), now
            if row.grid is None and isinstance(r.result.get("grid"), str):
                row.grid = r.result["grid"]

        self.core.write(apply)

    # -- positions -------------------------------------------------------------------------------
    def record_positions(self, edge: str, body: TelemetryBody) -> None:
        """Keep the latest position per tag/band (the full series goes to the time-series store)."""
        latest: dict[str, dict[str, Any]] = {}
        for p in body.batch:
            row = self._position_row(edge, p)
            if row is None:
                continue
            current = latest.get(row["key"])
            if current is None or current["ts"] <= row["ts"]:
                latest[row["key"]] = row
        if not latest:
            return
        rows = list(latest.values())
        insert = pg_insert if self.core.db.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(PositionRow).values(rows)
        updated = {c: getattr(stmt.excluded, c) for c in rows[0] if c != "key"}
        # an upsert that never moves a position back in time, whatever order batches arrive in
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"], set_=updated, where=PositionRow.ts <= stmt.excluded.ts
        )
        with self.core.db.write() as session:
            session.execute(stmt)

    def _position_row(self, edge: str, p: TelemetryPoint) -> dict[str, Any] | None:
        """A `positions` row from a tag position or band GPS point; None for other or malformed points."""
        if p.m == "position" and "tag" in p.tags:
            tag = p.tags["tag"]
            x, y = p.fields.get("x"), p.fields.get("y")
            if not isinstance(x, int | float) or not isinstance(y, int | float):
                return None
            z = p.fields.get("z")
            return {
                "key": f"tag:{tag}",
                "kind": "position",
                "person": p.tags.get("person") or self.core.tag_person.get(tag),
                "grid": p.tags.get("grid") or self._grid_at(float(x), float(y)),
                "edge": edge,
                "ts": p.ts,
                "x": float(x),
                "y": float(y),
                "z": float(z) if isinstance(z, int | float) else None,
                "lat": None,
                "lon": None,
                "acc_m": None,
            }
        if p.m == "gps" and "band" in p.tags:
            band = p.tags["band"]
            lat, lon, acc = p.fields.get("lat"), p.fields.get("lon"), p.fields.get("acc_m")
            if not isinstance(lat, int | float) or not isinstance(lon, int | float):
                return None
            return {
                "key": f"band:{band}",
                "kind": "gps",
                "person": p.tags.get("person") or self.core.band_person.get(band),
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
        return None

    def _grid_at(self, x: float, y: float) -> str | None:
        point = Point(x, y)
        return next((gid for gid, shape in self.core.grid_shapes.items() if shape.covers(point)), None)
