"""The `edge.offline` alert central raises itself: on an edge's MQTT will or a silent heartbeat.

Raised from two places (heartbeat ingest and the timers) and cleared by the next heartbeat, so
the rules live here as functions over an open session; the caller owns the transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from central import audit as audit_log
from central.domain.core import SYSTEM, Events, add_entry, later
from central.domain.views import alert_item, ts
from central.store.models import Alert, EdgeRow, Transition
from gridwatch.config.models import SiteConfig
from gridwatch.contract.base import new_event_id, uuid7
from gridwatch.contract.enums import Condition, Level, WorkflowState

log = logging.getLogger(__name__)


def edge_area(site: SiteConfig, edge: str) -> str | None:
    """The area an edge's alert belongs to: its only area, else none (it then escalates to command)."""
    try:
        areas = site.edge(edge).areas
    except KeyError:
        return None
    return areas[0] if len(areas) == 1 else None


def _add_transition(session: Session, alert: Alert, now: datetime) -> None:
    """Record a condition change of a central-made alert as if an edge had sent it."""
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


def raise_edge_offline(session: Session, site: SiteConfig, row: EdgeRow, now: datetime, reason: str) -> Events:
    """Raise a HIGH `edge.offline` alert for `row` and remember it on the row until cleared."""
    alert = Alert(
        id=f"c-{uuid7().hex}",
        rule="edge.offline",
        level=Level.HIGH.value,
        condition=Condition.ACTIVE.value,
        workflow=WorkflowState.NEW.value,
        site=site.site.id,
        edge=row.id,
        area=edge_area(site, row.id),
        grid=None,
        zone=None,
        subject_kind="device",
        subject_id=row.id,
        devices=[],
        title=f"Edge {row.id} offline",
        detail={"reason": reason, "last_heartbeat": ts(row.last_heartbeat)},
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
    _add_transition(session, alert, now)
    add_entry(session, alert, now, SYSTEM, "raised", None, alert.workflow, note=reason)
    row.offline_alert = alert.id
    audit_log.append(session, now, SYSTEM, "edge.offline", f"edge:{row.id}", {"alert": alert.id, "reason": reason})
    log.warning("edge %s is offline (%s); raised alert %s", row.id, reason, alert.id)
    return [("alert", alert_item(alert))]


def clear_edge_offline(session: Session, row: EdgeRow, now: datetime) -> Events:
    """The edge is heard again: clear its `edge.offline` alert (the workflow stays for the operator)."""
    alert = session.get(Alert, row.offline_alert) if row.offline_alert else None
    row.offline_alert = None
    audit_log.append(session, now, SYSTEM, "edge.online", f"edge:{row.id}", {})
    if alert is None:
        return []
    alert.condition = Condition.CLEARED.value
    alert.edge_ts = now
    alert.last_change = later(alert.last_change, now)
    _add_transition(session, alert, now)
    add_entry(session, alert, now, SYSTEM, "cleared", alert.workflow, alert.workflow, note="heartbeat received")
    return [("alert", alert_item(alert))]
