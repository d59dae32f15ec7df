"""Read-only views of the store for the API: alerts with history and evidence, positions,
headcounts, edges and devices.

Each query is one short read transaction; rows are turned into dicts (see `views`) before the
session closes, so nothing returned can lazily touch the database later.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from shapely.geometry import Point
from sqlalchemy import Text, and_, or_, select, type_coerce

from central.domain.checks import check_limit, decode_cursor, encode_cursor, parse_enum, require_aware
from central.domain.core import Core
from central.domain.plans import plan_status
from central.domain.views import (
    ALERT_ITEM_COLUMNS,
    ALERT_ITEM_TIME_FIELDS,
    alert_item,
    alert_item_from_row,
    device_dict,
    edge_dict,
    entry_dict,
    position_dict,
    sqlite_ts,
    transition_dict,
    ts,
    unheard_edge_dict,
    unreported_device_dict,
)
from central.store.models import (
    Alert,
    Command,
    DeviceEventRow,
    DeviceRow,
    EdgeRow,
    PositionRow,
    Snapshot,
    Transition,
    WorkflowEntry,
)
from central.workflow import WorkflowError
from gridwatch.contract.enums import Condition, Level, WorkflowState

EVIDENCE_WINDOW = timedelta(seconds=60)
"""Device events this close to an alert's first_seen are shown as its evidence."""
POSITION_FRESH = timedelta(seconds=60)
"""A position older than this does not count someone as present in a headcount."""
_LIST_ALERTS = select(*ALERT_ITEM_COLUMNS)
"""A page of alerts reads plain columns, not `Alert` entities, on a plain connection: for a read-only
page of 100 the ORM's session, identity map and instance bookkeeping cost more than the query
(built once; statements are immutable)."""
_LIST_ALERTS_SQLITE = select(
    *(type_coerce(c, Text).label(c.name) if c.name in ALERT_ITEM_TIME_FIELDS else c for c in ALERT_ITEM_COLUMNS)
)
"""The same on SQLite, with the date-times as the stored text (`sqlite_ts` makes RFC 3339 of it)."""


