"""What happens because time passed: shelve expiry, escalation, silent edges, maintenance expiry.

`tick(now)` is called about once a second (by the app's tick task, or by tests with a fake
clock). Each pass first reads what is due, then handles each item in its own short transaction
that re-checks under lock, so two central processes ticking at once do each thing only once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central import audit as audit_log
from central.domain.core import SYSTEM, Core, Events, add_entry, later, lock_alert
from central.domain.edge_offline import raise_edge_offline
from central.domain.views import alert_item, device_dict, edge_dict, ts
from central.store.models import Alert, DeviceRow, EdgeRow
from central.workflow import escalation_target, unshelve_due
from gridwatch.contract.enums import Level, WorkflowState


class Timers:
    """The time-driven side of the domain; remembers when central started (for never-heard edges)."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.started = core.clock.now()

    def tick(self, now: datetime) -> None:
        """Run everything that happens because time passed; call every second or so."""
        self._unshelve_due(now)
        self._escalate_due(now)
        self._edges_silent(now)
        self._maintenance_expired(now)

    # -- shelving --------------------------------------------------------------------------------
    def _unshelve_due(self, now: datetime) -> None:
        core = self.core
        with core.db.read() as session:
            due = (
                session.execute(
                    select(Alert.id).where(Alert.workflow == WorkflowState.SHELVED.value, Alert.shelved_until <= now)
                )
                .scalars()
                .all()
            )
        for alert_id in due:

            def apply(session: Session, alert_id: str = alert_id) -> Events:
                alert = lock_alert(session, alert_id)
                if not unshelve_due(WorkflowState(alert.workflow), alert.shelved_until, now):
                    return []
                back = alert.shelved_from or WorkflowState.NEW.value
                alert.workflow, alert.shelved_from, alert.shelved_until = back, None, None
                alert.last_change = later(alert.last_change, now)
                add_entry(
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

            core.emit(core.write(apply))

    # -- escalation ------------------------------------------------------------------------------
    def _escalation_due(self, alert: Alert, now: datetime) -> bool:
        """Step k is due at first_seen + (k+1) × the level's delay, so late ticks keep the schedule."""
        return self._due(alert.level, alert.escalation_step, alert.first_seen, now)

    def _due(self, level: str, step: int, first_seen: datetime, now: datetime) -> bool:
        delay = timedelta(seconds=self.core.site.central.escalation.after(Level(level)))
        return now >= first_seen + delay * (step + 1)

    def _escalate_due(self, now: datetime) -> None:
        core = self.core
        # this runs every second: read four columns, not ORM objects of every unacknowledged alert
        with core.db.read() as session:
            candidates = session.execute(
                select(Alert.id, Alert.level, Alert.escalation_step, Alert.first_seen).where(
                    Alert.workflow == WorkflowState.NEW.value, Alert.escalation_step < 2, Alert.suppressed.is_(None)
                )
            ).all()
        for candidate_id, level, step, first_seen in candidates:
            if not self._due(level, step, first_seen, now):
                continue

            def apply(session: Session, alert_id: str = candidate_id) -> Events:
                alert = lock_alert(session, alert_id)
                events: Events = []
                # a late tick catches up on every step that fell due since, one entry each
                while (
                    alert.workflow == WorkflowState.NEW.value
                    and alert.escalation_step < 2
                    and self._escalation_due(alert, now)
                ):
                    target = escalation_target(alert.escalation_step, alert.area)
                    if target is None:
                        break
                    events.append(self._escalate(session, alert, target, now))
                session.flush()
                return [*events, ("alert", alert_item(alert))] if events else []

            core.emit(core.write(apply))

    def _escalate(self, session: Session, alert: Alert, target: str, now: datetime) -> tuple[str, dict[str, Any]]:
        """One escalation step to `target` (area supervisor, then command); returns its notice."""
        before = alert.escalated_to
        alert.escalation_step = 2 if target == "command" else alert.escalation_step + 1
        alert.escalated_to, alert.escalated_at = target, now
        alert.last_change = later(alert.last_change, now)
        data = {"escalated_to": target, "escalated_from": before, "level": alert.level}
        note = f"not acknowledged; escalated to {target}"
        add_entry(session, alert, now, SYSTEM, "escalate", alert.workflow, alert.workflow, note, data)
        audit_log.append(session, now, SYSTEM, "alert.escalate", f"alert:{alert.id}", data)
        supervisor = self.core.supervisors.get(alert.area or "") if target.startswith("area:") else None
        notice: dict[str, Any] = {
            "kind": "unacknowledged",
            "id": alert.id,
            "rule": alert.rule,
            "level": alert.level,
            "to": target,
            "supervisor": supervisor,
            "title": alert.title,
            "ts": ts(now),
        }
        return "escalation", notice

    # -- edges -----------------------------------------------------------------------------------
    def _edges_silent(self, now: datetime) -> None:
        core = self.core
        limit = timedelta(seconds=core.site.central.edge_offline_s)
        with core.db.read() as session:
            rows = {
                r.id: (r.online, r.last_heartbeat, r.offline_alert) for r in session.execute(select(EdgeRow)).scalars()
            }
        silent = [
            eid
            for eid, (online, last, alert) in rows.items()
            if alert is None and online and (last is None or now - last > limit)
        ]
        if now - self.started > limit:  # configured edges never heard from since central started
            silent += [e.id for e in core.site.edges if e.id not in rows]
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
                    return []  # another tick got there first, or a heartbeat arrived meanwhile
                row.online = False
                seconds = int(limit.total_seconds())
                events = raise_edge_offline(session, core.site, row, now, f"no heartbeat for {seconds} s")
                session.flush()
                return [*events, ("edge", edge_dict(row))]

            core.emit(core.write(apply))

    # -- maintenance -----------------------------------------------------------------------------
    def _maintenance_expired(self, now: datetime) -> None:
        core = self.core
        with core.db.read() as session:
            due = session.execute(select(DeviceRow.id).where(DeviceRow.out_of_service_until <= now)).scalars().all()
        for device_id in due:

            def apply(session: Session, device_id: str = device_id) -> Events:
                # locked: an engineer extending the maintenance meanwhile must not be undone
                row = session.get(DeviceRow, device_id, with_for_update=True)
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
                return [("device", device_dict(row))]

            core.emit(core.write(apply))
