"""Reports over the store: alarm-management KPIs and the hash-chained audit log.

The KPI arithmetic is pure (`central.kpi`); this module only gathers its inputs for a window in
one read transaction, so every figure in a report describes the same moment.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from central import audit as audit_log
from central import kpi as kpi_mod
from central.domain.checks import check_limit, decode_cursor, encode_cursor, require_aware
from central.domain.core import SYSTEM, Core
from central.domain.views import ts
from central.store.models import Alert, AuditRecord, WalkTest, WorkflowEntry
from central.workflow import Command as Cmd
from central.workflow import WorkflowError
from gridwatch.contract.enums import Condition, WorkflowState, ZoneKind

MIN_WINDOW_S = 600
MAX_WINDOW_S = 90 * 86400


class Reports:
    """KPIs and the audit log, read-only."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def kpi(self, now: datetime, window_s: float = 86400) -> dict[str, Any]:
        """Alarm-management KPIs (`central.kpi.compute`) for the `window_s` seconds ending `now`."""
        require_aware("now", now)
        if not MIN_WINDOW_S <= window_s <= MAX_WINDOW_S:
            raise WorkflowError(422, f"`window_s` must be between {MIN_WINDOW_S} and {MAX_WINDOW_S}")
        start = now - timedelta(seconds=window_s)
        perimeter = [z.id for z in self.core.site.zones if z.kind is ZoneKind.PERIMETER]
        with self.core.db.read() as session:
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
            # operators' commands only: escalation and unshelving by the system are not responses
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
            [{"id": a.id, "rule": a.rule, "zone": a.zone, "first_seen": ts(a.first_seen)} for a in standing],
            perimeter,
            [kpi_mod.WalkTestRecord(t.zone, t.started, t.until) for t in tests],
            hits,
            [kpi_mod.AckRecord(r.actor, r.action, r.ts, r.first_seen) for r in actions],
        )

    def audit(
        self, *, since: datetime | None = None, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Audit records newest first (by seq); the cursor continues with older ones."""
        check_limit(limit)
        require_aware("since", since)
        query = select(AuditRecord)
        if since is not None:
            query = query.where(AuditRecord.ts >= since)
        if cursor:
            seq = decode_cursor(cursor).get("seq")
            if not isinstance(seq, int):
                raise WorkflowError(422, "cursor is not one this server gave out")
            query = query.where(AuditRecord.seq < seq)
        with self.core.db.read() as session:
            rows = session.execute(query.order_by(AuditRecord.seq.desc()).limit(limit + 1)).scalars().all()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor({"seq": rows[-1].seq}) if more and rows else None
        return [audit_log.to_dict(r) for r in rows], next_cursor

    def audit_verify(self) -> dict[str, Any]:
        """Re-check the audit log's hash chain; the result says where it breaks, if anywhere."""
        with self.core.db.read() as session:
            return audit_log.verify(session)