class Queries:
    """What the console and API read; never writes."""

    def __init__(self, core: Core) -> None:
        self.core = core

    # -- alerts ----------------------------------------------------------------------------------
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
        grids: Collection[str] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Alerts newest first by last_change; `since`/`until` bound last_change; `state` is the workflow state.

        `grids` (an officer's own grids) keeps only alerts of those grids; None means no such limit.
        """
        check_limit(limit)
        require_aware("since", since)
        require_aware("until", until)
        sqlite = self.core.db.is_sqlite
        query = _LIST_ALERTS_SQLITE if sqlite else _LIST_ALERTS
        for column, value in (
            (Alert.workflow, parse_enum(WorkflowState, "state", state)),
            (Alert.level, parse_enum(Level, "level", level)),
            (Alert.condition, parse_enum(Condition, "condition", condition)),
            (Alert.rule, rule),
            (Alert.site, site),
            (Alert.area, area),
            (Alert.grid, grid),
        ):
            if value is not None:
                query = query.where(column == str(value))
        if grids is not None:
            query = query.where(Alert.grid.in_(sorted(grids)))
        if since is not None:
            query = query.where(Alert.last_change >= since)
        if until is not None:
            query = query.where(Alert.last_change < until)
        if cursor:
            c = decode_cursor(cursor)
            try:
                after_ts, after_id = datetime.fromisoformat(c["t"]), str(c["id"])
            except (KeyError, TypeError, ValueError):
                raise WorkflowError(422, "cursor is not one this server gave out") from None
            # keyset paging on (last_change, id): stable while new alerts arrive at the top
            query = query.where(
                or_(Alert.last_change < after_ts, and_(Alert.last_change == after_ts, Alert.id < after_id))
            )
        query = query.order_by(Alert.last_change.desc(), Alert.id.desc()).limit(limit + 1)
        with self.core.db.engine.connect() as conn:
            rows = conn.execute(query).all()
        more = len(rows) > limit
        stamp = sqlite_ts if sqlite else ts
        items = [alert_item_from_row(r, stamp) for r in rows[:limit]]
        next_cursor = None
        if more and items:
            last = items[-1]  # `last_change` is RFC 3339 in UTC: what `datetime.isoformat` gave the cursor
            next_cursor = encode_cursor({"t": last["last_change"], "id": last["id"]})
        return items, next_cursor

    def get_alert(self, alert_id: str) -> dict[str, Any]:
        """One alert with its transitions, history, evidence (snapshots, nearby device events) and plan."""
        with self.core.db.read() as session:
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
        item["transitions"] = [transition_dict(t) for t in transitions]
        item["history"] = [entry_dict(e) for e in entries]
        snap_ts = {t.snapshot: ts(t.ts) for t in reversed(transitions) if t.snapshot}
        item["evidence"] = {
            "snapshots": [{"sha256": sha, "ts": snap_ts.get(sha), "stored": sha in stored} for sha in shas],
            "events": [
                {"ts": ts(e.ts), "device": e.device, "kind": e.kind, "data": e.data, "edge": e.edge} for e in events
            ],
        }
        item["response_plan"] = plan_status(self.core.site.response_plans, alert.rule, entries)
        return item

    def snapshot(self, sha256: str) -> bytes | None:
        """A stored JPEG by its sha256, or None."""
        with self.core.db.read() as session:
            row = session.get(Snapshot, sha256)
        return None if row is None else bytes(row.jpeg)

    # -- people ----------------------------------------------------------------------------------
    def positions(self) -> list[dict[str, Any]]:
        """The latest position of every tag and band."""
        with self.core.db.read() as session:
            rows = session.execute(select(PositionRow).order_by(PositionRow.key)).scalars().all()
        return [position_dict(r) for r in rows]

    def person_location(self, person_id: str) -> dict[str, Any]:
        """A person's newest position from any of their tags or bands; 404 names which is unknown."""
        with self.core.db.read() as session:
            row = session.execute(
                select(PositionRow).where(PositionRow.person == person_id).order_by(PositionRow.ts.desc()).limit(1)
            ).scalar()
        if row is None:
            if person_id in self.core.people:
                raise WorkflowError(404, f"no position known for person {person_id!r}")
            raise WorkflowError(404, f"no person {person_id!r}")
        return position_dict(row)

    def headcount(self, grid_id: str) -> dict[str, Any]:
        """Who is in a grid: the latest successful roll call if any, else fresh positions inside it."""
        core = self.core
        if grid_id not in core.grids:
            raise WorkflowError(404, f"no grid {grid_id!r}")
        _area, grid = core.grids[grid_id]
        assigned = sorted(p.id for p in core.site.people if p.grid == grid_id and p.role.value != "staff")
        expected = grid.expected_headcount or len(assigned)
        with core.db.read() as session:
            call = session.execute(
                select(Command)
                .where(Command.grid == grid_id, Command.result.is_not(None), Command.ok.is_(True))
                .order_by(Command.result_at.desc())
                .limit(1)
            ).scalar()
            if call is not None and call.result is not None:
                return _rollcall_count(grid_id, call, assigned, expected)
            fresh_after = core.clock.now() - POSITION_FRESH
            rows = (
                session.execute(
                    select(PositionRow).where(PositionRow.kind == "position", PositionRow.ts >= fresh_after)
                )
                .scalars()
                .all()
            )
        shape = core.grid_shapes[grid_id]
        inside = sorted(
            {
                r.person
                for r in rows
                if r.person and r.x is not None and r.y is not None and shape.covers(Point(r.x, r.y))
            }
        )
        present = [p for p in inside if p not in core.people or core.people[p].role.value != "staff"]
        return {
            "grid": grid_id,
            "expected": expected,
            "present": len(present),
            "present_ids": present,
            "missing": [p for p in assigned if p not in present],
            "source": "positions",
            "ts": ts(core.clock.now()),
        }

    # -- equipment -------------------------------------------------------------------------------
    def edges(self) -> list[dict[str, Any]]:
        """Every edge heard from or configured, by id."""
        with self.core.db.read() as session:
            rows = {r.id: r for r in session.execute(select(EdgeRow)).scalars()}
        out = [edge_dict(r) for r in rows.values()]
        out += [unheard_edge_dict(e) for e in self.core.site.edges if e.id not in rows]
        return sorted(out, key=lambda e: e["id"])

    def devices(self) -> list[dict[str, Any]]:
        """Every device reported or configured, by id."""
        with self.core.db.read() as session:
            rows = {r.id: r for r in session.execute(select(DeviceRow)).scalars()}
        out = [device_dict(r) for r in rows.values()]
        out += [unreported_device_dict(d) for d in self.core.site.devices if d.id not in rows]
        return sorted(out, key=lambda d: d["id"])

    def ready(self) -> bool:
        """Whether the database answers (for /readyz)."""
        return self.core.db.ping()


def _rollcall_count(grid_id: str, call: Command, assigned: list[str], expected: int) -> dict[str, Any]:
    """A headcount from an edge's roll-call result; `present` may be ids or just a number."""
    result = call.result or {}
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
        "ts": ts(call.result_at),
    }
