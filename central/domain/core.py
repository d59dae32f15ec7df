"""The plumbing every domain part shares: store, site, clock, event sink and the write rules.

The API and MQTT ingest call the domain from worker threads; each call is one or a few short
transactions. Events for SSE are published only after the transaction that caused them commits,
so a subscriber never sees a change that was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from shapely.geometry import Polygon
from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.store.db import Database
from central.store.models import Alert, Base, Received, WorkflowEntry
from central.workflow import WorkflowError
from gridwatch.clock import Clock
from gridwatch.config.models import SiteConfig

log = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], None]
"""The SSE sink: `publish(event_name, data)`; called after commit, never inside a transaction."""
Events = list[tuple[str, dict[str, Any]]]
"""Events a transaction produced, published by `Core.emit` once it has committed."""
T = TypeVar("T")

RECEIVED: Table = Base.metadata.tables["received"]
WORKFLOW_ENTRIES: Table = Base.metadata.tables["workflow_entries"]

SYSTEM = "system"
"""The actor of everything central does by itself (escalation, unshelving, edge.offline, ...)."""


class Core:
    """One store, one site, one clock and one event sink, shared by all parts of the domain."""

    def __init__(self, db: Database, site: SiteConfig, clock: Clock, publish: Publish) -> None:
        self.db = db
        self.site = site
        self.clock = clock
        self.publish = publish
        # look-ups built once from the config, which does not change while central runs
        self.grids = site.grid_index()
        self.grid_shapes = {gid: Polygon(g.polygon) for gid, (_a, g) in self.grids.items()}
        self.people = {p.id: p for p in site.people}
        self.tag_person = {p.tag: p.id for p in site.people if p.tag}
        self.band_person = {p.band: p.id for p in site.people if p.band}
        self.supervisors = {a.id: a.supervisor for a in site.areas}

    def emit(self, events: Events) -> None:
        """Publish committed events; a failing subscriber is logged, never raised."""
        for name, data in events:
            try:
                self.publish(name, data)
            except Exception:  # a broken subscriber must not undo a committed change
                log.exception("publishing %s event failed", name)

    def write(self, fn: Callable[[Session], T], attempts: int = 3) -> T:
        """Run `fn` in a write transaction; retry when a concurrent insert of the same key won."""
        for attempt in range(attempts):
            try:
                with self.db.write() as session:
                    return fn(session)
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def ingest_once(self, event_id: str, edge: str, kind: str, apply: Callable[[Session], Events]) -> bool:
        """Store one uplink body exactly once: the `received` row and its effects commit together.

        False when `event_id` was stored before (QoS 1 redelivers, edges resend after a restart).
        """
        for attempt in range(3):
            try:
                with self.db.write() as session:
                    # a Core insert, not an ORM add + flush: one statement, and a duplicate fails right here
                    received = {"event_id": event_id, "edge": edge, "kind": kind, "received_at": self.clock.now()}
                    session.execute(insert(RECEIVED), received)
                    events = apply(session)
            except IntegrityError:
                with self.db.read() as session:
                    if session.get(Received, event_id) is not None:
                        return False
                if attempt == 2:
                    raise
                continue
            self.emit(events)
            return True
        return False


def lock_alert(session: Session, alert_id: str) -> Alert:
    """The alert row locked for update (PostgreSQL), so concurrent actions on it serialise; 404 if absent."""
    alert = session.execute(select(Alert).where(Alert.id == alert_id).with_for_update()).scalar_one_or_none()
    if alert is None:
        raise WorkflowError(404, f"no alert {alert_id!r}")
    return alert


def add_entry(
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
    """Append one line to the alert's history (what the console shows as the alert's timeline)."""
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


def insert_entry(
    session: Session,
    alert_id: str,
    ts: datetime,
    actor: str,
    action: str,
    before: str | None,
    after: str | None,
    note: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """`add_entry` as one Core INSERT now, without the ORM unit of work (for the ingest hot path).

    The alert row must already be in the database (not just added to the session).
    """
    session.execute(
        insert(WORKFLOW_ENTRIES),
        {
            "alert_id": alert_id,
            "ts": ts,
            "actor": actor,
            "action": action,
            "from_state": before,
            "to_state": after,
            "note": note,
            "data": data or {},
        },
    )


def later(a: datetime, b: datetime) -> datetime:
    """The later of two instants; `last_change` only moves forward, even for late messages."""
    return a if a >= b else b
